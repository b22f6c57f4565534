//! # Choosing layers
//!
//! Every layer is optional. Stack the ones a service needs, outermost first, in the
//! [canonical order](crate#the-canonical-layer-order). This page says what each layer does,
//! what it costs in latency, which dependencies it adds and what it does to your bill. Three
//! recipes follow.
//!
//! ## What each layer does and costs
//!
//! Latency is the median time the layer adds per call over a mock upstream, measured by
//! `cargo xtask bench` on a 2-core VM (2026-12). A bare call takes about 0.4 µs. The network
//! and the model take milliseconds to minutes, so every layer is noise next to them.
//!
//! | layer (feature) | what it does | added latency | adds dependencies | effect on cost |
//! |---|---|---|---|---|
//! | [`Transport`](crate::transport::Transport) (`transport`, default) | HTTPS to the API: auth, headers, JSON and SSE, typed errors, body caps, no redirects | — (the network) | reqwest (rustls), tokio | — |
//! | [`RetryLayer`](crate::retry::RetryLayer) (`retry`, default) | the official SDKs' retry contract (429/5xx/529, `retry-after`), streams retried before content, a shared retry budget | +0.4 µs | tower `retry`, fastrand | retried attempts are billed only when the API billed them (e.g. a stream that failed mid-way) |
//! | [`TimeoutLayer`](crate::retry::TimeoutLayer) (`retry`) | per attempt: total time, time to the first event, idle time between events. **`first_event` and `idle` apply to streams only**: a non-streamed call sends nothing until it is done, so only `total` bounds it | +0.1 µs | — | — |
//! | [`TraceLayer`](crate::trace::TraceLayer) (`trace`, default) | one `chat {model}` span per call with the OpenTelemetry GenAI attributes, GenAI metrics; content only on opt-in; `otel` continues an inbound `traceparent` | +0.3 µs (no subscriber), +0.7 µs (with one) | tracing, opentelemetry (API only; `otel`: tracing-opentelemetry, opentelemetry_sdk) | — |
//! | [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) (`rate-limit`) | RPM / ITPM / OTPM buckets per model class and per key, learned from `anthropic-ratelimit-*` headers, bounded FIFO waits; Redis to share across replicas | +0.5 µs | tokio-util (`redis`: redis) | avoids 429s and the retries they cause |
//! | [`PromptCacheLayer`](crate::prompt_cache::PromptCacheLayer) (`prompt-cache`) | places `cache_control` breakpoints (tail, previous tail, stable prefix, 1 h anchors); [`PromptCacheReport`](crate::prompt_cache::PromptCacheReport) per call | +2.2 µs (50 messages) | — | reads cost 0.1× input; **writes cost 1.25× (5 min) or 2× (1 h)**, so the first turn of a conversation costs more. The default 1 h TTL pays off once a prefix is read about twice. Below the model's minimum cacheable length nothing is cached (the report says so) |
//! | [`ResponseCacheLayer`](crate::response_cache::ResponseCacheLayer) (`response-cache`) | exact-match cache of deterministic requests (`temperature: 0`), single-flight, streams recorded and replayed; keyed per credential; moka or Redis | +0.7 µs (hit), +1.0 µs (miss) | moka, xxhash (`redis`: redis) | a hit costs $0 |
//! | [`TrimLayer`](crate::trim::TrimLayer) (`trim`) | fits a conversation into a token budget by dropping whole turns (cache-friendly steps), optional summaries; compaction blocks kept intact | +50 µs for 200 messages / 500 KB when it trims, near 0 otherwise | (`legacy-tokenizer`: tokenizers) | caps input cost per call |
//! | [`CostLayer`](crate::cost::CostLayer) (`cost`) | the exact cost of each call in pico-dollars (streams at their end, compaction and fallback iterations included), a per tenant / user / feature / model ledger | +0.6 µs | ahash | — |
//! | [`BudgetLayer`](crate::cost::BudgetLayer) (`cost`) | reserves the worst case before sending, settles the real cost after, refuses what would overspend; memory or Redis, leases so a crash never holds money | about +1 µs | (`redis`: redis) | 0 overspend. A reservation prices the input at the highest rate it could be billed at and counts `max_tokens` of output, so it is several times the typical cost: size limits for concurrent requests with that in mind |
//!
//! Per-scope budgets and per-key limits need to know who a call is for: pass an
//! [`Attribution`](crate::ext::Attribution) with
//! [`Client::messages().attribution(…)`](crate::Messages::attribution). It never goes
//! upstream. A budget that cannot apply to a call counts it in
//! [`BudgetLayer::unattributed`](crate::cost::BudgetLayer::unattributed) and logs a warning.
//!
//! ## Recipe: a chat backend
//!
//! A web service where each user chats, with replies streamed to the browser:
//! trace → budget (per user, per day) → cost (ledger for a `/costs` page) → prompt cache →
//! retry → rate limit → timeout (`first_event`, `idle`) → transport. Keep the stack in your
//! app state as a [`Client<ClaudeService>`](crate::ClaudeService) (see [`Client::boxed`](crate::Client::boxed)).
//! Relay [`Messages::stream_events`](crate::Messages::stream_events) as SSE with
//! [`StreamEvent::to_sse`](crate::StreamEvent::to_sse). The repository's `axum_chat` example
//! does exactly this in under 120 lines.
//!
//! ## Recipe: a batch pipeline
//!
//! Thousands of independent requests, throughput first: cost (ledger) → response cache
//! (re-runs are free) → retry → rate limit (`max_concurrent`, shared through Redis when
//! several workers run) → transport. Drive it with `futures::stream::iter(…)
//! .buffer_unordered(n)`. The rate limiter keeps the pipeline under the organisation's limits,
//! so the retries stay rare. When latency does not matter, the Message Batches API costs half
//! (see `claude-tower` releases for batch support).
//!
//! ## Recipe: an agent loop
//!
//! A tool-use loop whose history grows every turn: trace → budget (per task) → cost → trim
//! (a token budget under the context window) → prompt cache (the growing prefix is read at
//! 0.1×) → retry → rate limit → timeout → transport. Append
//! [`Message::to_param`](crate::Message::to_param) and the tool results to the history each turn;
//! the trim layer keeps tool uses and their results together, and compaction blocks intact.
