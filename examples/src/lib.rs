//! Examples for claude-tower live in `examples/`; run one with
//! `cargo run -p claude-tower-examples --example quickstart`. This library holds what they share.

use claude_tower_mock::MockServer;
use claude_tower_transport::Transport;

/// The backend of an example: the real API when `ANTHROPIC_API_KEY` is set, otherwise the
/// built-in mock server on a loopback port (returned too: keep it alive, it stops when
/// dropped).
///
/// # Errors
/// When the transport cannot be built or the mock cannot bind.
pub async fn backend() -> Result<(Transport, Option<MockServer>), Box<dyn std::error::Error>> {
    if std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.trim().is_empty()) {
        return Ok((Transport::from_env()?, None));
    }
    let server = MockServer::start().await?;
    Ok((server.transport()?, Some(server)))
}

/// The model of the examples: `CLAUDE_MODEL`, default `claude-haiku-4-5`.
#[must_use]
pub fn model() -> String {
    std::env::var("CLAUDE_MODEL").unwrap_or_else(|_| "claude-haiku-4-5".to_owned())
}
