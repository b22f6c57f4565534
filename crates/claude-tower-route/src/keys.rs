//! [`KeyPool`] and [`KeyPoolLayer`]: several API keys grouped by workspace, chosen per
//! conversation, moved only when a key is rate limited or overloaded, swappable at run time.
//!
//! Extra keys inside one workspace add no capacity (limits are per organisation, with
//! optional per-workspace caps), and the prompt cache is per workspace: a conversation stays
//! on one workspace (and one key) so its cache stays warm, and moves only when its key answers
//! 429 (not a spend cap) or 529, or when the key's circuit is open.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use claude_tower_core::ext::RateLimitScope;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest, MessagesService};
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::breaker::CircuitBreaker;
use crate::fallback::ConversationId;

/// One API key: a printable id, its workspace, and the secret (never printed).
#[derive(Clone)]
pub struct ApiKey {
    id: String,
    workspace: String,
    /// Shared, not cloned: a `SecretString` clone copies the secret.
    secret: Arc<SecretString>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("workspace", &self.workspace)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ApiKey {
    /// A key `id` (a label for reports and logs) of `workspace`.
    #[must_use]
    pub fn new(id: impl Into<String>, workspace: impl Into<String>, secret: SecretString) -> Self {
        Self {
            id: id.into(),
            workspace: workspace.into(),
            secret: Arc::new(secret),
        }
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its workspace.
    #[must_use]
    pub fn workspace(&self) -> &str {
        &self.workspace
    }
}

/// The key a request was sent with, in the **response** extensions (id and workspace only).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// The key's id.
    pub id: String,
    /// Its workspace.
    pub workspace: String,
    /// Keys tried before it for this request (each answered 429 or 529).
    pub moved_from: Vec<String>,
}

/// A set of keys, replaceable at run time (requests in flight finish on the key they
/// started with). Clones share the set.
///
/// ```
/// use claude_tower::route::KeyPool;
/// let pool = KeyPool::parse("# id workspace key\nk1 wrk-a sk-ant-one\nk2 wrk-b sk-ant-two\n").unwrap();
/// assert_eq!(pool.len(), 2);
/// assert!(!format!("{pool:?}").contains("sk-ant"));
/// ```
#[derive(Clone)]
pub struct KeyPool {
    keys: Arc<ArcSwap<Vec<ApiKey>>>,
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPool")
            .field("keys", &*self.keys.load())
            .finish()
    }
}

impl KeyPool {
    /// A pool of `keys`.
    #[must_use]
    pub fn new(keys: impl IntoIterator<Item = ApiKey>) -> Self {
        Self {
            keys: Arc::new(ArcSwap::from_pointee(keys.into_iter().collect())),
        }
    }

    /// Keys from text: one per line, `id workspace secret`, blank lines and `#` comments
    /// ignored.
    ///
    /// # Errors
    /// A line without three fields (its number is given, never its content).
    pub fn parse(text: &str) -> Result<Self, Error> {
        Ok(Self::new(parse_keys(text)?))
    }

    /// Keys from the environment variable `name` (same format, `;` also separates entries).
    ///
    /// # Errors
    /// The variable is unset or malformed.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        let text = std::env::var(name)
            .map_err(|_| Error::config(format!("{name} is not set")))?
            .replace(';', "\n");
        Self::parse(&text)
    }

    /// Keys from a file (same format).
    ///
    /// # Errors
    /// The file cannot be read or is malformed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::parse(&read(path.as_ref())?)
    }

    /// Replaces every key at once (in-flight requests keep theirs).
    pub fn replace(&self, keys: impl IntoIterator<Item = ApiKey>) {
        self.keys.store(Arc::new(keys.into_iter().collect()));
    }

    /// Replaces the keys with a file's (a rotation without a restart); on an error the
    /// current keys stay.
    ///
    /// # Errors
    /// The file cannot be read or is malformed.
    pub fn reload_from_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.replace(parse_keys(&read(path.as_ref())?)?);
        Ok(())
    }

    /// How many keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Whether it has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<Vec<ApiKey>> {
        self.keys.load_full()
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read the key file {}: {e}", path.display())))
}

fn parse_keys(text: &str) -> Result<Vec<ApiKey>, Error> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, workspace, secret] = fields[..] else {
            return Err(Error::config(format!(
                "key line {}: expected `id workspace secret`",
                n + 1
            )));
        };
        keys.push(ApiKey::new(
            id,
            workspace,
            SecretString::from(secret.to_owned()),
        ));
    }
    Ok(keys)
}

#[derive(Clone)]
struct Shared {
    pool: KeyPool,
    breaker: CircuitBreaker,
    pins: moka::sync::Cache<String, String>,
}

/// Sends each request with a key of a [`KeyPool`] (as its `x-api-key`, marked sensitive; the
/// transport uses a request's own credential, and the response cache partitions by it).
///
/// - **Sticky**: a conversation ([`ConversationId`]) keeps its key; without one, the key is
///   chosen by a hash of the request's first message, so the same prefix lands on the same
///   workspace's prompt cache.
/// - **Moves** only when the key answers 429 (not a spend cap) or 529, or its circuit is open:
///   the request is sent again with a key of another workspace when there is one, and the
///   conversation is pinned to the new key.
/// - The response carries a [`KeyReport`] (ids only). Keys never appear in `Debug`, logs or
///   errors.
///
/// Place it below the fallback layer and above the response cache (so the cache sees the
/// credential).
#[derive(Clone)]
pub struct KeyPoolLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for KeyPoolLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPoolLayer")
            .field("pool", &self.shared.pool)
            .field("breaker", &self.shared.breaker)
            .finish_non_exhaustive()
    }
}

