//! What may be cached.

use std::fmt;

use claude_tower_core::{Message, MessagesRequest, StopReason};

/// Per-request control, as a **request** extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseCacheMode {
    /// Cache this request even if the policy would not (e.g. `temperature` unset).
    OptIn,
    /// Do not read or write the cache.
    Bypass,
    /// Do not read the cache; send upstream and store the fresh answer.
    Refresh,
}

/// Decides what may be cached. The default is [`DeterministicPolicy`].
pub trait CachePolicy: fmt::Debug + Send + Sync + 'static {
    /// Whether a request may be answered from (and stored in) the cache.
    fn cacheable_request(&self, request: &http::Request<MessagesRequest>) -> bool;

    /// Whether a reply may be stored.
    fn cacheable_response(&self, message: &Message) -> bool;
}

/// Caches requests that are deterministic enough — `temperature == 0` — or opted in with
/// [`ResponseCacheMode::OptIn`]; never stores refusals, `max_tokens`-truncated replies or replies
/// without a stop reason, unless configured to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeterministicPolicy {
    cache_truncated: bool,
    cache_refusals: bool,
}

impl DeterministicPolicy {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    claude_tower_core::setters! {
        /// Also store replies cut by `max_tokens`.
        pub fn cache_truncated(yes: bool) => cache_truncated = yes;
        /// Also store refusals.
        pub fn cache_refusals(yes: bool) => cache_refusals = yes;
    }
}

impl CachePolicy for DeterministicPolicy {
    fn cacheable_request(&self, request: &http::Request<MessagesRequest>) -> bool {
        request.extensions().get::<ResponseCacheMode>() == Some(&ResponseCacheMode::OptIn)
            || request.body().temperature == Some(0.0)
    }

    fn cacheable_response(&self, message: &Message) -> bool {
        match &message.stop_reason {
            None => false,
            Some(StopReason::Refusal) => self.cache_refusals,
            Some(StopReason::MaxTokens) => self.cache_truncated,
            Some(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_is_object_safe() {
        fn _assert(_: &dyn super::CachePolicy) {}
    }
}
