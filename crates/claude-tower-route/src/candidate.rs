//! [`Candidate`]: one model of a fallback chain, with the parameters it needs.

use claude_tower_core::models::ModelTable;
use claude_tower_core::{Extra, MessagesRequest, ThinkingConfig};
use serde_json::Value;

/// One model of a fallback chain, with optional overrides applied to the request when it is
/// tried (a smaller model may need a lower `max_tokens`, no `thinking`, …).
///
/// ```
/// use claude_tower::route::Candidate;
/// use claude_tower::core::MessagesRequest;
///
/// let candidate = Candidate::new("claude-haiku-4-5").max_tokens(4_096).without_thinking();
/// let mut request = MessagesRequest::new("claude-opus-4-5", 32_000).user("hi");
/// candidate.apply(&mut request);
/// assert_eq!(request.model, "claude-haiku-4-5");
/// assert_eq!(request.max_tokens, 4_096);
/// assert_eq!(candidate.context_window(), 200_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    model: String,
    max_tokens: Option<u32>,
    thinking: Option<Option<ThinkingConfig>>,
    context_window: Option<u64>,
    fields: Extra,
}

impl Candidate {
    /// The model `model`, with the request's own parameters.
    #[must_use]
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            max_tokens: None,
            thinking: None,
            context_window: None,
            fields: Extra::new(),
        }
    }

    /// The model id.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Caps `max_tokens` at `max_tokens` for this model (a lower request value is kept).
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sends `thinking` to this model.
    #[must_use]
    pub fn thinking(mut self, thinking: ThinkingConfig) -> Self {
        self.thinking = Some(Some(thinking));
        self
    }

    /// Sends no `thinking` to this model.
    #[must_use]
    pub fn without_thinking(mut self) -> Self {
        self.thinking = Some(None);
        self
    }

    /// Its context window (default: the built-in model table's, e.g. 200,000 tokens).
    #[must_use]
    pub fn with_context_window(mut self, tokens: u64) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// Sets a top-level request field for this model (e.g. `speed`, `output_config`).
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: Value) -> Self {
        self.fields.insert(name.into(), value);
        self
    }

    /// The context window used to skip it before sending.
    #[must_use]
    pub fn context_window(&self) -> u64 {
        self.context_window
            .unwrap_or_else(|| ModelTable::builtin().context_window(&self.model))
    }

    /// Rewrites `request` for this candidate.
    pub fn apply(&self, request: &mut MessagesRequest) {
        request.model.clone_from(&self.model);
        if let Some(max_tokens) = self.max_tokens {
            request.max_tokens = request.max_tokens.min(max_tokens);
        }
        if let Some(thinking) = &self.thinking {
            request.thinking.clone_from(thinking);
        }
        for (name, value) in &self.fields {
            request.extra.insert(name.clone(), value.clone());
        }
    }

    /// This candidate as an entry of the API's server-side `fallbacks` list.
    pub(crate) fn server_side(&self) -> Value {
        let mut entry = serde_json::Map::new();
        entry.insert("model".to_owned(), Value::String(self.model.clone()));
        if let Some(max_tokens) = self.max_tokens {
            entry.insert("max_tokens".to_owned(), Value::from(max_tokens));
        }
        if let Some(Some(thinking)) = &self.thinking
            && let Ok(value) = serde_json::to_value(thinking)
        {
            entry.insert("thinking".to_owned(), value);
        }
        for name in ["output_config", "speed"] {
            if let Some(value) = self.fields.get(name) {
                entry.insert(name.to_owned(), value.clone());
            }
        }
        Value::Object(entry)
    }
}

impl<T: Into<String>> From<T> for Candidate {
    fn from(model: T) -> Self {
        Self::new(model)
    }
}
