//! Per-model behaviour of the mock: scripts, outages, context windows (for fallback chains,
//! circuit breakers and routers).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use claude_tower_core::MessagesRequest;

use crate::script::Attempt;

/// What one model does, beside the mock's shared script.
#[derive(Debug, Default)]
pub(crate) struct ModelRule {
    /// Played first, in order, for this model's requests.
    pub(crate) script: VecDeque<Attempt>,
    /// Every request for this model gets this attempt until the mock's clock passes `until`.
    pub(crate) outage: Option<(Attempt, Duration)>,
    /// Requests whose estimated input is above it get the API's 400 "prompt is too long".
    pub(crate) context_window: Option<u64>,
}

/// The rules of every model with one, and the workspace of each known API key.
#[derive(Debug, Default)]
pub(crate) struct ModelRules(
    pub(crate) HashMap<String, ModelRule>,
    pub(crate) HashMap<String, String>,
);

impl ModelRules {
    /// The workspace of the request's `x-api-key` (`""` when unknown): each has its own
    /// prompt cache, as the API's is per workspace.
    pub(crate) fn workspace_of(&self, headers: &http::HeaderMap) -> String {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .and_then(|key| self.1.get(key))
            .cloned()
            .unwrap_or_default()
    }

    /// The attempt this model's rules choose for a request at `now` (since the mock's epoch).
    pub(crate) fn attempt(&mut self, model: &str, now: Duration) -> Option<Attempt> {
        let rule = self.0.get_mut(model)?;
        if let Some((attempt, until)) = &rule.outage {
            if now < *until {
                return Some(attempt.clone());
            }
            rule.outage = None;
        }
        rule.script.pop_front()
    }

    /// The API's answer when the request does not fit the model's window.
    pub(crate) fn too_long(&self, body: &MessagesRequest) -> Option<String> {
        let window = self.0.get(&body.model)?.context_window?;
        let tokens = body.estimate_input_tokens();
        (tokens > window).then(|| format!("prompt is too long: {tokens} tokens > {window} maximum"))
    }
}
