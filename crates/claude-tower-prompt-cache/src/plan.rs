//! Where the breakpoints go: a pure function of the request.

use claude_tower_core::layout::{Slot, positions_counting_up_to, set_marker};
use claude_tower_core::models::ModelTable;
use claude_tower_core::{CacheControl, CacheTtl, MAX_CACHE_BREAKPOINTS, MessagesRequest, Role};

/// Lifetimes of the markers the layer adds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TtlPolicy {
    /// On the last tool definition (default 1h: tools change least).
    pub tools: CacheTtl,
    /// On the last system block (default 1h).
    pub system: CacheTtl,
    /// On the conversation tail and the previous turn's tail (default 5m).
    pub tail: CacheTtl,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        Self {
            tools: CacheTtl::OneHour,
            system: CacheTtl::OneHour,
            tail: CacheTtl::FiveMinutes,
        }
    }
}

impl TtlPolicy {
    /// The same lifetime everywhere.
    #[must_use]
    pub fn uniform(ttl: CacheTtl) -> Self {
        Self {
            tools: ttl.clone(),
            system: ttl.clone(),
            tail: ttl,
        }
    }
}

/// Every this many assistant turns, the tail is written with a 1h lifetime: an **anchor**
/// that survives pauses longer than 5 minutes, so a conversation resumed after a break
/// re-writes at most this many turns instead of its whole history.
pub const ANCHOR_EVERY_TURNS: usize = 5;

/// What a breakpoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role_ {
    Tail,
    PreviousTail,
    Anchor,
    System,
    Tools,
}

/// Adds `cache_control` markers to `request`:
///
/// 1. the **tail** (last cacheable block), which writes the whole prompt for the next turn;
/// 2. the **previous turn's tail** (last block before the last assistant turn), which reads
///    exactly what the previous request wrote, however many blocks the new turn added — so the
///    20-block lookback never loses the prefix;
/// 3. the end of the **system** prompt (or of the tools), the stable prefix shared by every
///    conversation;
/// 4. the last **anchor**: every [`ANCHOR_EVERY_TURNS`] turns the tail is written for 1h, and
///    later turns keep a marker on it, so a pause longer than 5 minutes costs a few turns,
///    not the whole history (then the tools, if a slot is left).
///
/// In that priority, within the 4 allowed markers (the caller's and the top-level automatic
/// one count; the top-level one already covers the tail), skipping positions below the model's
/// minimum cacheable length. Caller markers are never moved or removed. Lifetimes follow
/// `ttl`, adjusted so that 1h markers always precede 5m ones.
#[must_use]
pub fn place_breakpoints(
    request: &MessagesRequest,
    ttl: &TtlPolicy,
    models: &ModelTable,
) -> MessagesRequest {
    place_breakpoints_owned(request.clone(), ttl, models)
}

/// [`place_breakpoints`] on an owned request: a history that is not shared is marked in
/// place, without copying it.
#[must_use]
pub fn place_breakpoints_owned(
    request: MessagesRequest,
    ttl: &TtlPolicy,
    models: &ModelTable,
) -> MessagesRequest {
    place_breakpoints_reporting(request, ttl, models).0
}

