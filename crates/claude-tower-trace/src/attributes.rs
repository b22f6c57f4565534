//! Attribute and metric names, as our own documented constants.
//!
//! The names follow the OpenTelemetry GenAI semantic conventions (now maintained in
//! `open-telemetry/semantic-conventions-genai`; the OpenTelemetry GenAI conventions). The
//! `opentelemetry-semantic-conventions` crate has them only behind a feature and marked
//! deprecated, so they are defined here. Names under `claude_tower.*` and `anthropic.*` are
//! ours.

/// `gen_ai.operation.name` (always `chat`).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name` (always `anthropic`).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.request.model`
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.request.max_tokens`
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.request.temperature`
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.top_p`
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// `gen_ai.request.top_k`
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
/// `gen_ai.request.stream` (set only for streaming requests)
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// `gen_ai.response.id`
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.model`
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.finish_reasons` (a JSON array of strings)
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.response.time_to_first_chunk` (seconds, streams)
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// `gen_ai.usage.input_tokens`: for Anthropic, input + cache read + cache creation.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_creation.input_tokens`
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str =
    "gen_ai.usage.cache_creation.input_tokens";
/// `gen_ai.usage.cache_read.input_tokens`
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.usage.reasoning.output_tokens`
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
/// `gen_ai.token.type` (`input` / `output`) on the token usage metric.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";
/// `gen_ai.input.messages` (opt-in content capture)
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages` (opt-in content capture)
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.system_instructions` (opt-in content capture)
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// `error.type`: the API's error type (`overloaded_error`, …) or our error kind (`timeout`, …).
pub const ERROR_TYPE: &str = "error.type";
/// `server.address`
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`
pub const SERVER_PORT: &str = "server.port";
/// `anthropic.request.id` (the `request-id` header)
pub const ANTHROPIC_REQUEST_ID: &str = "anthropic.request.id";
/// `anthropic.cache_miss_reason`: the response's `diagnostics.cache_miss_reason` when the
/// request asked for `diagnostics` (`model_changed`, `system_changed`, …; `pending` for a
/// `null` reason).
pub const ANTHROPIC_CACHE_MISS_REASON: &str = "anthropic.cache_miss_reason";
/// `anthropic.cache_missed_input_tokens`: that reason's `cache_missed_input_tokens`.
pub const ANTHROPIC_CACHE_MISSED_INPUT_TOKENS: &str = "anthropic.cache_missed_input_tokens";
/// `claude_tower.attempts`: attempts made by the retry layer.
pub const CLAUDE_TOWER_ATTEMPTS: &str = "claude_tower.attempts";
/// `claude_tower.cost_usd`: the cost meter's total for the call.
pub const CLAUDE_TOWER_COST_USD: &str = "claude_tower.cost_usd";
/// `claude_tower.cache_status`: the response cache's `hit` / `miss` / `bypass` / `stale`.
pub const CLAUDE_TOWER_CACHE_STATUS: &str = "claude_tower.cache_status";

/// Metric `gen_ai.client.token.usage` (histogram, `{token}`, by `gen_ai.token.type`).
pub const METRIC_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Metric `gen_ai.client.operation.duration` (histogram, seconds).
pub const METRIC_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Metric `gen_ai.client.operation.time_to_first_chunk` (histogram, seconds, streams).
pub const METRIC_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// Metric `gen_ai.client.operation.time_per_output_chunk` (histogram, seconds, streams).
pub const METRIC_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
/// Metric `claude_tower.client.prompt_cache.read_ratio` (ours): per call, the share of the
/// prompt served from the prompt cache, `cache_read / (input + cache_creation + cache_read)`,
/// a histogram from 0 to 1 (calls with an empty prompt are not recorded).
pub const METRIC_CACHE_READ_RATIO: &str = "claude_tower.client.prompt_cache.read_ratio";

/// Bucket boundaries of `gen_ai.client.token.usage` (from the spec).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// Bucket boundaries of the duration metrics (from the spec).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Bucket boundaries of the cache read ratio metric.
pub const RATIO_BUCKETS: [f64; 10] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
