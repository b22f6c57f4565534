//! Fit Claude conversations into a token budget, as tower middleware — without ever sending an
//! invalid request, and without breaking the prompt cache.
//!
//! [`TrimLayer`] keeps requests within a budget (the model's context window from the core
//! model table − `max_tokens` − a margin, or a fixed number):
//!
//! - keeps the system prompt and the first user message (pinned), drops the **oldest** turns,
//!   and only cuts where the result stays valid: no `tool_result` without its `tool_use`, no
//!   leading assistant turn, kept assistant turns untouched (their thinking blocks included),
//!   the newest user turn always kept;
//! - **cache-friendly**: cuts in chunks along a grid fixed from the start of the conversation
//!   (hysteresis, default 70 %), so the kept prefix stays byte-identical for many turns instead
//!   of sliding every turn and missing the prompt cache each time;
//! - optionally **summarizes** the dropped turns with any tower service, once per dropped
//!   range;
//! - counts with a [`TokenCounter`]: the fast core estimate (default) or exact
//!   `count_tokens` ([`CountTokensCounter`], cached per request), or a local tokenizer file
//!   such as the legacy Claude `tokenizer.json` (`TokenizerCounter`, feature
//!   `legacy-tokenizer`; the path is yours, nothing is downloaded);
//! - cuts oversized blocks only as a last resort and only when configured, with a visible
//!   marker; otherwise a request that cannot fit fails before sending with
//!   [`ErrorKind::InvalidRequest`](claude_tower_core::ErrorKind::InvalidRequest) saying by how
//!   much it is over;
//! - puts a [`TrimReport`] in the response extensions.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::MockClaude;
//! use claude_tower::trim::{TokenBudget, TrimLayer, TrimReport};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let service = ServiceBuilder::new()
//!     .layer(TrimLayer::new().budget(TokenBudget::Tokens(2_000)))
//!     .service(MockClaude::new());
//! let mut request = MessagesRequest::new("claude-haiku-4-5", 200).user("The task: keep this.");
//! for i in 0..40 {
//!     request = request.assistant(format!("Answer {i}")).user(format!("Follow-up {i}: {}", "details ".repeat(40)));
//! }
//! let response = service.oneshot(request.into_http()).await.unwrap();
//! let report = response.extensions().get::<TrimReport>().unwrap().clone();
//! assert!(report.messages_dropped > 0 && report.tokens_after <= 2_000);
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use claude_tower::trim::{TokenBudget, TrimLayer, TrimOptions};
//!
//! let options = TrimOptions::default().with_hysteresis(0.6).with_truncation(true);
//! let layer = TrimLayer::new().budget(TokenBudget::ContextWindow { margin_percent: 10 }).options(options);
//! # let _ = layer;
//! ```
//!
//! # Where it goes in the stack
//!
//! Outside the prompt-cache layout (which marks the trimmed request), inside the response
//! cache and the cost meter.
//!
//! # Errors
//!
//! `InvalidRequest` when the conversation cannot fit (nothing sent); the counter's or the
//! summarizer's errors.
//!
//! # Feature flags
//!
//! - `legacy-tokenizer`: `TokenizerCounter` (the `tokenizers` crate, pure-Rust regex).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod counter;
mod layer;
mod plan;

#[cfg(feature = "legacy-tokenizer")]
pub use counter::TokenizerCounter;
pub use counter::{CountTokensCounter, EstimateCounter, TokenCounter};
pub use layer::{ResponseFuture, Summarizer, TokenBudget, Trim, TrimLayer};
pub use plan::{
    Cut, TRUNCATION_MARKER, TrimOptions, TrimReport, apply_cut, dropped_messages, find_cut, trim,
    truncate_blocks,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
