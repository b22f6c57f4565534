//! What a budget reserves for a request's input: each part at the rate it can really be
//! billed, the estimate raised to its documented error bound.
//!
//! - Tokens after the last cache marker (or all of them, without markers) are plain input.
//! - Tokens up to a marker may be written to the cache, at that marker's TTL rate (1 h before
//!   5 min), but only when the prefix reaches the model's minimum cacheable length: a shorter
//!   prefix is never cached, so never billed as a write.
//! - Tokens up to a marker whose prefix this layer saw cached (a response with cache reads or
//!   writes, within the marker's TTL) are expected as cache reads. If the API evicted that
//!   prefix early, the call costs more than its reservation: the settlement charges the real
//!   cost and counts an overshoot ([`BudgetLayer::overshoots`](super::BudgetLayer::overshoots)).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use claude_tower_core::estimate::upper_bound;
use claude_tower_core::layout::{InputEstimate, Slot, positions, positions_estimated};
use claude_tower_core::models::ModelTable;
use claude_tower_core::{CacheTtl, ContentBlock, MessageContent, MessagesRequest, System, Usage};

use crate::pricing::InputSplit;

/// How many positions before a marker the API looks back for a cached prefix.
const LOOKBACK_POSITIONS: usize = 20;

/// How many prefixes the memory keeps; the oldest expiry goes first when full.
const MEMORY_ENTRIES: usize = 4096;

/// The input side of a reservation.
#[derive(Debug, Default)]
pub(super) struct InputPlan {
    /// Tokens by the rate they can be billed at, error bound included.
    pub(super) split: InputSplit,
    /// Fingerprints of the prefixes up to each marker that can be cached, with their TTL.
    pub(super) prefixes: Vec<(u64, Duration)>,
}

/// Prefixes this layer saw cached, until their TTL ends.
#[derive(Debug, Default)]
pub(super) struct CacheMemory {
    hasher: ahash::RandomState,
    expiries: Mutex<HashMap<u64, SystemTime, ahash::RandomState>>,
}

impl CacheMemory {
    fn is_cached(&self, fingerprint: u64, now: SystemTime) -> bool {
        self.lock().get(&fingerprint).is_some_and(|&end| end > now)
    }

