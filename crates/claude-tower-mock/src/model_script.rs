//! The mock's per-model builders: scripts, outages, context windows (see `models`).

use std::time::Duration;

use crate::script::Attempt;
use crate::service::MockClaude;

impl MockClaude {
    /// Appends attempts to `model`'s own script: its requests play them first (before the
    /// shared script), e.g. a refusal or an overload of one model in a fallback chain.
    #[must_use]
    pub fn with_model_script(
        self,
        model: impl Into<String>,
        attempts: impl IntoIterator<Item = Attempt>,
    ) -> Self {
        self.push_model_script(model, attempts);
        self
    }

    /// Appends attempts to `model`'s own script (shared by all clones).
    pub fn push_model_script(
        &self,
        model: impl Into<String>,
        attempts: impl IntoIterator<Item = Attempt>,
    ) {
        let mut state = self.lock();
        state
            .models
            .0
            .entry(model.into())
            .or_default()
            .script
            .extend(attempts);
    }

    /// An outage of `model`: every request for it gets `attempt` (e.g.
    /// [`Attempt::overloaded`]) for `duration` from now, on tokio's clock (tests can pause it).
    #[must_use]
    pub fn with_model_outage(
        self,
        model: impl Into<String>,
        attempt: Attempt,
        duration: Duration,
    ) -> Self {
        let mut state = self.lock();
        let until = state.epoch.elapsed().saturating_add(duration);
        state.models.0.entry(model.into()).or_default().outage = Some((attempt, until));
        drop(state);
        self
    }

    /// `model`'s context window: a request whose estimated input is larger gets the API's
    /// 400 "prompt is too long: N tokens > M maximum".
    #[must_use]
    pub fn with_context_window(self, model: impl Into<String>, tokens: u64) -> Self {
        self.lock()
            .models
            .0
            .entry(model.into())
            .or_default()
            .context_window = Some(tokens);
        self
    }

    /// Maps API keys to workspaces: each workspace has its own simulated prompt cache (the
    /// API's is per workspace), so a key pool that splits a conversation across workspaces
    /// sees fewer cache reads. Requests with another key (or none) share one cache.
    #[must_use]
    pub fn with_workspace_keys<K: Into<String>, W: Into<String>>(
        self,
        keys: impl IntoIterator<Item = (K, W)>,
    ) -> Self {
        let mut state = self.lock();
        for (key, workspace) in keys {
            state.models.1.insert(key.into(), workspace.into());
        }
        drop(state);
        self
    }

    /// How many requests for `model` were received.
    #[must_use]
    pub fn request_count_for(&self, model: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.body.model == model)
            .count()
    }
}
