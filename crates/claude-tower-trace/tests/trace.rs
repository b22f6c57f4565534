//! The trace layer with a capturing subscriber and the OpenTelemetry SDK's in-memory metric
//! exporter: every attribute for a non-stream success, a stream success, an HTTP error and a
//! mid-stream `overloaded_error`; the stream span lasts as long as the stream; no content and
//! no key unless asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_tower_core::ext::{Attempts, CostCell, ResponseCacheStatus};
use claude_tower_core::{ErrorKind, MessagesRequest};
use claude_tower_mock::{Attempt, MockClaude};
use claude_tower_trace::TraceLayer;
use futures_util::StreamExt;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: String,
    fields: HashMap<String, String>,
    opened: Option<Instant>,
    closed: Option<Instant>,
}

#[derive(Clone, Default)]
struct Capture {
    live: Arc<Mutex<HashMap<u64, SpanRecord>>>,
    closed: Arc<Mutex<Vec<SpanRecord>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>
    tracing_subscriber::Layer<S> for Capture
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut record = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            opened: Some(Instant::now()),
            ..SpanRecord::default()
        };
        attrs.record(&mut Fields(&mut record.fields));
        self.live.lock().unwrap().insert(id.into_u64(), record);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(record) = self.live.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut record.fields));
        }
    }
    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        if let Some(mut record) = self.live.lock().unwrap().remove(&id.into_u64()) {
            record.closed = Some(Instant::now());
            self.closed.lock().unwrap().push(record);
        }
    }
}

impl Capture {
    fn take(&self) -> SpanRecord {
        let mut closed = self.closed.lock().unwrap();
        assert_eq!(closed.len(), 1, "one span per call: {closed:?}");
        closed.pop().unwrap()
    }
}

fn request() -> MessagesRequest {
    let mut r = MessagesRequest::new("claude-haiku-4-5", 300)
        .system("SECRET-SYSTEM-PROMPT")
        .user("SECRET-USER-TEXT please")
        .temperature(0.2);
    r.top_p = Some(0.9);
    r.top_k = Some(40);
    r
}

fn field<'a>(span: &'a SpanRecord, name: &str) -> &'a str {
    span.fields.get(name).map_or_else(
        || panic!("{name} missing from {:?}", span.fields),
        String::as_str,
    )
}

