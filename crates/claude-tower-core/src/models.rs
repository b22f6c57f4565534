//! Model facts as **data** (`data/models.json`): context window, max output and the minimum
//! cacheable prompt length per model id, each with its source and date. Used by the mock's
//! cache simulation, the prompt-cache layout and trimming.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The shipped model table.
pub const BUILTIN_MODELS: &str = include_str!("../data/models.json");

/// Facts about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model id.
    pub model: String,
    /// Other ids of the same model (dated snapshots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Context window in tokens.
    pub context_window: u64,
    /// Maximum output tokens.
    pub max_output: u64,
    /// Minimum cacheable prompt length: a shorter prefix is not cached (and no error is
    /// returned).
    pub cache_min_tokens: u64,
    /// Whether the model counts tokens like the legacy Claude tokenizer the core estimate was
    /// measured against (models before Opus 4.7 / Sonnet 5). `false` (also for unknown
    /// models) selects the wider error bound of
    /// [`estimate::upper_bound`](crate::estimate::upper_bound).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_tokenizer: bool,
    /// Where the numbers come from.
    pub source: String,
    /// When they were read.
    pub as_of: String,
}

#[derive(Deserialize)]
struct File {
    models: Vec<ModelInfo>,
}

/// Model facts by id (exact, alias, or without a `-YYYYMMDD` suffix).
///
/// ```
/// use claude_tower::core::models::ModelTable;
/// let table = ModelTable::builtin();
/// assert_eq!(table.get("claude-haiku-4-5-20251001").unwrap().cache_min_tokens, 4096);
/// assert_eq!(table.cache_min_tokens("claude-unknown"), 1024, "unknown models: a conservative default");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ModelTable {
    models: Vec<ModelInfo>,
    /// ahash: looked up on most requests by several layers; SipHash on a model id costs more
    /// than the rest of the lookup.
    index: HashMap<String, usize, ahash::RandomState>,
}

/// Minimum cacheable length assumed for a model the table does not know.
pub const DEFAULT_CACHE_MIN_TOKENS: u64 = 1024;
/// Context window assumed for a model the table does not know.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 200_000;

impl ModelTable {
    /// The shipped table (parsed once).
    ///
    /// # Panics
    /// Never: the shipped data is checked by the tests.
    #[must_use]
    pub fn builtin() -> &'static Self {
        static TABLE: OnceLock<ModelTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            Self::from_json(BUILTIN_MODELS).expect("the shipped model table parses")
        })
    }

    /// A table from JSON of the shipped shape (`{"models": [...]}`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the JSON does not parse.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let file: File = serde_json::from_str(json)
            .map_err(|e| Error::config(format!("invalid model table: {e}")))?;
        let mut table = Self::default();
        for model in file.models {
            table = table.with_model(model);
        }
        Ok(table)
    }

    /// Adds or replaces a model.
    #[must_use]
    pub fn with_model(mut self, info: ModelInfo) -> Self {
        let ids: Vec<String> = std::iter::once(&info.model)
            .chain(&info.aliases)
            .cloned()
            .collect();
        let position = match self.index.get(&info.model) {
            Some(&i) => {
                self.models[i] = info;
                i
            }
            None => {
                self.models.push(info);
                self.models.len() - 1
            }
        };
        for id in ids {
            self.index.insert(id, position);
        }
        self
    }

    /// Facts about a model.
    #[must_use]
    pub fn get(&self, model: &str) -> Option<&ModelInfo> {
        if let Some(&i) = self.index.get(model) {
            return Some(&self.models[i]);
        }
        let (base, suffix) = model.rsplit_once('-')?;
        (suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_digit()))
            .then(|| self.index.get(base).map(|&i| &self.models[i]))
            .flatten()
    }

    /// The table's own copy of `model` when it is exactly one of the table's ids or aliases
    /// (for [`builtin`](Self::builtin) a `&'static str`, so callers can keep it without
    /// allocating).
    ///
    /// ```
    /// use claude_tower::core::models::ModelTable;
    /// let id: &'static str = ModelTable::builtin().known_id("claude-haiku-4-5").unwrap();
    /// assert_eq!(id, "claude-haiku-4-5");
    /// assert!(ModelTable::builtin().known_id("claude-unknown").is_none());
    /// ```
    #[must_use]
    pub fn known_id(&self, model: &str) -> Option<&str> {
        self.index.get_key_value(model).map(|(id, _)| id.as_str())
    }

    /// The minimum cacheable length of a model ([`DEFAULT_CACHE_MIN_TOKENS`] if unknown).
    #[must_use]
    pub fn cache_min_tokens(&self, model: &str) -> u64 {
        self.get(model)
            .map_or(DEFAULT_CACHE_MIN_TOKENS, |m| m.cache_min_tokens)
    }

    /// The context window of a model ([`DEFAULT_CONTEXT_WINDOW`] if unknown).
    #[must_use]
    pub fn context_window(&self, model: &str) -> u64 {
        self.get(model)
            .map_or(DEFAULT_CONTEXT_WINDOW, |m| m.context_window)
    }

    /// Whether `model` uses the legacy tokenizer (`false` if unknown: the wider bound).
    #[must_use]
    pub fn legacy_tokenizer(&self, model: &str) -> bool {
        self.get(model).is_some_and(|m| m.legacy_tokenizer)
    }

    /// The models.
    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_has_sources_and_dates() {
        let table = ModelTable::builtin();
        assert!(table.models().count() >= 20);
        for m in table.models() {
            assert!(!m.source.is_empty() && m.as_of.len() == 10, "{}", m.model);
        }
        assert_eq!(table.cache_min_tokens("claude-opus-4-7-20260416"), 2048);
        assert_eq!(table.context_window("claude-sonnet-4-6"), 1_000_000);
    }
}
