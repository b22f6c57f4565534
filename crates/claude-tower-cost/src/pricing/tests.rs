//! Unit tests of `pricing`.

use super::*;
use claude_tower_core::{CacheCreation, ServerToolUsage};

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Usage::default()
    }
}

#[test]
fn absurd_usage_saturates_instead_of_overflowing() {
    let table = PriceTable::builtin();
    let mut u = usage(u64::MAX, u64::MAX);
    u.cache_read_input_tokens = Some(u64::MAX);
    u.cache_creation_input_tokens = Some(u64::MAX);
    u.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: u64::MAX,
        ephemeral_1h_input_tokens: u64::MAX,
        ..Default::default()
    });
    u.server_tool_use = Some(ServerToolUsage {
        web_search_requests: u64::MAX,
        ..Default::default()
    });
    let modifiers = Modifiers {
        batch: true,
        us_only: true,
        fast: true,
    };
    let cost = table.cost("claude-opus-4-6", &u, modifiers).unwrap();
    // Far above any budget, and never below the sane part of it.
    assert!(cost.total >= cost.output);
    assert!(cost.total > Usd::from_cents(u64::MAX));
    let worst = table
        .worst_case("claude-opus-4-6", u64::MAX, u64::MAX, u64::MAX, modifiers)
        .unwrap();
    assert!(worst > Usd::from_cents(u64::MAX));
}

#[test]
fn iterations_are_priced_per_entry_at_their_own_model_with_compaction() {
    let table = PriceTable::builtin();
    let usage: Usage = serde_json::from_value(serde_json::json!({
        "input_tokens": 1_000, "output_tokens": 500,
        "iterations": [
            {"type": "compaction", "model": null, "input_tokens": 40_000, "output_tokens": 2_000},
            {"type": "message", "input_tokens": 600, "output_tokens": 300},
            {"type": "advisor_message", "model": "claude-opus-4-6", "input_tokens": 400, "output_tokens": 200}
        ]
    }))
    .unwrap();
    let cost = table
        .cost("claude-haiku-4-5", &usage, Modifiers::default())
        .unwrap();
    let at = |model: &str, input: u64, output: u64| {
        table
            .cost(model, &usage_of(input, output), Modifiers::default())
            .unwrap()
            .total
    };
    let expected = at("claude-haiku-4-5", 40_000, 2_000)
        + at("claude-haiku-4-5", 600, 300)
        + at("claude-opus-4-6", 400, 200);
    assert_eq!(cost.total, expected);
    // $1/$5 per MTok for Haiku 4.5 and $5/$25 for Opus 4.6, to the pico-dollar:
    // (40,600 × 1 + 2,300 × 5 + 400 × 5 + 200 × 25) / 1e6 = $0.0591.
    assert_eq!(cost.total, "0.0591".parse().unwrap());
    assert!(cost.total > at("claude-haiku-4-5", 1_000, 500));
}

fn usage_of(input: u64, output: u64) -> Usage {
    usage(input, output)
}

#[test]
fn speed_in_usage_wins_over_the_request() {
    let fast: Usage = serde_json::from_value(serde_json::json!({
        "input_tokens": 1, "output_tokens": 1, "speed": "fast"
    }))
    .unwrap();
    assert!(Modifiers::of(None, Some(&fast)).fast);
    let standard: Usage = serde_json::from_value(serde_json::json!({
        "input_tokens": 1, "output_tokens": 1, "speed": "standard"
    }))
    .unwrap();
    let request: MessagesRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "max_tokens": 1, "messages": [], "speed": "fast"
    }))
    .unwrap();
    assert!(!Modifiers::of(Some(&request), Some(&standard)).fast);
    assert!(Modifiers::of(Some(&request), None).fast);
}

#[test]
fn builtin_table_parses_with_sources_and_dates() {
    let table = PriceTable::builtin();
    assert!(table.rows().count() >= 20);
    for row in table.rows() {
        assert!(!row.source.is_empty(), "{}", row.model);
        assert_eq!(row.as_of.len(), 10, "{}", row.model);
    }
    assert_eq!(
        table.row("claude-opus-4-6-20260205").unwrap().model,
        "claude-opus-4-6"
    );
    assert_eq!(
        table.row("claude-opus-4-8-20270101").unwrap().model,
        "claude-opus-4-8"
    );
    assert!(table.row("gpt-4").is_none());
}

