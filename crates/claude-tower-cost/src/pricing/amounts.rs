//! The free functions behind [`PriceTable`](super::PriceTable)'s amounts: usage iterations,
//! web searches, modifiers, and a reservation at a resolved row.

use claude_tower_core::Usage;

use super::{InputSplit, Modifiers, PerMillion, PriceRow, PriceTier};
use crate::money::Usd;

/// The `usage.iterations` entries as (model, usage), if there are any.
pub(super) fn iterations(usage: &Usage) -> Option<Vec<(Option<String>, Usage)>> {
    let entries = usage.extra.get("iterations")?.as_array()?;
    if entries.is_empty() {
        return None;
    }
    Some(
        entries
            .iter()
            .map(|entry| {
                let model = entry
                    .get("model")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let mut usage: Usage = serde_json::from_value(entry.clone()).unwrap_or_default();
                // An entry's own fields only: never recurse into nested iterations.
                usage.extra.remove("iterations");
                (model, usage)
            })
            .collect(),
    )
}

/// Web searches: `$X per 1,000` = X·10⁹ pico-dollars per search.
pub(super) fn web_search_cost(row: &PriceRow, usage: &Usage) -> Usd {
    let searches = usage
        .server_tool_use
        .as_ref()
        .map_or(0, |s| s.web_search_requests);
    searches_cost(row, searches)
}

/// `amount` with the row's multipliers that `modifiers` switch on (batch, US-only, fast),
/// rounded up: a reservation must never be short.
pub(super) fn scaled_up(row: &PriceRow, modifiers: Modifiers, mut amount: Usd) -> Usd {
    let multipliers = [
        modifiers.batch.then_some(row.batch_multiplier),
        row.us_multiplier.filter(|_| modifiers.us_only),
        row.fast_multiplier.filter(|_| modifiers.fast),
    ];
    for m in multipliers.into_iter().flatten() {
        let (n, d) = m.ratio();
        amount = Usd::from_picodollars(
            amount
                .picodollars()
                .checked_mul(n)
                .map_or(u128::MAX, |p| p.div_ceil(d)),
        );
    }
    amount
}

pub(super) fn searches_cost(row: &PriceRow, searches: u64) -> Usd {
    Usd::from_picodollars(
        row.web_search_per_1000
            .picodollars_per_token()
            .saturating_mul(1000)
            .saturating_mul(u128::from(searches)),
    )
}

/// [`PriceTable::reservation`] at a row already resolved: (input side, total).
pub(crate) fn reservation_at(
    row: &PriceRow,
    split: &InputSplit,
    max_tokens: u64,
    web_searches: u64,
    modifiers: Modifiers,
) -> (Usd, Usd) {
    let rate = |base: PerMillion, tier: fn(&PriceTier) -> PerMillion| {
        row.above.as_ref().map_or(base, |t| base.max(tier(t)))
    };
    let input = rate(row.input, |t| t.input).cost(split.input)
        + rate(row.cache_write_5m, |t| t.cache_write_5m).cost(split.write_5m)
        + rate(row.cache_write_1h, |t| t.cache_write_1h).cost(split.write_1h)
        + rate(row.cache_read, |t| t.cache_read).cost(split.read);
    let output = rate(row.output, |t| t.output).cost(max_tokens);
    let scale = |amount: Usd| scaled_up(row, modifiers, amount);
    let input = scale(input);
    let total = input + scale(output) + searches_cost(row, web_searches);
    (input, total)
}
