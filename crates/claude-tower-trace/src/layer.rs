//! [`TraceLayer`] and [`Trace`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use claude_tower_core::ext::{Attempts, CostCell, ResponseCacheStatus, ServerAddress};
use claude_tower_core::{
    Error, EventStream, Message, MessagesBody, MessagesRequest, StopReason, StreamEvent, Usage,
};
use futures_core::Stream;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

use crate::attributes::{
    DURATION_BUCKETS, ERROR_TYPE, GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL, GEN_AI_TOKEN_TYPE, METRIC_CACHE_READ_RATIO,
    METRIC_OPERATION_DURATION, METRIC_TIME_PER_OUTPUT_CHUNK, METRIC_TIME_TO_FIRST_CHUNK,
    METRIC_TOKEN_USAGE, RATIO_BUCKETS, TOKEN_BUCKETS,
};

/// The metric instruments (created once per layer).
#[derive(Debug, Clone)]
struct Instruments {
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    time_per_output_chunk: Histogram<f64>,
    cache_read_ratio: Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
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

#[derive(Debug)]
struct Config {
    server_address: String,
    server_port: u16,
    /// `server(…)` was called: keep it over what the transport reports.
    server_pinned: bool,
    capture_limit: Option<usize>,
    instruments: Instruments,
}

/// Traces every call; see the [crate docs](crate).
///
/// Defaults: `server.address` and `server.port` from the transport's response (else
/// `api.anthropic.com`, 443); no content capture; metrics
/// through the global `opentelemetry` meter provider (a no-op until one is installed).
#[derive(Debug, Clone)]
pub struct TraceLayer {
    config: Arc<Config>,
}

impl Default for TraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceLayer {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::with_meter(&opentelemetry::global::meter("claude-tower"))
    }