#[test]
fn cache_writes_use_the_ttl_split_and_reads_their_own_ratio() {
    let table = PriceTable::builtin();
    let mut u = usage(0, 0);
    u.cache_creation_input_tokens = Some(3_000_000);
    u.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: 1_000_000,
        ephemeral_1h_input_tokens: 1_000_000,
        ..Default::default()
    });
    u.cache_read_input_tokens = Some(1_000_000);
    let cost = table
        .cost("claude-sonnet-5-5", &u, Modifiers::default())
        .unwrap();
    // 1M at 5m + 1M unsplit (priced at 5m) = 2 × $2.50; 1M at 1h = $4; read 0.05× = $0.10.
    assert_eq!(cost.cache_write_5m.to_string(), "$5.00");
    assert_eq!(cost.cache_write_1h.to_string(), "$4.00");
    assert_eq!(cost.cache_read.to_string(), "$0.10");
    let fable = table
        .cost("claude-fable-5-1", &u, Modifiers::default())
        .unwrap();
    assert_eq!(fable.cache_read.to_string(), "$0.25", "0.025× input");
}

#[test]
fn modifiers_and_tiers() {
    let table = PriceTable::builtin();
    let u = usage(1_000_000, 1_000_000);
    let base = table
        .cost("claude-opus-4-6", &u, Modifiers::default())
        .unwrap();
    assert_eq!(base.total.to_string(), "$30.00");
    let us = table
        .cost(
            "claude-opus-4-6",
            &u,
            Modifiers {
                us_only: true,
                ..Modifiers::default()
            },
        )
        .unwrap();
    assert_eq!(us.total.to_string(), "$33.00");
    let batch = table
        .cost(
            "claude-opus-4-6",
            &u,
            Modifiers {
                batch: true,
                ..Modifiers::default()
            },
        )
        .unwrap();
    assert_eq!(batch.total.to_string(), "$15.00");
    let fast = table
        .cost(
            "claude-opus-4-6",
            &u,
            Modifiers {
                fast: true,
                ..Modifiers::default()
            },
        )
        .unwrap();
    assert_eq!(fast.total.to_string(), "$180.00");
    // US-only does not apply to Opus 4.5.
    let old = table
        .cost(
            "claude-opus-4-5",
            &u,
            Modifiers {
                us_only: true,
                ..Modifiers::default()
            },
        )
        .unwrap();
    assert_eq!(old.total.to_string(), "$30.00");
    // Long context: the whole request at the tier price once the prompt exceeds 200K.
    let long = table
        .cost(
            "claude-sonnet-4-5",
            &usage(250_000, 1_000),
            Modifiers::default(),
        )
        .unwrap();
    assert!(long.above_tier);
    assert_eq!(long.total.to_string(), "$1.5225");
    let mut searches = usage(0, 0);
    searches.server_tool_use = Some(ServerToolUsage {
        web_search_requests: 3,
        ..ServerToolUsage::default()
    });
    assert_eq!(
        table
            .cost("claude-haiku-4-5", &searches, Modifiers::default())
            .unwrap()
            .total
            .to_string(),
        "$0.03"
    );
}

#[test]
fn unknown_models_error_or_fall_back() {
    let table = PriceTable::builtin();
    let error = table
        .cost("claude-unknown-9", &usage(1, 1), Modifiers::default())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    let fallback = table.row("claude-opus-4-8").unwrap().clone();
    let table = table.on_unknown_model(UnknownModel::Fallback(Box::new(fallback)));
    let cost = table
        .cost(
            "claude-unknown-9",
            &usage(1_000_000, 0),
            Modifiers::default(),
        )
        .unwrap();
    assert_eq!(cost.priced_as.as_deref(), Some("claude-opus-4-8"));
    assert_eq!(cost.total.to_string(), "$5.00");
}

#[test]
fn worst_case_covers_any_split_of_the_input() {
    let table = PriceTable::builtin();
    let worst = table
        .worst_case(
            "claude-haiku-4-5",
            1_000_000,
            1_000_000,
            0,
            Modifiers::default(),
        )
        .unwrap();
    // 1M tokens at the 1h write price ($2) + 1M output ($5).
    assert_eq!(worst.to_string(), "$7.00");
}
