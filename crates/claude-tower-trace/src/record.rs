//! [`Recorder`]: what a finished call records on its span and in the metrics.

use std::sync::Arc;

use claude_tower_core::ext::{Attempts, CostCell, ResponseCacheStatus, ServerAddress};
use claude_tower_core::{Error, Message, StopReason, Usage};
use opentelemetry::KeyValue;
use tokio::time::Instant;
use tracing::Span;

use crate::attributes::{
    DURATION_BUCKETS, ERROR_TYPE, GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL, GEN_AI_TOKEN_TYPE, METRIC_CACHE_READ_RATIO,
    METRIC_OPERATION_DURATION, METRIC_TIME_PER_OUTPUT_CHUNK, METRIC_TIME_TO_FIRST_CHUNK,
    METRIC_TOKEN_USAGE, RATIO_BUCKETS, TOKEN_BUCKETS,
};
use opentelemetry::metrics::{Histogram, Meter};

pub(crate) fn capped(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..end], text.len() - end)
}

/// Integers are recorded as `i64`: OpenTelemetry has no unsigned type, and
/// `tracing-opentelemetry` turns `u64` fields into strings.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `error.type`: the API's error type when there is one, else our kind.
pub(crate) fn error_type(error: &Error) -> String {
    error.error_type().map_or_else(
        || format!("{:?}", error.kind()).to_lowercase(),
        str::to_owned,
    )
}

/// What a finished call records, on the span and in the metrics.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) span: Span,
    pub(crate) config: Arc<Config>,
    pub(crate) model: ModelId,
    pub(crate) started: Instant,
}

/// The request's model id as a metric attribute value: the model table's own `'static` copy
/// for a known id (no allocation per call), else shared.
#[derive(Debug, Clone)]
pub(crate) enum ModelId {
    Known(&'static str),
    Other(Arc<str>),
}

impl ModelId {
    pub(crate) fn new(model: &str) -> Self {
        match claude_tower_core::models::ModelTable::builtin().known_id(model) {
            Some(id) => Self::Known(id),
            None => Self::Other(Arc::from(model)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Known(id) => id,
            Self::Other(id) => id,
        }
    }

    pub(crate) fn value(&self) -> opentelemetry::StringValue {
        match self {
            Self::Known(id) => opentelemetry::StringValue::from(*id),
            Self::Other(id) => opentelemetry::StringValue::from(Arc::clone(id)),
        }
    }
}

/// The metric attributes of a call, on the stack: operation, provider, request model, the
/// response model when known, and one slot for a per-record attribute (token type, error type).
pub(crate) struct Attributes {
    pub(crate) items: [KeyValue; 5],
    pub(crate) base: usize,
}

impl Attributes {
    pub(crate) fn new(
        request_model: opentelemetry::StringValue,
        response_model: Option<KeyValue>,
    ) -> Self {
        let blank = || KeyValue::new("", false);
        let base = if response_model.is_some() { 4 } else { 3 };
        Self {
            items: [
                KeyValue::new(GEN_AI_OPERATION_NAME, "chat"),
                KeyValue::new(GEN_AI_PROVIDER_NAME, "anthropic"),
                KeyValue::new(GEN_AI_REQUEST_MODEL, request_model),
                response_model.unwrap_or_else(blank),
                blank(),
            ],
            base,
        }
    }

    /// The base attributes plus `extra`.
    pub(crate) fn with(&mut self, extra: KeyValue) -> &[KeyValue] {
        self.items[self.base] = extra;
        &self.items[..=self.base]
    }
}

impl std::ops::Deref for Attributes {
    type Target = [KeyValue];

    fn deref(&self) -> &[KeyValue] {
        &self.items[..self.base]
    }
}

impl Recorder {
    pub(crate) fn base_attributes(&self, response_model: Option<&str>) -> Attributes {
        let response_model = response_model.map(|model| {
            let value = if model == self.model.as_str() {
                self.model.value()
            } else {
                opentelemetry::StringValue::from(model.to_owned())
            };
            KeyValue::new(GEN_AI_RESPONSE_MODEL, value)
        });
        Attributes::new(self.model.value(), response_model)
    }

    pub(crate) fn record_extensions(
        &self,
        extensions: &http::Extensions,
        headers: &http::HeaderMap,
    ) {
        if self.span.is_disabled() {
            return;
        }
        if let Some(id) = headers.get("request-id").and_then(|v| v.to_str().ok()) {
            self.span.record("anthropic.request.id", id);
        }
        if let Some(server) = extensions
            .get::<ServerAddress>()
            .filter(|_| !self.config.server_pinned)
        {
            self.span.record("server.address", server.host());
            self.span.record("server.port", i64::from(server.port()));
        }
        if let Some(attempts) = extensions.get::<Attempts>() {
            self.span
                .record("claude_tower.attempts", i64::from(attempts.count));
        }
        if let Some(status) = extensions.get::<ResponseCacheStatus>() {
            self.span.record(
                "claude_tower.cache_status",
                format!("{status:?}").to_lowercase(),
            );
        }
    }

