//! Typed Claude Messages API types for claude-tower: the request and response bodies, the
//! streamed events, usage, the one [`Error`] type, request validation and a fast token
//! estimate.
//!
//! Every layer of a claude-tower stack is a `tower::Service` from
//! `http::Request<`[`MessagesRequest`]`>` to `http::Response<`[`MessagesBody`]`>` with
//! [`Error`] as its error. Headers carry betas, the request id and rate-limit headers; typed
//! extensions carry what layers tell each other.
//!
//! Types never lose data: unknown fields land in `extra` maps, unknown content blocks, deltas
//! and events in `Unknown` variants, and all of them serialize back unchanged. Model ids are
//! plain strings.
//!
//! # Example
//!
//! Build and validate a request, then call the built-in mock (`claude-tower-mock`) like any
//! other service:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), claude_tower::core::Error> {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::MockClaude;
//! use tower::ServiceExt;
//!
//! let request = MessagesRequest::new("claude-haiku-4-5", 256)
//!     .system("Be brief.")
//!     .user("Hello, Claude");
//! request.validate()?;
//! println!("about {} input tokens", request.estimate_input_tokens());
//!
//! let response = MockClaude::new().oneshot(request.into_http()).await?;
//! let message = response.into_body().into_message().await?;
//! assert!(!message.text().is_empty());
//! assert!(message.usage.output_tokens > 0);
//! # Ok(())
//! # }
//! ```
//!
//! # Streams
//!
//! With `stream: true` the body is a [`MessagesBody::Stream`] of [`StreamEvent`]s; a
//! [`MessageAccumulator`] (or [`MessagesBody::into_message`]) rebuilds the final message with
//! the API's rules (usage from `message_start`, overwritten by each `message_delta`).
//!
//! # Errors
//!
//! [`Error`] is opaque with an [`ErrorKind`] and accessors ([`Error::status`],
//! [`Error::error_type`], [`Error::request_id`], [`Error::retry_after`],
//! [`Error::should_retry_header`], [`Error::is_spend_cap`], [`Error::is_retryable`]).
//!
//! # Feature flags
//!
//! None yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accumulate;
pub mod batch;
mod body;
pub mod clock;
mod content;
pub mod end;
mod error;
pub mod estimate;
pub mod ext;
pub mod headers;
pub mod layer_state;
pub mod layout;
pub(crate) mod macros;
pub mod models;
pub mod rate_limit;
pub mod readiness;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod request;
mod response;
mod retry_after;
mod store_future;
mod stream;

mod validate;

pub use accumulate::MessageAccumulator;
pub use body::{BoxResponseFuture, EventStream, MessagesBody, MessagesService};
pub use content::{
    CacheControl, CacheTtl, ContentBlock, Extra, FallbackHop, GenericBlock, MediaBlock,
    RedactedThinkingBlock, ServerToolResultBlock, TextBlock, ThinkingBlock, ToolResultBlock,
    ToolResultContent, ToolUseBlock,
};
pub use error::{
    ApiErrorBody, BoxError, Error, ErrorEnvelope, ErrorKind, SPEND_CAP_ERROR_CODE,
    SPEND_LIMIT_ERROR_CODES,
};
pub use request::{
    InputSchema, MessageContent, MessageParam, MessagesRequest, Metadata, OutputConfig, Role,
    System, ThinkingConfig, ThinkingEnabled, ThinkingOther, Tool, ToolChoice,
};
pub use response::{
    CacheCreation, CacheMiss, Message, MessageDeltaUsage, OutputTokensDetails, ServerToolUsage,
    StopReason, Usage,
};
pub use retry_after::{
    DEFAULT_MAX_RETRY_AFTER, RETRY_AFTER_IGNORED_ABOVE, parse_retry_after, sanitize_retry_after,
    saturating_secs,
};
pub use store_future::StoreFuture;
pub use stream::{
    CitationsDelta, ContentBlockDeltaEvent, ContentBlockStartEvent, ContentBlockStopEvent, Delta,
    EmptyEvent, ErrorEvent, InputJsonDelta, MessageDelta, MessageDeltaEvent, MessageStartEvent,
    SignatureDelta, StreamEvent, TextDelta, ThinkingDelta,
};
pub use validate::MAX_CACHE_BREAKPOINTS;

/// The request type every claude-tower layer takes.
pub type Request = http::Request<MessagesRequest>;
/// The response type every claude-tower layer returns.
pub type Response = http::Response<MessagesBody>;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// What the exported macros name, so a crate using them needs no dependency of its own.
#[doc(hidden)]
pub mod __macro_support {
    pub use http;
    pub use tower::{Layer, Service};
}
