//! OpenTelemetry: GenAI spans for every call, exported with OTLP over HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g. `http://127.0.0.1:4318`), printed to stdout
//! otherwise.
//!
//! ```text
//! cargo run -p claude-tower-examples --example opentelemetry
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run -p claude-tower-examples --example opentelemetry
//! ```
//!
//! The stack is trace → retry → cost → the built-in mock (or the real API when
//! `ANTHROPIC_API_KEY` is set). Message content is not recorded (see
//! `TraceLayer::capture_content`).
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower_core::MessagesRequest;
use claude_tower_cost::CostLayer;
use claude_tower_retry::RetryLayer;
use claude_tower_trace::TraceLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower::{ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) => {
            println!("exporting spans to {endpoint} (OTLP/HTTP)");
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()?;
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .build()
        }
        Err(_) => {
            println!("no OTEL_EXPORTER_OTLP_ENDPOINT: printing spans to stdout");
            SdkTracerProvider::builder()
                .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
                .build()
        }
    };
    let tracer = provider.tracer("claude-tower-example");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber)?;

    let (transport, _mock) = claude_tower_examples::backend().await?;
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new())
        .layer(RetryLayer::new())
        .layer(CostLayer::new())
        .service(transport);

    for (prompt, stream) in [("What is a span?", false), ("And a trace?", true)] {
        let request = MessagesRequest::new("claude-haiku-4-5", 200)
            .user(prompt)
            .stream(stream);
        let message = stack
            .clone()
            .oneshot(request.into_http())
            .await?
            .into_body()
            .into_message()
            .await?;
        println!("reply: {}", message.text());
    }
    provider.shutdown()?;
    Ok(())
}
