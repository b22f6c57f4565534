//! The mock's prompt cache: a simulation of Anthropic's rules (the prompt-caching docs), the yardstick
//! for the prompt-cache layout.
//!
//! - Entries are keyed by the hash of the whole prefix (tools → system → messages, markers
//!   ignored, per model) up to a breakpoint; they are **written only at breakpoints** whose
//!   prefix reaches the model's minimum cacheable length (model table in core).
//! - Reads **look back** from each breakpoint over at most 20 positions (the breakpoint
//!   itself included) for an entry; the longest hit wins and its lifetime is refreshed.
//! - Lifetimes are 5 minutes or 1 hour on tokio's clock; the top-level `cache_control`
//!   (automatic caching) puts a breakpoint on the last cacheable position.
//! - Usage: reads = hit prefix (A); 1h writes up to the last 1h breakpoint after A (B); 5m
//!   writes from B to the last breakpoint (C); `input_tokens` = what follows C.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use claude_tower_core::layout::{Slot, positions};
use claude_tower_core::models::ModelTable;
use claude_tower_core::{CacheTtl, ContentBlock, MessageContent, MessagesRequest, System};

/// How far back a breakpoint looks for an earlier entry (the breakpoint included).
pub const LOOKBACK_POSITIONS: usize = 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at: Duration,
    ttl: Duration,
}

/// The simulated cache of one mock (shared by its clones and its server).
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    entries: HashMap<u64, Entry>,
}

/// What the simulation charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheUsage {
    pub(crate) uncached: u64,
    pub(crate) read: u64,
    pub(crate) write_5m: u64,
    pub(crate) write_1h: u64,
}

fn ttl_of(ttl: &CacheTtl) -> (Duration, bool) {
    match ttl {
        CacheTtl::OneHour => (Duration::from_secs(3600), true),
        _ => (Duration::from_secs(300), false),
    }
}

/// The content of a position without its marker, for hashing.
fn content(request: &MessagesRequest, slot: Slot) -> String {
    let strip = |block: &ContentBlock| {
        let mut block = block.clone();
        if let Some(marker) = block.cache_control_mut() {
            *marker = None;
        }
        serde_json::to_string(&block).unwrap_or_default()
    };
    match slot {
        Slot::Tool(i) => {
            request
                .tools
                .as_ref()
                .and_then(|t| t.get(i))
                .map_or_else(String::new, |tool| {
                    let mut tool = tool.clone();
                    tool.cache_control = None;
                    format!("tool:{}", serde_json::to_string(&tool).unwrap_or_default())
                })
        }
        Slot::SystemText | Slot::System(_) => match request.system.as_deref() {
            Some(System::Text(text)) => {
                format!("system:{}", strip(&ContentBlock::text(text.clone())))
            }
            Some(System::Blocks(blocks)) => {
                let i = if let Slot::System(i) = slot { i } else { 0 };
                format!("system:{}", blocks.get(i).map(strip).unwrap_or_default())
            }
            None => String::new(),
        },
        Slot::MessageText(m) | Slot::Message(m, _) => {
            request.messages.get(m).map_or_else(String::new, |message| {
                let role = message.role.as_str();
                match &message.content {
                    MessageContent::Text(text) => {
                        format!("{m}:{role}:0:{}", strip(&ContentBlock::text(text.clone())))
                    }
                    MessageContent::Blocks(blocks) => {
                        let b = if let Slot::Message(_, b) = slot { b } else { 0 };
                        format!(
                            "{m}:{role}:{b}:{}",
                            blocks.get(b).map(strip).unwrap_or_default()
                        )
                    }
                }
            })
        }
        _ => String::new(),
    }
}

impl PromptCache {
    /// Simulates one request at `now` (tokio clock offset); with `commit` false nothing is
    /// written or refreshed (a dry run for rate limiting).
    pub(crate) fn simulate(
        &mut self,
        request: &MessagesRequest,
        now: Duration,
        commit: bool,
    ) -> CacheUsage {
        let positions = positions(request);
        let total: u64 = positions.iter().map(|p| p.tokens).sum();
        let minimum = ModelTable::builtin().cache_min_tokens(&request.model);
        let mut hashes = Vec::with_capacity(positions.len());
        let mut prefix = Vec::with_capacity(positions.len());
        let mut hasher = DefaultHasher::new();
        request.model.hash(&mut hasher);
        let mut running = 0;
        for position in &positions {
            content(request, position.slot).hash(&mut hasher);
            hashes.push(hasher.finish());
            running += position.tokens;
            prefix.push(running);
        }
        // Breakpoints: explicit markers, plus the automatic one on the last cacheable position.
        let mut breakpoints: Vec<(usize, Duration, bool)> = positions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.cacheable)
            .filter_map(|(i, p)| {
                p.marker.as_ref().map(|m| {
                    let (ttl, long) = ttl_of(&m.effective_ttl());
                    (i, ttl, long)
                })
            })
            .collect();
        if let Some(automatic) = &request.cache_control
            && let Some(last) = positions.iter().rposition(|p| p.cacheable)
            && !breakpoints.iter().any(|(i, _, _)| *i == last)
        {
            let (ttl, long) = ttl_of(&automatic.effective_ttl());
            breakpoints.push((last, ttl, long));
            breakpoints.sort_by_key(|(i, _, _)| *i);
        }
        let live = |entries: &HashMap<u64, Entry>, hash: u64| {
            entries.get(&hash).is_some_and(|e| e.expires_at > now)
        };
        // Reads: the longest entry found looking back from any breakpoint.
        let mut hit: Option<(usize, Duration)> = None;
        for (b, ttl, _) in &breakpoints {
            let lowest = b.saturating_sub(LOOKBACK_POSITIONS - 1);
            if let Some(found) = (lowest..=*b)
                .rev()
                .find(|&j| live(&self.entries, hashes[j]))
                && hit.is_none_or(|(h, _)| found >= h)
            {
                hit = Some((found, *ttl));
            }
        }
        let read = hit.map_or(0, |(h, _)| prefix[h]);
        // A hit refreshes the entry for its own lifetime (conservative: whether a longer marker
        // upgrades an entry it reads is not documented).
        if commit
            && let Some((h, _)) = hit
            && let Some(entry) = self.entries.get_mut(&hashes[h])
        {
            entry.expires_at = now + entry.ttl;
        }
        let hit = hit.map(|(h, _)| h);
        // Writes at eligible breakpoints after the hit.
        let writes: Vec<&(usize, Duration, bool)> = breakpoints
            .iter()
            .filter(|(b, _, _)| hit.is_none_or(|h| *b > h) && prefix[*b] >= minimum)
            .collect();
        let Some(&&(last, _, _)) = writes.last() else {
            return CacheUsage {
                uncached: total - read,
                read,
                ..CacheUsage::default()
            };
        };
        let last_hour = writes
            .iter()
            .filter(|(_, _, long)| *long)
            .map(|(b, _, _)| *b)
            .max();
        let b_tokens = last_hour.map_or(read, |b| prefix[b]);
        if commit {
            for (b, ttl, _) in &writes {
                self.entries.insert(
                    hashes[*b],
                    Entry {
                        expires_at: now + *ttl,
                        ttl: *ttl,
                    },
                );
            }
        }
        CacheUsage {
            uncached: total - prefix[last],
            read,
            write_1h: b_tokens - read,
            write_5m: prefix[last] - b_tokens,
        }
    }

    /// Entries currently stored (live or not).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
