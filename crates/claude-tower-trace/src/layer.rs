//! [`TraceLayer`] and [`Trace`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use claude_tower_core::MessagesService;
use claude_tower_core::ext::CostCell;
use claude_tower_core::{Error, MessagesBody, MessagesRequest};
use opentelemetry::metrics::Meter;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

use crate::body::{Traced, record_end};
use crate::record::{Config, Instruments, ModelId, Recorder, capped};

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

    /// A builder edit: on a copy of the shared state when a layer or service still uses it
    /// (which keeps its own).
    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// `server.address` and `server.port`, fixed (e.g. the gateway's public name). Without
    /// it, each span records the server the transport really called (its [`ServerAddress`](claude_tower_core::ext::ServerAddress)
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

claude_tower_core::layer_service!(
    /// The service of a [`TraceLayer`].
    #[derive(Debug)]
    TraceLayer => Trace, config: Config
);

impl<S> Service<http::Request<MessagesRequest>> for Trace<S>
where
    S: MessagesService,
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
                    // Recorded at once (the hot path: no hook to build).
                    MessagesBody::Message(message) => {
                        record_end(&call, cost.as_ref(), Some(&message), None, None);
                        MessagesBody::Message(message)
                    }
                    stream => stream.on_end(Traced::new(call, cost)).0,
                };
                Poll::Ready(Ok(http::Response::from_parts(parts, body)))
            }
        }
    }
}