/// [`place_breakpoints_owned`], also returning the model's minimum cacheable length when the
/// whole prompt is shorter (so nothing can be cached, and no marker was placed).
pub(crate) fn place_breakpoints_reporting(
    request: MessagesRequest,
    ttl: &TtlPolicy,
    models: &ModelTable,
) -> (MessagesRequest, Option<u64>) {
    let minimum = models.cache_min_tokens(&request.model);
    // Only "is this prefix long enough" matters: stop estimating past the minimum.
    let positions = positions_counting_up_to(&request, minimum);
    let existing = positions.iter().filter(|p| p.marker.is_some()).count()
        + usize::from(request.cache_control.is_some());
    let budget = MAX_CACHE_BREAKPOINTS.saturating_sub(existing);
    if budget == 0 || positions.is_empty() {
        return (request, None);
    }
    let mut prefix = Vec::with_capacity(positions.len());
    let mut running = 0;
    for p in &positions {
        running += p.tokens;
        prefix.push(running);
    }
    let below_minimum = (running < minimum).then_some(minimum);
    let usable =
        |i: usize| positions[i].cacheable && positions[i].marker.is_none() && prefix[i] >= minimum;
    let last_in = |range: std::ops::Range<usize>| range.rev().find(|&i| positions[i].cacheable);

    let tools_end = positions
        .iter()
        .rposition(|p| matches!(p.slot, Slot::Tool(_)));
    let system_end = positions
        .iter()
        .rposition(|p| matches!(p.slot, Slot::System(_) | Slot::SystemText));
    // One pass over the positions: where each message starts, and the caller's markers that
    // constrain lifetimes (the last 1h one, the first 5m one).
    let mut message_start = vec![usize::MAX; request.messages.len()];
    let mut last_caller_hour = None;
    let mut first_caller_five = None;
    for (i, p) in positions.iter().enumerate() {
        if let Slot::Message(m, _) | Slot::MessageText(m) = p.slot
            && let Some(start) = message_start.get_mut(m)
            && *start == usize::MAX
        {
            *start = i;
        }
        match p.marker.as_ref().map(CacheControl::effective_ttl) {
            Some(CacheTtl::OneHour) => last_caller_hour = Some(i),
            Some(CacheTtl::FiveMinutes) if first_caller_five.is_none() => {
                first_caller_five = Some(i);
            }
            _ => {}
        }
    }
    let first_message = message_start.first().copied().filter(|&i| i != usize::MAX);
    // The last cacheable position before message `m`.
    let end_before = |m: usize| {
        message_start
            .get(m)
            .filter(|&&start| start != usize::MAX)
            .and_then(|&start| last_in(first_message.unwrap_or(0)..start))
    };
    let tail = last_in(0..positions.len()).filter(|_| request.cache_control.is_none());
    // The end of the request that had `k` assistant turns: the last block before assistant
    // message number `k` (0-based), or the tail when there are only `k`.
    let assistants: Vec<usize> = request
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Assistant)
        .map(|(i, _)| i)
        .collect();
    // The previous request ended just before the last assistant turn.
    let previous_tail = assistants.last().and_then(|&a| end_before(a));
    let end_of_request_with = |k: usize| -> Option<usize> {
        match assistants.get(k) {
            Some(&a) => end_before(a),
            None => last_in(0..positions.len()),
        }
    };
    let turns = assistants.len();
    let anchor_turn = turns.saturating_sub(1) / ANCHOR_EVERY_TURNS * ANCHOR_EVERY_TURNS;
    let anchor = (turns > 0)
        .then(|| end_of_request_with(anchor_turn))
        .flatten();
    let tail_is_anchor = turns.is_multiple_of(ANCHOR_EVERY_TURNS);
    // The stable prefix: the system prompt's end covers the tools too, so the tools get their
    // own marker only when there is no system prompt or a slot is left.
    let stable = system_end.and_then(|e| last_in(0..e + 1)).or(tools_end);
    let mut candidates: Vec<(usize, Role_)> = Vec::new();
    for (index, role) in [
        (tail, Role_::Tail),
        (previous_tail, Role_::PreviousTail),
        (stable, Role_::System),
        (anchor, Role_::Anchor),
        (tools_end, Role_::Tools),
    ] {
        if let Some(i) = index
            && usable(i)
            && !candidates.iter().any(|(j, _)| *j == i)
            && candidates.len() < budget
        {
            candidates.push((i, role));
        }
    }
    if candidates.is_empty() {
        return (request, below_minimum);
    }
    candidates.sort_by_key(|(i, _)| *i);

    // Lifetimes: the policy, then 1h before 5m. A caller 1h marker (or a 1h top-level one)
    // after one of ours forces ours to 1h; a 5m marker before one of ours forces ours to 5m.
    let caller_hour_after = |i: usize| {
        last_caller_hour.is_some_and(|h| h > i)
            || request
                .cache_control
                .as_ref()
                .is_some_and(|m| m.effective_ttl() == CacheTtl::OneHour)
    };
    let mut planned: Vec<(usize, CacheTtl)> = Vec::with_capacity(candidates.len());
    for (i, role) in &candidates {
        let long_tail = if ttl.tail == CacheTtl::FiveMinutes && tail_is_anchor {
            CacheTtl::OneHour
        } else {
            ttl.tail.clone()
        };
        let wanted = match role {
            Role_::Tools => ttl.tools.clone(),
            Role_::System => ttl.system.clone(),
            Role_::Anchor => CacheTtl::OneHour,
            // On an anchor turn the previous tail (only read) is 1h too, to keep 1h before 5m.
            Role_::Tail | Role_::PreviousTail => long_tail,
        };
        let short_before = first_caller_five.is_some_and(|f| f < *i)
            || planned.iter().any(|(_, t)| *t == CacheTtl::FiveMinutes);
        let ttl = if caller_hour_after(*i) && !short_before {
            CacheTtl::OneHour
        } else if short_before {
            CacheTtl::FiveMinutes
        } else {
            wanted
        };
        planned.push((*i, ttl));
    }
    // A planned 1h after a planned 5m cannot happen (the loop above downgrades), but a caller
    // 1h after our 5m would be invalid: drop such markers rather than send a bad request.
    planned.retain(|(i, t)| *t == CacheTtl::OneHour || !caller_hour_after(*i));

    let mut out = request;
    for (i, ttl) in planned {
        let marker = if ttl == CacheTtl::FiveMinutes {
            CacheControl::ephemeral()
        } else {
            CacheControl::with_ttl(ttl)
        };
        set_marker(&mut out, positions[i].slot, marker);
    }
    (out, below_minimum)
}