    /// After a response: when it read or wrote the cache, its prefixes are cached for their
    /// TTL from now (a read refreshes the TTL too).
    pub(super) fn remember(&self, plan: &InputPlan, usage: &Usage, now: SystemTime) {
        if plan.prefixes.is_empty() || usage.cache_read_tokens() + usage.cache_write_tokens() == 0 {
            return;
        }
        let mut expiries = self.lock();
        if expiries.len() + plan.prefixes.len() > MEMORY_ENTRIES {
            expiries.retain(|_, end| *end > now);
            while expiries.len() + plan.prefixes.len() > MEMORY_ENTRIES {
                let Some(oldest) = expiries
                    .iter()
                    .min_by_key(|(_, end)| **end)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                expiries.remove(&oldest);
            }
        }
        for &(fingerprint, ttl) in &plan.prefixes {
            expiries.insert(fingerprint, now + ttl);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SystemTime, ahash::RandomState>> {
        self.expiries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The input side of `request`'s reservation; `memory` (when given) turns prefixes seen
/// cached into expected reads.
pub(super) fn plan(
    request: &MessagesRequest,
    estimate: Option<&InputEstimate>,
    memory: Option<&CacheMemory>,
    margin_percent: Option<u64>,
    clock: &dyn Fn() -> SystemTime,
) -> InputPlan {
    let positions = estimate
        .and_then(|estimate| positions_estimated(request, estimate))
        .unwrap_or_else(|| positions(request));
    let automatic = request.cache_control.as_ref();
    let last_cacheable = positions.iter().rposition(|p| p.cacheable);
    // Without a cache marker nothing can be read or written: no fingerprints to compute.
    let marked = automatic.is_some() || positions.iter().any(|p| p.marker.is_some());
    let memory = memory.filter(|_| marked);
    // Read only when the memory is consulted (a clock read is not free on every request).
    let now = memory.map_or(SystemTime::UNIX_EPOCH, |_| clock());
    let minimum = if marked {
        ModelTable::builtin().cache_min_tokens(&request.model)
    } else {
        u64::MAX
    };
    let mut hasher = memory.map(|m| m.hasher.build_hasher());
    if let Some(h) = hasher.as_mut() {
        request.model.hash(h);
    }
    let (mut total, mut read, mut hour, mut five) = (0u64, 0u64, 0u64, 0u64);
    let mut prefixes = Vec::new();
    // Each position's running fingerprint and cumulative tokens, for the look-back.
    let mut seen: Vec<(u64, u64)> =
        Vec::with_capacity(if memory.is_some() { positions.len() } else { 0 });
    for (i, position) in positions.iter().enumerate() {
        total = total.saturating_add(position.tokens);
        if let Some(h) = hasher.as_mut() {
            hash_slot(request, position.slot, position.tokens, h);
            seen.push((h.finish(), total));
        }
        let marker = position
            .marker
            .as_ref()
            .or(automatic.filter(|_| Some(i) == last_cacheable));
        let Some(marker) = marker.filter(|_| position.cacheable && total >= minimum) else {
            continue;
        };
        let ttl = marker.effective_ttl();
        match ttl {
            CacheTtl::OneHour => hour = total,
            _ => five = total,
        }
        if let (Some(h), Some(memory)) = (hasher.as_ref(), memory) {
            let fingerprint = h.finish();
            // The API reads the longest cached prefix ending at this marker or at one of the
            // positions just before it (its look-back window).
            let window = seen
                .get(i.saturating_sub(LOOKBACK_POSITIONS - 1)..=i)
                .unwrap_or(&[]);
            if let Some(&(_, cached)) = window.iter().rev().find(|(f, _)| memory.is_cached(*f, now))
            {
                read = read.max(cached);
            }
            let ttl = match ttl {
                CacheTtl::OneHour => Duration::from_secs(3_600),
                _ => Duration::from_secs(300),
            };
            prefixes.push((fingerprint, ttl));
        }
    }
    // Billed in prefix order: reads, then 1 h writes, then 5 min writes, then plain input.
    let hour_end = hour.max(read);
    let five_end = five.max(hour_end);
    let estimate = InputSplit {
        read,
        write_1h: hour_end - read,
        write_5m: five_end - hour_end,
        input: total.saturating_sub(five_end),
    };
    let split = match margin_percent {
        Some(percent) => {
            let raise = |t: u64| {
                u64::try_from((u128::from(t) * u128::from(percent)).div_ceil(100))
                    .unwrap_or(u64::MAX)
            };
            InputSplit {
                read: raise(estimate.read),
                write_1h: raise(estimate.write_1h),
                write_5m: raise(estimate.write_5m),
                input: raise(estimate.input),
            }
        }
        None => bounded(
            estimate,
            ModelTable::builtin().legacy_tokenizer(&request.model),
        ),
    };
    InputPlan { split, prefixes }
}

/// Raises every part to the estimate's error bound; the bound's absolute slack goes to the
/// most expensive part present.
fn bounded(split: InputSplit, legacy_tokenizer: bool) -> InputSplit {
    let raise = |tokens: u64| {
        upper_bound(tokens, legacy_tokenizer)
            .saturating_sub(claude_tower_core::estimate::UPPER_BOUND_SLACK_TOKENS)
    };
    let mut out = InputSplit {
        read: raise(split.read),
        write_1h: raise(split.write_1h),
        write_5m: raise(split.write_5m),
        input: raise(split.input),
    };
    let slack = claude_tower_core::estimate::UPPER_BOUND_SLACK_TOKENS;
    let target = out.costliest_part_mut();
    *target = target.saturating_add(slack);
    out
}

/// Feeds what identifies one position's content (not its `cache_control`) to `hasher`:
/// texts whole, other blocks by their type and estimated size (a cheap fingerprint; a
/// collision only makes an expected read wrong, which the settlement corrects).
fn hash_slot(request: &MessagesRequest, slot: Slot, tokens: u64, hasher: &mut impl Hasher) {
    match slot {
        Slot::Tool(i) => {
            if let Some(tool) = request.tools.as_ref().and_then(|t| t.get(i)) {
                (
                    0u8,
                    &tool.name,
                    tool.kind.as_deref(),
                    &tool.description,
                    tokens,
                )
                    .hash(hasher);
            }
        }
        // A string is one text block to the API (and to its cache): hashed the same.
        Slot::SystemText => {
            if let Some(System::Text(text)) = request.system.as_deref() {
                (2u8, 0usize, "text", text).hash(hasher);
            }
        }
        Slot::System(b) => {
            if let Some(block) = request.system.as_ref().and_then(|s| s.blocks().get(b)) {
                (2u8, b).hash(hasher);
                hash_block(block, hasher);
            }
        }
        Slot::MessageText(m) => {
            if let Some(message) = request.messages.get(m)
                && let MessageContent::Text(text) = &message.content
            {
                (4u8, m, 0usize, message.role.as_str(), "text", text).hash(hasher);
            }
        }
        Slot::Message(m, b) => {
            if let Some(message) = request.messages.get(m)
                && let Some(block) = message.content.blocks().get(b)
            {
                (4u8, m, b, message.role.as_str()).hash(hasher);
                hash_block(block, hasher);
            }
        }
        _ => 5u8.hash(hasher),
    }
}

fn hash_block(block: &ContentBlock, hasher: &mut impl Hasher) {
    match block {
        ContentBlock::Text(text) => ("text", &text.text).hash(hasher),
        other => (
            other.type_name(),
            claude_tower_core::estimate::estimate_block_tokens(other),
        )
            .hash(hasher),
    }
}
