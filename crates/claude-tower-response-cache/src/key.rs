//! Cache keys: a canonical hash of everything that can change the answer.

use std::fmt;

use claude_tower_core::ext::Attribution;
use claude_tower_core::{Error, MessagesRequest};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_128;

/// Top-level request fields left out of the key because they never change the answer:
/// `stream` (a streamed entry serves a non-stream request and vice versa), `metadata`
/// (unless per-user partitioning is on), `service_tier`, `inference_geo`, and the top-level
/// `cache_control`. Every other field is in the key, unknown (beta) fields included.
pub const IGNORED_FIELDS: &[&str] = &[
    "stream",
    "metadata",
    "service_tier",
    "inference_geo",
    "cache_control",
];

/// Headers in the key: the API version and the betas (split, trimmed, sorted, deduplicated).
/// Credential headers (`x-api-key`, `authorization`) are in it too, as a fingerprint (see
/// [`KeyScope`]).
pub const KEYED_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta"];

/// Cache keys are already uniform 128-bit hashes: the table uses their low bits as is.
#[derive(Debug, Default)]
pub(crate) struct KeyBitsHasher(u64);

/// Builds [`KeyBitsHasher`]s, for maps keyed by cache keys.
pub(crate) type KeyHasher = std::hash::BuildHasherDefault<KeyBitsHasher>;

impl std::hash::Hasher for KeyBitsHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        // Truncation is the point: the low 64 bits of the key's hash.
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 ^= value as u64;
        }
    }
}

/// A 128-bit cache key. `Display` gives `claude-tower:rc:v2:<32 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(u128);

impl CacheKey {
    /// The 128-bit hash.
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    #[cfg(test)]
    pub(crate) const fn from_u128(hash: u128) -> Self {
        Self(hash)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claude-tower:rc:v2:{:032x}", self.0)
    }
}

/// The key of a request: model, system, messages, tools, `tool_choice`, thinking, sampling
/// parameters, stop sequences, `max_tokens`, `output_config`, unknown fields, the
/// `anthropic-version` and `anthropic-beta` headers, and (when `partition` is given) the
/// user. `cache_control` markers anywhere are ignored (they change cost, not the answer), and
/// unknown fields are hashed in sorted order, so equal requests get equal keys whatever their
/// field order.
///
/// # Errors
/// Only if the request cannot be serialized (a non-finite float).
pub fn cache_key(
    request: &http::Request<MessagesRequest>,
    partition_by_user: bool,
) -> Result<CacheKey, Error> {
    cache_key_with(
        request,
        &KeyScope {
            partition_by_user,
            ..KeyScope::default()
        },
    )
}

/// What separates cache entries besides the request itself.
///
/// **Credentials.** A request that carries its own credential (`x-api-key` or
/// `authorization`, as a multi-tenant gateway sends them) is keyed by a SHA-256 fingerprint of
/// that value (never the raw value), so two credentials never share an entry. Requests without
/// one use the transport's configured credential, which the cache cannot see: a store shared by
/// services with *different* configured credentials must give each a distinct
/// [`tenant`](Self::tenant). Sharing across credentials happens only when
/// [`share_across_credentials`](Self::share_across_credentials) is set on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyScope {
    /// Separate entries per user (the `Attribution` user, else `metadata.user_id`).
    pub partition_by_user: bool,
    /// An explicit scope (tenant, workspace, deployment) hashed into every key.
    pub tenant: Option<std::sync::Arc<str>>,
    /// Leave request credentials out of the key (entries shared between credentials).
    pub share_across_credentials: bool,
}

/// The key of a request under `scope`; see [`cache_key`] and [`KeyScope`].
///
/// # Errors
/// Only if the request cannot be serialized (a non-finite float).
pub fn cache_key_with(
    request: &http::Request<MessagesRequest>,
    scope: &KeyScope,
) -> Result<CacheKey, Error> {
    let partition_by_user = scope.partition_by_user;
    let body = request.body();
    // Markers are removed on a copy only when there are any (the common case has none).
    let stripped;
    let body = if body.cache_markers().is_empty() {
        body
    } else {
        stripped = without_cache_control(body);
        &stripped
    };
    let view = KeyView {
        model: &body.model,
        max_tokens: body.max_tokens,
        messages: &body.messages,
        system: body.system.as_deref(),
        tools: body.tools.as_deref().map(Vec::as_slice),
        tool_choice: body.tool_choice.as_ref(),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop_sequences: body.stop_sequences.as_deref(),
        thinking: body.thinking.as_ref(),
        output_config: body.output_config.as_ref(),
        container: body.container.as_ref(),
        extra: &body.extra,
    };
    // Everything goes into one buffer, hashed once (one-shot XXH3 is much faster than the
    // streaming state, especially up to 240 bytes), in the compact tagged form of `canonical`
    // (v1 hashed the JSON text, whose string escaping was most of a key's cost). The buffer
    // is reused per thread.
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|bytes| {
        bytes.clear();
        bytes.extend_from_slice(b"ctrc2");
        crate::canonical::write(bytes, &view)
            .map_err(|e| Error::invalid_request(format!("cannot serialize request: {e}")))?;
        static NAMES: [http::HeaderName; 2] = [
            http::HeaderName::from_static("anthropic-version"),
            http::HeaderName::from_static("anthropic-beta"),
        ];
        for name in &NAMES {
            let all = request.headers().get_all(name);
            let mut iter = all.iter();
            match (iter.next(), iter.next()) {
                (None, _) => crate::canonical::write_strs(bytes, []),
                // The common case: one value, one item (no list to sort).
                (Some(one), None) if !one.as_bytes().contains(&b',') => {
                    let value = one.to_str().map(str::trim).unwrap_or_default();
                    crate::canonical::write_strs(bytes, Some(value).filter(|v| !v.is_empty()));
                }
                _ => {
                    let mut values: Vec<&str> = all
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(','))
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .collect();
                    values.sort_unstable();
                    values.dedup();
                    crate::canonical::write_strs(bytes, values);
                }
            }
        }
        if partition_by_user {
            let user = Attribution::of(request).user.unwrap_or_default();
            crate::canonical::write_strs(bytes, [user.as_str()]);
        }
        if let Some(tenant) = &scope.tenant {
            bytes.extend_from_slice(b"\0tenant");
            crate::canonical::write_strs(bytes, [&**tenant]);
        }
        if !scope.share_across_credentials {
            write_credential_fingerprint(bytes, request.headers());
        }
        Ok(CacheKey(xxh3_128(bytes)))
    })
}