    /// Records the reply; returns the metric attributes (with the response model) for reuse.
    pub(crate) fn record_message(
        &self,
        id: &str,
        model: &str,
        stop: Option<&StopReason>,
        usage: &Usage,
    ) -> Attributes {
        let span = &self.span;
        if !span.is_disabled() {
            self.record_message_fields(id, model, stop, usage);
        }
        let mut attributes = self.base_attributes(Some(model));
        let instruments = &self.config.instruments;
        let prompt = usage.total_input_tokens();
        if prompt > 0 {
            instruments.cache_read_ratio.record(
                usage.cache_read_tokens() as f64 / prompt as f64,
                &attributes,
            );
        }
        instruments.token_usage.record(
            prompt,
            attributes.with(KeyValue::new(GEN_AI_TOKEN_TYPE, "input")),
        );
        instruments.token_usage.record(
            usage.output_tokens,
            attributes.with(KeyValue::new(GEN_AI_TOKEN_TYPE, "output")),
        );
        attributes
    }

    pub(crate) fn record_message_fields(
        &self,
        id: &str,
        model: &str,
        stop: Option<&StopReason>,
        usage: &Usage,
    ) {
        let span = &self.span;
        span.record("gen_ai.response.id", id);
        span.record("gen_ai.response.model", model);
        let reasons: Vec<&str> = stop.map(StopReason::as_str).into_iter().collect();
        span.record(
            "gen_ai.response.finish_reasons",
            serde_json::to_string(&reasons).unwrap_or_default(),
        );
        span.record("gen_ai.usage.input_tokens", int(usage.total_input_tokens()));
        span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
        span.record(
            "gen_ai.usage.cache_creation.input_tokens",
            int(usage.cache_write_tokens()),
        );
        span.record(
            "gen_ai.usage.cache_read.input_tokens",
            int(usage.cache_read_tokens()),
        );
        if let Some(details) = &usage.output_tokens_details {
            span.record(
                "gen_ai.usage.reasoning.output_tokens",
                int(details.thinking_tokens),
            );
        }
    }

    pub(crate) fn record_diagnostics(&self, message: &Message) {
        if self.span.is_disabled() {
            return;
        }
        if let Some(miss) = message.cache_miss() {
            self.span.record(
                "anthropic.cache_miss_reason",
                miss.reason.unwrap_or("pending"),
            );
            if let Some(tokens) = miss.missed_input_tokens {
                self.span
                    .record("anthropic.cache_missed_input_tokens", int(tokens));
            }
        }
    }

    pub(crate) fn record_output(&self, message: &Message) {
        if let Some(limit) = self
            .config
            .capture_limit
            .filter(|_| !self.span.is_disabled())
        {
            let output = serde_json::to_string(&message.content).unwrap_or_default();
            self.span
                .record("gen_ai.output.messages", capped(output, limit));
        }
    }

    pub(crate) fn record_cost(&self, cost: Option<&CostCell>) {
        if let Some(usd) = cost.and_then(|cell| cell.get()).map(|p| p.usd()) {
            self.span.record("claude_tower.cost_usd", usd);
        }
    }

    pub(crate) fn record_error(&self, error: &Error, response_model: Option<&str>) {
        let kind = error_type(error);
        self.span.record("error.type", kind.as_str());
        self.span.record("otel.status_code", "ERROR");
        if let Some(id) = error.request_id() {
            self.span.record("anthropic.request.id", id);
        }
        let mut attributes = self.base_attributes(response_model);
        let attributes = attributes.with(KeyValue::new(ERROR_TYPE, kind));
        self.config
            .instruments
            .duration
            .record(self.started.elapsed().as_secs_f64(), attributes);
    }

    pub(crate) fn record_duration(&self, attributes: &[KeyValue]) {
        self.config
            .instruments
            .duration
            .record(self.started.elapsed().as_secs_f64(), attributes);
    }
}

/// The metric instruments (created once per layer).
#[derive(Debug, Clone)]
pub(crate) struct Instruments {
    pub(crate) token_usage: Histogram<u64>,
    pub(crate) duration: Histogram<f64>,
    pub(crate) time_to_first_chunk: Histogram<f64>,
    pub(crate) time_per_output_chunk: Histogram<f64>,
    pub(crate) cache_read_ratio: Histogram<f64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            token_usage: meter
                .u64_histogram(METRIC_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Tokens used per call, by gen_ai.token.type")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram(METRIC_OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of the call (to the end of the stream)")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            time_to_first_chunk: meter
                .f64_histogram(METRIC_TIME_TO_FIRST_CHUNK)
                .with_unit("s")
                .with_description("Time to the first streamed event")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            time_per_output_chunk: meter
                .f64_histogram(METRIC_TIME_PER_OUTPUT_CHUNK)
                .with_unit("s")
                .with_description("Mean time between streamed events after the first")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            cache_read_ratio: meter
                .f64_histogram(METRIC_CACHE_READ_RATIO)
                .with_unit("1")
                .with_description("Share of the prompt read from the prompt cache, per call")
                .with_boundaries(RATIO_BUCKETS.to_vec())
                .build(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) server_address: String,
    pub(crate) server_port: u16,
    /// `server(…)` was called: keep it over what the transport reports.
    pub(crate) server_pinned: bool,
    pub(crate) capture_limit: Option<usize>,
    pub(crate) instruments: Instruments,
}
