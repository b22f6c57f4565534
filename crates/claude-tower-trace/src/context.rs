//! Continuing the caller's trace (feature `otel`): the official SDKs propagate W3C trace
//! context, so a gateway or service that received a `traceparent` should see its Claude calls
//! inside the caller's trace, not as new root traces.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes the caller's trace context the parent of `span`: an `opentelemetry::Context` in the
/// request's extensions first (any propagation format the caller decoded), else the W3C
/// `traceparent` / `tracestate` headers. An invalid or absent context leaves the span where
/// `tracing` put it (under the current span).
pub(crate) fn continue_inbound<B>(span: &Span, request: &http::Request<B>) {
    let context = match request.extensions().get::<opentelemetry::Context>() {
        Some(context) => context.clone(),
        None if request.headers().contains_key("traceparent") => {
            TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()))
        }
        None => return,
    };
    if context.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
        let _ = span.set_parent(context);
    }
}