/// Appends a SHA-256 fingerprint of the request's own credential headers, if any (nothing
/// when the request carries none: the common case costs nothing).
fn write_credential_fingerprint(bytes: &mut Vec<u8>, headers: &http::HeaderMap) {
    use sha2::Digest as _;
    static NAMES: [http::HeaderName; 2] = [
        http::HeaderName::from_static("x-api-key"),
        http::header::AUTHORIZATION,
    ];
    let mut hasher: Option<sha2::Sha256> = None;
    for name in &NAMES {
        for value in headers.get_all(name) {
            let h = hasher.get_or_insert_with(|| {
                sha2::Sha256::new_with_prefix(b"claude-tower response-cache credential v1\0")
            });
            h.update(name.as_str().as_bytes());
            h.update(b"\0");
            h.update(value.as_bytes());
            h.update(b"\0");
        }
    }
    if let Some(hasher) = hasher {
        bytes.extend_from_slice(b"\0credential");
        bytes.extend_from_slice(&hasher.finalize());
    }
}

/// The fields of the request that are in the key, in a fixed order (absent ones left out;
/// field names are part of the key, so that stays unambiguous). `extra` (and every
/// `serde_json::Value` object inside the request) is a `serde_json::Map`, which serializes its
/// keys sorted (this workspace does not enable
/// serde_json's `preserve_order`; a test checks it), so equal requests hash equally whatever
/// the order of their unknown fields.
#[derive(serde::Serialize)]
struct KeyView<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: &'a [std::sync::Arc<claude_tower_core::MessageParam>],
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a claude_tower_core::System>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [claude_tower_core::Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a claude_tower_core::ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a claude_tower_core::ThinkingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a claude_tower_core::OutputConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a Value>,
    extra: &'a serde_json::Map<String, Value>,
}

/// A copy of the request with every `cache_control` removed (top level, tools, system,
/// message blocks, nested tool-result blocks, unknown blocks).
fn without_cache_control(body: &MessagesRequest) -> MessagesRequest {
    let mut copy = body.clone();
    copy.cache_control = None;
    if let Some(tools) = &mut copy.tools {
        for tool in std::sync::Arc::make_mut(tools) {
            tool.cache_control = None;
        }
    }
    if let Some(system) = &mut copy.system
        && let claude_tower_core::System::Blocks(blocks) = std::sync::Arc::make_mut(system)
    {
        blocks.iter_mut().for_each(strip_block);
    }
    // Only the marked messages are copied; the rest stay shared with the caller's history.
    for message in copy.messages_mut() {
        if message.content.blocks().iter().any(block_marked)
            && let claude_tower_core::MessageContent::Blocks(blocks) =
                &mut std::sync::Arc::make_mut(message).content
        {
            blocks.iter_mut().for_each(strip_block);
        }
    }
    copy
}

/// Whether [`strip_block`] would change `block`.
fn block_marked(block: &claude_tower_core::ContentBlock) -> bool {
    block.cache_control().is_some()
        || match block {
            claude_tower_core::ContentBlock::ToolResult(result) => matches!(
                &result.content,
                Some(claude_tower_core::ToolResultContent::Blocks(inner)) if inner.iter().any(block_marked)
            ),
            claude_tower_core::ContentBlock::Unknown(value) => value_marked(value),
            _ => false,
        }
}

fn value_marked(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("cache_control") || map.values().any(value_marked),
        Value::Array(items) => items.iter().any(value_marked),
        _ => false,
    }
}

fn strip_block(block: &mut claude_tower_core::ContentBlock) {
    if let Some(slot) = block.cache_control_mut() {
        *slot = None;
    }
    match block {
        claude_tower_core::ContentBlock::ToolResult(result) => {
            if let Some(claude_tower_core::ToolResultContent::Blocks(inner)) = &mut result.content {
                inner.iter_mut().for_each(strip_block);
            }
        }
        claude_tower_core::ContentBlock::Unknown(value) => strip_cache_control(value),
        _ => {}
    }
}

fn strip_cache_control(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("cache_control");
            map.values_mut().for_each(strip_cache_control);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cache_control),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_json_maps_serialize_sorted() {
        // The key relies on it; enabling serde_json's `preserve_order` anywhere would break it.
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"a":2,"b":1}"#);
    }
}