    /// Records metrics with `meter`.
    #[must_use]
    pub fn with_meter(meter: &Meter) -> Self {
        Self {
            config: Arc::new(Config {
                server_address: "api.anthropic.com".to_owned(),
                server_port: 443,
                server_pinned: false,
                capture_limit: None,
                instruments: Instruments::new(meter),
            }),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Config)) -> Self {
        let old = &self.config;
        let mut config = Config {
            server_address: old.server_address.clone(),
            server_port: old.server_port,
            server_pinned: old.server_pinned,
            capture_limit: old.capture_limit,
            instruments: old.instruments.clone(),
        };
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// `server.address` and `server.port`, fixed (e.g. the gateway's public name). Without
    /// it, each span records the server the transport really called (its [`ServerAddress`]
    /// response extension), and `api.anthropic.com:443` when there is none (an error before
    /// any response, or a mock).
    #[must_use]
    pub fn server(self, address: impl Into<String>, port: u16) -> Self {
        let address = address.into();
        self.edit(|c| {
            c.server_address = address;
            c.server_port = port;
            c.server_pinned = true;
        })
    }

    /// Records message content (`gen_ai.input.messages`, `gen_ai.system_instructions`,
    /// `gen_ai.output.messages`), each cut to `max_bytes` with a visible marker. Off by
    /// default: prompts and replies often contain personal data.
    #[must_use]
    pub fn capture_content(self, max_bytes: usize) -> Self {
        self.edit(|c| c.capture_limit = Some(max_bytes))
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of a [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    config: Arc<Config>,
}

claude_tower_core::inner_service_accessors!(Trace<S>);

fn capped(text: String, limit: usize) -> String {
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
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `error.type`: the API's error type when there is one, else our kind.
fn error_type(error: &Error) -> String {
    error.error_type().map_or_else(
        || format!("{:?}", error.kind()).to_lowercase(),
        str::to_owned,
    )
}

impl<S> Service<http::Request<MessagesRequest>> for Trace<S>
where
    S: Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        >,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let body = request.body();
        let span = tracing::info_span!(
            target: "claude_tower::trace",
            "chat",
            otel.name = %format_args!("chat {}", body.model),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = %body.model,
            gen_ai.request.max_tokens = i64::from(body.max_tokens),
            gen_ai.request.temperature = Empty,
            gen_ai.request.top_p = Empty,
            gen_ai.request.top_k = Empty,
            gen_ai.request.stream = Empty,
            gen_ai.response.id = Empty,
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.response.time_to_first_chunk = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.reasoning.output_tokens = Empty,
            error.type = Empty,
            server.address = %self.config.server_address,
            server.port = i64::from(self.config.server_port),
            anthropic.request.id = Empty,
            anthropic.cache_miss_reason = Empty,
            anthropic.cache_missed_input_tokens = Empty,
            claude_tower.attempts = Empty,
            claude_tower.cost_usd = Empty,
            claude_tower.cache_status = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.output.messages = Empty,
            gen_ai.system_instructions = Empty,
        );
        #[cfg(feature = "otel")]
        if !span.is_disabled() {
            crate::context::continue_inbound(&span, &request);
        }
        let body = request.body();
        if !span.is_disabled() {
            if let Some(t) = body.temperature {
                span.record("gen_ai.request.temperature", t);
            }
            if let Some(p) = body.top_p {
                span.record("gen_ai.request.top_p", p);
            }
            if let Some(k) = body.top_k {
                span.record("gen_ai.request.top_k", i64::from(k));
            }
            if body.is_stream() {
                span.record("gen_ai.request.stream", true);
            }
            if let Some(limit) = self.config.capture_limit {
                let messages = serde_json::to_string(&*body.messages).unwrap_or_default();
                span.record("gen_ai.input.messages", capped(messages, limit));
                if let Some(system) = &body.system {
                    let system = serde_json::to_string(&**system).unwrap_or_default();
                    span.record("gen_ai.system_instructions", capped(system, limit));
                }
            }
        }
        let call = Recorder {
            span: span.clone(),
            config: Arc::clone(&self.config),
            model: ModelId::new(&body.model),
            started: Instant::now(),
        };
        let future = self.inner.call(request).instrument(span);
        ResponseFuture {
            future,
            call: Some(call),
        }
    }
}

/// What a finished call records, on the span and in the metrics.
#[derive(Debug)]
struct Recorder {
    span: Span,
    config: Arc<Config>,
    model: ModelId,
    started: Instant,
}

/// The request's model id as a metric attribute value: the model table's own `'static` copy
/// for a known id (no allocation per call), else shared.
#[derive(Debug, Clone)]
enum ModelId {
    Known(&'static str),
    Other(Arc<str>),
}

impl ModelId {
    fn new(model: &str) -> Self {
        match claude_tower_core::models::ModelTable::builtin().known_id(model) {
            Some(id) => Self::Known(id),
            None => Self::Other(Arc::from(model)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Known(id) => id,
            Self::Other(id) => id,
        }
    }

    fn value(&self) -> opentelemetry::StringValue {
        match self {
            Self::Known(id) => opentelemetry::StringValue::from(*id),
            Self::Other(id) => opentelemetry::StringValue::from(Arc::clone(id)),
        }
    }
}

/// The metric attributes of a call, on the stack: operation, provider, request model, the
/// response model when known, and one slot for a per-record attribute (token type, error type).
struct Attributes {
    items: [KeyValue; 5],
    base: usize,
}

impl Attributes {
    fn new(request_model: opentelemetry::StringValue, response_model: Option<KeyValue>) -> Self {
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
    fn with(&mut self, extra: KeyValue) -> &[KeyValue] {
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
    fn base_attributes(&self, response_model: Option<&str>) -> Attributes {
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

    fn record_extensions(&self, extensions: &http::Extensions, headers: &http::HeaderMap) {
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
    fn record_message(
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

    fn record_message_fields(
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

    fn record_diagnostics(&self, message: &Message) {
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

    fn record_output(&self, message: &Message) {
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

    fn record_cost(&self, cost: Option<&CostCell>) {
        if let Some(usd) = cost.and_then(|cell| cell.get()).map(|p| p.usd()) {
            self.span.record("claude_tower.cost_usd", usd);
        }
    }

    fn record_error(&self, error: &Error, response_model: Option<&str>) {
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

    fn record_duration(&self, attributes: &[KeyValue]) {
        self.config
            .instruments
            .duration
            .record(self.started.elapsed().as_secs_f64(), attributes);
    }
}

pin_project! {
    /// Response future of [`Trace`]: the inner future, run inside the span.
    pub struct ResponseFuture<F> {
        #[pin]
        future: Instrumented<F>,
        call: Option<Recorder>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<MessagesBody>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let call = this
            .call
            .take()
            .expect("ResponseFuture polled after completion");
        match result {
            Err(error) => {
                call.record_error(&error, None);
                Poll::Ready(Err(error))
            }
            Ok(response) => {
                call.record_extensions(response.extensions(), response.headers());
                let cost = response.extensions().get::<CostCell>().cloned();
                let (parts, body) = response.into_parts();
                let body = match body {
                    MessagesBody::Message(message) => {
                        let attributes = call.record_message(
                            &message.id,
                            &message.model,
                            message.stop_reason.as_ref(),
                            &message.usage,
                        );
                        call.record_output(&message);
                        call.record_diagnostics(&message);
                        call.record_cost(cost.as_ref());
                        call.record_duration(&attributes);
                        MessagesBody::Message(message)
                    }
                    MessagesBody::Stream(stream) => {
                        MessagesBody::Stream(EventStream::new(TracedStream {
                            inner: stream,
                            call: Some(call),
                            cost,
                            accumulator: claude_tower_core::MessageAccumulator::new(),
                            first_event: None,
                            events: 0,
                            captured_bytes: 0,
                        }))
                    }
                };
                Poll::Ready(Ok(http::Response::from_parts(parts, body)))
            }
        }
    }
}

/// Keeps the span open until the stream ends; records time to first chunk, the final usage
/// and mid-stream errors.
struct TracedStream {
    inner: EventStream,
    call: Option<Recorder>,
    cost: Option<CostCell>,
    accumulator: claude_tower_core::MessageAccumulator,
    first_event: Option<Instant>,
    events: u32,
    /// Bytes of content deltas kept for capture.
    captured_bytes: usize,
}

impl TracedStream {
    fn finish(&mut self, error: Option<&Error>) {
        let Some(call) = self.call.take() else { return };
        let snapshot = self.accumulator.snapshot().cloned();
        let model = snapshot.as_ref().map(|m| m.model.clone());
        let attributes = match &snapshot {
            Some(message) => {
                let attributes = call.record_message(
                    &message.id,
                    &message.model,
                    message.stop_reason.as_ref(),
                    &message.usage,
                );
                call.record_output(message);
                call.record_diagnostics(message);
                attributes
            }
            None => call.base_attributes(None),
        };
        call.record_cost(self.cost.as_ref());
        if let Some(first) = self.first_event {
            let instruments = &call.config.instruments;
            instruments
                .time_to_first_chunk
                .record((first - call.started).as_secs_f64(), &attributes);
            if self.events > 1 {
                let per_chunk = first.elapsed().as_secs_f64() / f64::from(self.events - 1);
                instruments
                    .time_per_output_chunk
                    .record(per_chunk, &attributes);
            }
        }
        match error {
            Some(error) => call.record_error(error, model.as_deref()),
            None => call.record_duration(&attributes),
        }
    }
}

impl Stream for TracedStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                this.events += 1;
                if this.first_event.is_none() {
                    let now = Instant::now();
                    this.first_event = Some(now);
                    if let Some(call) = &this.call {
                        call.span.record(
                            "gen_ai.response.time_to_first_chunk",
                            (now - call.started).as_secs_f64(),
                        );
                    }
                }
                // Only what the span needs is kept: the message's id, model, usage and stop
                // reason, and its content only while it is captured (up to the capture limit),
                // so a long or endless stream never grows this buffer.
                let content = matches!(
                    event,
                    StreamEvent::ContentBlockStart(_)
                        | StreamEvent::ContentBlockDelta(_)
                        | StreamEvent::ContentBlockStop(_)
                );
                let capture = this
                    .call
                    .as_ref()
                    .and_then(|call| call.config.capture_limit)
                    .filter(|_| {
                        this.call
                            .as_ref()
                            .is_some_and(|call| !call.span.is_disabled())
                    });
                let keep = !content || capture.is_some_and(|limit| this.captured_bytes <= limit);
                if keep {
                    if let StreamEvent::ContentBlockDelta(delta) = event {
                        this.captured_bytes = this
                            .captured_bytes
                            .saturating_add(delta.delta.content_len());
                    }
                    let _ = this.accumulator.push(event);
                }
            }
            Some(Err(error)) => this.finish(Some(error)),
            None => this.finish(None),
        }
        Poll::Ready(item)
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        if self.call.is_some() {
            let error = Error::stream_interrupted("the stream was dropped before its end");
            self.finish(Some(&error));
        }
    }
}
