//! Token counting: [`TokenCounter`], with the fast core estimate ([`EstimateCounter`], the
//! default) and exact counting through any `count_tokens` function ([`CountTokensCounter`],
//! cached per request).

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use claude_tower_core::{Error, MessagesRequest};
use futures_util::future::BoxFuture;

/// Counts the input tokens of a request.
pub trait TokenCounter: fmt::Debug + Send + Sync + 'static {
    /// The request's input tokens.
    fn count<'a>(&'a self, request: &'a MessagesRequest) -> BoxFuture<'a, Result<u64, Error>>;

    /// Whether the count is the core estimate
    /// ([`InputEstimate`](claude_tower_core::layout::InputEstimate)): the layer then reads
    /// the request's shared estimate instead of asking (and the other layers reuse it).
    fn is_core_estimate(&self) -> bool {
        false
    }
}

/// The core estimate ([`MessagesRequest::estimate_input_tokens`]): instant, no network; its
/// error bound is documented in `claude_tower_core::estimate` (about ±10 % on whole mixed
/// conversations, more on single pieces) — keep a safety margin.
#[derive(Debug, Clone, Copy, Default)]
pub struct EstimateCounter;

impl TokenCounter for EstimateCounter {
    fn count<'a>(&'a self, request: &'a MessagesRequest) -> BoxFuture<'a, Result<u64, Error>> {
        let tokens = request.estimate_input_tokens();
        Box::pin(async move { Ok(tokens) })
    }

    fn is_core_estimate(&self) -> bool {
        true
    }
}

type CountFn = Arc<dyn Fn(MessagesRequest) -> BoxFuture<'static, Result<u64, Error>> + Send + Sync>;

/// Exact counts from a `count_tokens` function (e.g. the transport's
/// `Transport::count_tokens`), remembered per request content so an unchanged prefix is
/// counted once.
///
/// ```
/// use claude_tower::trim::CountTokensCounter;
/// let counter = CountTokensCounter::new(|request| Box::pin(async move { Ok(request.estimate_input_tokens()) }));
/// # let _ = counter;
/// ```
#[derive(Clone)]
pub struct CountTokensCounter {
    count: CountFn,
    cache: Arc<Mutex<HashMap<u64, u64>>>,
}

impl fmt::Debug for CountTokensCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("CountTokensCounter")
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

impl CountTokensCounter {
    /// Counts with `count`.
    pub fn new(
        count: impl Fn(MessagesRequest) -> BoxFuture<'static, Result<u64, Error>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            count: Arc::new(count),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Requests counted so far (cache entries).
    #[must_use]
    pub fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn key(request: &MessagesRequest) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(request)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl TokenCounter for CountTokensCounter {
    fn count<'a>(&'a self, request: &'a MessagesRequest) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let key = key(request);
            if let Some(&tokens) = self
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
            {
                return Ok(tokens);
            }
            let tokens = (self.count)(request.clone()).await?;
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, tokens);
            Ok(tokens)
        })
    }
}

/// Counts with a local tokenizer file in the Hugging Face `tokenizers` format — e.g. the
/// legacy Claude `tokenizer.json` (from the `anthropic` Python package ≤ 0.38.0). The path is the user's; nothing is downloaded. Counts the text of the
/// system prompt, tools and messages plus the core estimate's framing; an approximation for
/// Claude 3+ models, never for billing.
#[cfg(feature = "legacy-tokenizer")]
#[cfg_attr(docsrs, doc(cfg(feature = "legacy-tokenizer")))]
pub struct TokenizerCounter {
    tokenizer: tokenizers::Tokenizer,
}

#[cfg(feature = "legacy-tokenizer")]
impl fmt::Debug for TokenizerCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenizerCounter").finish_non_exhaustive()
    }
}

#[cfg(feature = "legacy-tokenizer")]
impl TokenizerCounter {
    /// Loads a tokenizer file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](claude_tower_core::ErrorKind::Config) when the file cannot be
    /// read or parsed.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        tokenizers::Tokenizer::from_file(path)
            .map(|tokenizer| Self { tokenizer })
            .map_err(|e| {
                Error::config(format!("cannot load the tokenizer {}: {e}", path.display()))
            })
    }

    /// Tokens of one text.
    ///
    /// # Errors
    /// When the tokenizer fails on the text.
    pub fn count_text(&self, text: &str) -> Result<u64, Error> {
        self.tokenizer
            .encode(text, false)
            .map(|encoding| encoding.len() as u64)
            .map_err(|e| {
                Error::new(
                    claude_tower_core::ErrorKind::Other,
                    format!("tokenizer: {e}"),
                )
            })
    }
}

#[cfg(feature = "legacy-tokenizer")]
impl TokenCounter for TokenizerCounter {
    fn count<'a>(&'a self, request: &'a MessagesRequest) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            use claude_tower_core::estimate::{
                MESSAGE_OVERHEAD_TOKENS, TOOL_OVERHEAD_TOKENS, TOOL_SYSTEM_PROMPT_TOKENS,
            };
            let mut total = 0;
            if let Some(tools) = &request.tools {
                if !tools.is_empty() {
                    total += TOOL_SYSTEM_PROMPT_TOKENS;
                }
                for tool in tools.iter() {
                    total += TOOL_OVERHEAD_TOKENS
                        + self.count_text(&serde_json::to_string(tool).unwrap_or_default())?;
                }
            }
            if let Some(system) = &request.system {
                total += MESSAGE_OVERHEAD_TOKENS + self.count_text(&system.text())?;
            }
            for message in request.messages.iter() {
                let text = match &message.content {
                    claude_tower_core::MessageContent::Text(text) => text.clone(),
                    claude_tower_core::MessageContent::Blocks(blocks) => blocks
                        .iter()
                        .map(|b| {
                            b.as_text().map_or_else(
                                || serde_json::to_string(b).unwrap_or_default(),
                                str::to_owned,
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                total += MESSAGE_OVERHEAD_TOKENS + self.count_text(&text)?;
            }
            Ok(total)
        })
    }
}