impl KeyPoolLayer {
    /// Keys from `pool`, circuits per key (the default breaker), conversation pins for an hour
    /// of idleness (at most 100,000 conversations).
    #[must_use]
    pub fn new(pool: KeyPool) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                breaker: CircuitBreaker::default(),
                pins: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(3_600))
                    .build(),
            }),
        }
    }

    /// Circuits per key (keyed `key:{id}`).
    #[must_use]
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        Arc::make_mut(&mut self.shared).breaker = breaker;
        self
    }
}

claude_tower_core::layer_service!(
    /// The service of a [`KeyPoolLayer`].
    KeyPoolLayer => KeyPoolService, shared: Shared
);

impl<S: fmt::Debug> fmt::Debug for KeyPoolService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPoolService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn circuit(key: &ApiKey) -> String {
    format!("key:{}", key.id)
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Shared {
    /// The key for a request: its conversation's pin, else a stable choice by hash, skipping
    /// keys whose circuit is open and workspaces in `avoid`.
    fn choose(
        &self,
        keys: &[ApiKey],
        sticky: u64,
        pin: Option<&str>,
        avoid: &[String],
    ) -> Option<ApiKey> {
        let usable = |key: &&ApiKey| {
            !avoid.contains(&key.workspace)
                && matches!(
                    self.breaker.state(&circuit(key)),
                    crate::CircuitState::Closed | crate::CircuitState::HalfOpen
                )
        };
        if let Some(pin) = pin
            && let Some(key) = keys.iter().filter(usable).find(|k| k.id == pin)
        {
            return Some(key.clone());
        }
        let mut workspaces: Vec<&str> = keys
            .iter()
            .filter(usable)
            .map(|k| k.workspace.as_str())
            .collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        if workspaces.is_empty() {
            return None;
        }
        let workspace = workspaces[(sticky % workspaces.len() as u64) as usize];
        let in_workspace: Vec<&ApiKey> = keys
            .iter()
            .filter(usable)
            .filter(|k| k.workspace == workspace)
            .collect();
        let key =
            in_workspace[((sticky / workspaces.len() as u64) % in_workspace.len() as u64) as usize];
        Some(key.clone())
    }
}

// Ready at once: each attempt waits for a clone's readiness right before calling it.
claude_tower_core::always_ready_service!(KeyPoolService, boxed, send_with_keys);

async fn send_with_keys<S>(
    shared: Arc<Shared>,
    inner: S,
    request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    // One snapshot for the whole request: a swap meanwhile does not change its keys.
    let keys = shared.pool.snapshot();
    let conversation = request
        .extensions()
        .get::<ConversationId>()
        .map(|c| c.0.clone());
    let sticky = match &conversation {
        Some(id) => hash_of(id),
        // The start of the first message's text: the same conversation prefix, the same key.
        None => hash_of(&request.body().messages.first().map(|m| {
            let text = m.content.text();
            let end = (0..=text.len().min(1_024))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            (m.role.as_str().to_owned(), text[..end].to_owned())
        })),
    };
    let mut pin = conversation.as_ref().and_then(|id| shared.pins.get(id));
    let mut avoid: Vec<String> = Vec::new();
    let mut moved_from = Vec::new();
    let mut last_error = None;
    for _ in 0..keys.len().max(1) {
        let Some(key) = shared.choose(&keys, sticky, pin.as_deref(), &avoid) else {
            break;
        };
        let Some(permit) = shared.breaker.try_call(&circuit(&key)) else {
            avoid.push(key.workspace.clone());
            continue;
        };
        let mut attempt = request.clone();
        let mut value = HeaderValue::from_str(key.secret.expose_secret())
            .map_err(|_| Error::config(format!("key {} is not a valid header value", key.id)))?;
        value.set_sensitive(true);
        attempt.headers_mut().insert("x-api-key", value);
        attempt.headers_mut().remove(http::header::AUTHORIZATION);
        attempt
            .extensions_mut()
            .insert(RateLimitScope(key.workspace.clone()));
        let mut service = inner.clone();
        match call_when_ready(&mut service, attempt).await {
            Err(error) if moves(&error) => {
                permit.failure();
                moved_from.push(key.id.clone());
                avoid.push(key.workspace.clone());
                pin = None;
                last_error = Some(error);
            }
            result => {
                permit.success();
                if let Some(id) = &conversation {
                    shared.pins.insert(id.clone(), key.id.clone());
                }
                let mut response = result?;
                response.extensions_mut().insert(KeyReport {
                    id: key.id.clone(),
                    workspace: key.workspace.clone(),
                    moved_from,
                });
                return Ok(response);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "no usable API key in the pool (empty, or every key's circuit is open; nothing was sent)",
        )
    }))
}

/// Whether the key (not the request) is the problem: a 429 that is not a spend cap, or 529.
fn moves(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::RateLimited => !error.is_spend_cap() && error.status().is_some(),
        ErrorKind::Overloaded => true,
        _ => false,
    }
}