fn metrics(
    exporter: &InMemoryMetricExporter,
    provider: &SdkMeterProvider,
) -> HashMap<String, Vec<(u64, Vec<(String, String)>)>> {
    provider.force_flush().unwrap();
    let mut out: HashMap<String, Vec<(u64, Vec<(String, String)>)>> = HashMap::new();
    for resource in exporter.get_finished_metrics().unwrap() {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics() {
                let mut push = |count: u64, attrs: Vec<(String, String)>| {
                    out.entry(metric.name().to_owned())
                        .or_default()
                        .push((count, attrs))
                };
                match metric.data() {
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            push(
                                p.count(),
                                p.attributes()
                                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                                    .collect(),
                            );
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            push(
                                p.count(),
                                p.attributes()
                                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                                    .collect(),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    exporter.reset();
    out
}

#[tokio::test(start_paused = true)]
async fn spans_and_metrics_for_success_stream_error_and_mid_stream_error() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let meter = provider.meter("test");

    // Inner layers' extensions, as the retry, cost and cache layers would set them.
    let mock = MockClaude::new().with_script([
        Attempt::ok(),
        Attempt::ok().with_event_delay(Duration::from_millis(250)),
        Attempt::overloaded(),
        Attempt::mid_stream_error(3, "overloaded_error"),
    ]);
    let with_extensions = tower::service_fn(move |request| {
        let mock = mock.clone();
        async move {
            let mut response = mock.oneshot(request).await?;
            let mut attempts = Attempts::default();
            attempts.count = 2;
            response.extensions_mut().insert(attempts);
            response.extensions_mut().insert(ResponseCacheStatus::Miss);
            let cost = CostCell::default();
            cost.set(claude_tower_core::ext::Picodollars(1_250_000_000));
            response.extensions_mut().insert(cost);
            Ok::<_, claude_tower_core::Error>(response)
        }
    });
    let service = ServiceBuilder::new()
        .layer(TraceLayer::with_meter(&meter))
        .service(with_extensions);

    // 1. Non-stream success.
    let message = service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    let span = capture.take();
    assert_eq!(span.name, "chat");
    for (name, value) in [
        ("otel.name", "chat claude-haiku-4-5"),
        ("otel.kind", "client"),
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "anthropic"),
        ("gen_ai.request.model", "claude-haiku-4-5"),
        ("gen_ai.request.max_tokens", "300"),
        ("gen_ai.request.temperature", "0.2"),
        ("gen_ai.request.top_p", "0.9"),
        ("gen_ai.request.top_k", "40"),
        ("gen_ai.response.model", "claude-haiku-4-5"),
        ("gen_ai.response.finish_reasons", r#"["end_turn"]"#),
        ("server.address", "api.anthropic.com"),
        ("server.port", "443"),
        ("anthropic.request.id", "req_mock_00000000000000000001"),
        ("claude_tower.attempts", "2"),
        ("claude_tower.cache_status", "miss"),
        ("claude_tower.cost_usd", "0.00125"),
    ] {
        assert_eq!(field(&span, name), value, "{name}");
    }
    assert_eq!(field(&span, "gen_ai.response.id"), message.id);
    assert_eq!(
        field(&span, "gen_ai.usage.input_tokens"),
        message.usage.total_input_tokens().to_string()
    );
    assert_eq!(
        field(&span, "gen_ai.usage.output_tokens"),
        message.usage.output_tokens.to_string()
    );
    assert_eq!(
        field(&span, "gen_ai.usage.cache_creation.input_tokens"),
        "0"
    );
    assert_eq!(field(&span, "gen_ai.usage.cache_read.input_tokens"), "0");
    assert!(
        !span.fields.contains_key("gen_ai.request.stream"),
        "only set for streams"
    );
    assert!(!span.fields.contains_key("error.type"));
    let recorded = metrics(&exporter, &provider);
    let tokens = &recorded["gen_ai.client.token.usage"];
    assert_eq!(tokens.len(), 2, "input and output");
    assert!(
        tokens
            .iter()
            .any(|(_, attrs)| attrs.contains(&("gen_ai.token.type".into(), "input".into())))
    );
    assert_eq!(recorded["gen_ai.client.operation.duration"][0].0, 1);
    assert!(recorded.contains_key("claude_tower.client.prompt_cache.read_ratio"));

    // 2. Stream success: the span lasts until the stream ends.
    let response = service
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let started = Instant::now();
    let mut events = response.into_body().into_stream();
    let mut count = 0;
    while let Some(event) = events.next().await {
        event.unwrap();
        count += 1;
        assert!(
            capture.closed.lock().unwrap().is_empty(),
            "span still open mid-stream"
        );
    }
    let streamed_for = started.elapsed();
    drop(events);
    let span = capture.take();
    assert_eq!(field(&span, "gen_ai.request.stream"), "true");
    assert_eq!(
        field(&span, "gen_ai.response.finish_reasons"),
        r#"["end_turn"]"#
    );
    assert_eq!(field(&span, "gen_ai.response.time_to_first_chunk"), "0.25");
    assert!(
        span.closed.unwrap() - span.opened.unwrap() >= streamed_for,
        "the span covers the whole stream"
    );
    assert!(streamed_for >= Duration::from_millis(250) * (count - 1));
    let recorded = metrics(&exporter, &provider);
    assert_eq!(
        recorded["gen_ai.client.operation.time_to_first_chunk"][0].0,
        1
    );
    assert_eq!(
        recorded["gen_ai.client.operation.time_per_output_chunk"][0].0,
        1
    );

    // 3. HTTP error.
    let error = service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    let span = capture.take();
    assert_eq!(field(&span, "error.type"), "overloaded_error");
    assert_eq!(field(&span, "otel.status_code"), "ERROR");
    assert_eq!(
        field(&span, "anthropic.request.id"),
        "req_mock_00000000000000000003"
    );
    let recorded = metrics(&exporter, &provider);
    // Cumulative temporality: the error point sits beside the earlier successes.
    assert!(
        recorded["gen_ai.client.operation.duration"]
            .iter()
            .any(|(count, attrs)| *count == 1
                && attrs.contains(&("error.type".into(), "overloaded_error".into())))
    );

    // 4. Mid-stream overloaded_error.
    let response = service
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let items: Vec<_> = response.into_body().into_stream().collect().await;
    assert!(items.last().unwrap().is_err());
    let span = capture.take();
    assert_eq!(field(&span, "error.type"), "overloaded_error");
    assert_eq!(
        field(&span, "gen_ai.response.model"),
        "claude-haiku-4-5",
        "what arrived before the error is kept"
    );

    // Content is never recorded by default.
    for record in [span] {
        for value in record.fields.values() {
            assert!(!value.contains("SECRET"), "content leaked: {value}");
        }
    }
}

#[tokio::test]
async fn content_capture_is_opt_in_and_capped() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new().capture_content(45))
        .service(MockClaude::new());
    service.oneshot(request().into_http()).await.unwrap();
    let span = capture.take();
    assert!(field(&span, "gen_ai.input.messages").contains("SECRET-USER-TEXT"));
    assert!(
        field(&span, "gen_ai.input.messages").contains("…[truncated"),
        "capped at 45 bytes"
    );
    assert!(field(&span, "gen_ai.system_instructions").contains("SECRET-SYSTEM-PROMPT"));
    assert!(field(&span, "gen_ai.output.messages").contains("Hello from the"));
}

/// The response's `diagnostics.cache_miss_reason` lands on the span, streamed or not; a
/// `null` reason is `pending`.
#[tokio::test]
async fn cache_miss_reason_is_recorded_on_the_span() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let reply = |diagnostics: serde_json::Value| {
        let mut message = claude_tower_core::Message::new("msg_d", "claude-haiku-4-5");
        message
            .content
            .push(claude_tower_core::ContentBlock::text("hi"));
        message.stop_reason = Some(claude_tower_core::StopReason::EndTurn);
        message.extra.insert("diagnostics".to_owned(), diagnostics);
        Attempt::message(message)
    };
    let mock = MockClaude::new().with_script([
        reply(serde_json::json!({"cache_miss_reason": {"type": "system_changed", "cache_missed_input_tokens": 4100}})),
        reply(serde_json::json!({"cache_miss_reason": "model_changed", "cache_missed_input_tokens": 12})),
        reply(serde_json::json!({"cache_miss_reason": null})),
    ]);
    let service = ServiceBuilder::new().layer(TraceLayer::new()).service(mock);
    for (stream, reason, tokens) in [
        (false, "system_changed", Some("4100")),
        (true, "model_changed", Some("12")),
        (true, "pending", None),
    ] {
        let response = service
            .clone()
            .oneshot(request().stream(stream).into_http())
            .await
            .unwrap();
        response.into_body().into_message().await.unwrap();
        let span = capture.take();
        assert_eq!(field(&span, "anthropic.cache_miss_reason"), reason);
        assert_eq!(
            span.fields
                .get("anthropic.cache_missed_input_tokens")
                .map(String::as_str),
            tokens
        );
    }
}

/// `server.address` / `server.port` come from the server the transport really called (its
/// `ServerAddress` response extension), unless `server(…)` pinned them.
#[tokio::test]
async fn the_server_address_is_the_one_really_called_unless_pinned() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let upstream = tower::service_fn(|request| async move {
        let mut response = MockClaude::new().oneshot(request).await?;
        response
            .extensions_mut()
            .insert(claude_tower_core::ext::ServerAddress::new("10.0.0.7", 8080));
        Ok::<_, claude_tower_core::Error>(response)
    });
    for (layer, address, port) in [
        (TraceLayer::new(), "10.0.0.7", "8080"),
        (
            TraceLayer::new().server("gateway.internal", 8443),
            "gateway.internal",
            "8443",
        ),
    ] {
        ServiceBuilder::new()
            .layer(layer)
            .service(upstream)
            .oneshot(request().into_http())
            .await
            .unwrap();
        let span = capture.take();
        assert_eq!(field(&span, "server.address"), address);
        assert_eq!(field(&span, "server.port"), port);
    }
}
