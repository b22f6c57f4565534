//! With the `otel` feature, a call continues the caller's trace: a W3C `traceparent` header or
//! an `opentelemetry::Context` extension becomes the parent of the call's span; without one,
//! the call starts its own trace.

use claude_tower_core::MessagesRequest;
use claude_tower_mock::MockClaude;
use claude_tower_trace::TraceLayer;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::{ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

async fn call(
    exporter: &InMemorySpanExporter,
    provider: &SdkTracerProvider,
    edit: impl FnOnce(&mut http::Request<MessagesRequest>),
) -> SpanData {
    let mut request = MessagesRequest::new("claude-haiku-4-5", 50)
        .user("hi")
        .into_http();
    edit(&mut request);
    ServiceBuilder::new()
        .layer(TraceLayer::new())
        .service(MockClaude::new())
        .oneshot(request)
        .await
        .unwrap();
    provider.force_flush().unwrap();
    let mut spans = exporter.get_finished_spans().unwrap();
    exporter.reset();
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans.pop().unwrap()
}

#[tokio::test]
async fn an_inbound_trace_context_is_continued() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    // 1. A `traceparent` header.
    let span = call(&exporter, &provider, |request| {
        request.headers_mut().insert(
            "traceparent",
            format!("00-{TRACE}-{PARENT}-01").parse().unwrap(),
        );
    })
    .await;
    assert_eq!(span.name, "chat claude-haiku-4-5");
    assert_eq!(span.span_context.trace_id().to_string(), TRACE);
    assert_eq!(span.parent_span_id.to_string(), PARENT);

    // 2. An `opentelemetry::Context` extension wins over the header.
    let other = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let span = call(&exporter, &provider, |request| {
        request.headers_mut().insert(
            "traceparent",
            format!("00-{TRACE}-{PARENT}-01").parse().unwrap(),
        );
        request
            .extensions_mut()
            .insert(opentelemetry::Context::new().with_remote_span_context(other));
    })
    .await;
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");

    // 3. A malformed header and no header: a new root trace.
    for header in [Some("00-not-a-trace-01"), None] {
        let span = call(&exporter, &provider, |request| {
            if let Some(header) = header {
                request
                    .headers_mut()
                    .insert("traceparent", header.parse().unwrap());
            }
        })
        .await;
        assert_ne!(span.span_context.trace_id().to_string(), TRACE);
        assert_eq!(span.parent_span_id, SpanId::INVALID, "{header:?}");
    }
}
