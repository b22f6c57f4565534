//! Tracing spans and OpenTelemetry metrics for Claude Messages API calls, in the OpenTelemetry
//! GenAI semantic conventions.
//!
//! [`TraceLayer`] opens one `tracing` span per call — named `chat {model}` for OpenTelemetry
//! (`otel.name`; the `tracing` name is `chat`), kind client — with the GenAI attributes of
//! [`attributes`]: operation, provider (`anthropic`), request model / max tokens / temperature /
//! top_p / top_k / stream, response id / model / finish reasons, usage (with
//! `gen_ai.usage.input_tokens` = input + cache read + cache creation, as the spec requires for
//! Anthropic), cache creation and read tokens, reasoning tokens, `error.type`,
//! `server.address`/`port`, time to first chunk, `anthropic.request.id`, and — when inner
//! layers put them in the extensions — attempts, cost and cache status. For streams the span
//! stays open until the stream ends and records mid-stream errors.
//!
//! Message content is **never** recorded unless switched on with
//! [`TraceLayer::capture_content`] (with a size cap). Credentials are never recorded: the
//! layer only sees the request body and response headers.
//!
//! Metrics go through the `opentelemetry` API: `gen_ai.client.token.usage`,
//! `gen_ai.client.operation.duration`, `…time_to_first_chunk`, `…time_per_output_chunk`, with
//! the spec's bucket boundaries, and our `claude_tower.client.prompt_cache.read_ratio`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::MockClaude;
//! use claude_tower::trace::TraceLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // With `tracing-opentelemetry` installed, each call becomes an OpenTelemetry span.
//! let service = ServiceBuilder::new().layer(TraceLayer::new()).service(MockClaude::new());
//! let request = MessagesRequest::new("claude-haiku-4-5", 100).user("hi");
//! service.oneshot(request.into_http()).await.unwrap();
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use claude_tower::trace::TraceLayer;
//!
//! let meter = opentelemetry::global::meter("my-service");
//! let layer = TraceLayer::with_meter(&meter)
//!     .server("gateway.internal", 8443)
//!     .capture_content(4096); // opt-in: prompts and replies, cut at 4 KB each
//! # let _ = layer;
//! ```
//!
//! # Where it goes in the stack
//!
//! Outermost, so the span covers retries, budgets and cache hits, and sees what the inner
//! layers put in the extensions.
//!
//! # Errors
//!
//! None of its own: errors pass through, recorded as `error.type`.
//!
//! # Continuing the caller's trace
//!
//! With the `otel` feature, a call whose request carries a W3C `traceparent` header (as the
//! official SDKs send, or as a gateway received it) or an `opentelemetry::Context` in its
//! extensions becomes a child of that trace instead of a new root. Without it, the span nests
//! under the current `tracing` span as usual.
//!
//! # Feature flags
//!
//! - `otel` (off): continue an inbound trace context (adds `tracing-opentelemetry`,
//!   `opentelemetry_sdk` with `trace`, `opentelemetry-http`).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attributes;
mod body;
#[cfg(feature = "otel")]
mod context;
mod layer;
mod record;

pub use layer::{ResponseFuture, Trace, TraceLayer};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
