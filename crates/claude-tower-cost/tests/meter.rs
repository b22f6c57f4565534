//! The cost meter as a layer: properties of the arithmetic, streams priced like messages,
//! dropped streams, cache hits, unknown models.

use claude_tower_core::ext::{Attribution, ResponseCacheStatus};
use claude_tower_core::{
    CacheCreation, ContentBlock, ErrorKind, Message, MessagesRequest, ServerToolUsage, StopReason,
    Usage,
};
use claude_tower_cost::{Cost, CostHandle, CostLayer, CostLedger, Modifiers, PriceTable, Usd};
use claude_tower_mock::{Attempt, MockClaude};
use futures_util::StreamExt;
use proptest::prelude::*;
use tower::{ServiceBuilder, ServiceExt};

const MODELS: &[&str] = &[
    "claude-haiku-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-8",
    "claude-sonnet-5-5",
    "claude-fable-5-1",
    "claude-3-haiku-20240307",
    "claude-opus-4-1",
];

fn arb_usage() -> impl Strategy<Value = Usage> {
    (
        0u64..40_000,
        0u64..20_000,
        0u64..10_000,
        0u64..10_000,
        0u64..30_000,
        0u64..5,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(input, output, w5, w1, read, searches, batch, us)| Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: Some(w5 + w1),
            cache_read_input_tokens: Some(read),
            cache_creation: Some(CacheCreation {
                ephemeral_5m_input_tokens: w5,
                ephemeral_1h_input_tokens: w1,
                ..Default::default()
            }),
            server_tool_use: Some(ServerToolUsage {
                web_search_requests: searches,
                ..ServerToolUsage::default()
            }),
            service_tier: Some(if batch { "batch" } else { "standard" }.to_owned()),
            inference_geo: Some(if us { "us" } else { "global" }.to_owned()),
            ..Usage::default()
        })
}

fn sum(a: &Usage, b: &Usage) -> Usage {
    let mut total = a.clone();
    total.input_tokens += b.input_tokens;
    total.output_tokens += b.output_tokens;
    total.cache_creation_input_tokens = Some(a.cache_write_tokens() + b.cache_write_tokens());
    total.cache_read_input_tokens = Some(a.cache_read_tokens() + b.cache_read_tokens());
    let (ac, bc) = (
        a.cache_creation.clone().unwrap(),
        b.cache_creation.clone().unwrap(),
    );
    total.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: ac.ephemeral_5m_input_tokens + bc.ephemeral_5m_input_tokens,
        ephemeral_1h_input_tokens: ac.ephemeral_1h_input_tokens + bc.ephemeral_1h_input_tokens,
        ..Default::default()
    });
    let searches = a.server_tool_use.as_ref().unwrap().web_search_requests
        + b.server_tool_use.as_ref().unwrap().web_search_requests;
    total.server_tool_use = Some(ServerToolUsage {
        web_search_requests: searches,
        ..ServerToolUsage::default()
    });
    total
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cost_is_non_negative_consistent_and_additive(model in prop::sample::select(MODELS), a in arb_usage(), b in arb_usage()) {
        let table = PriceTable::builtin();
        let mut b = b;
        b.service_tier.clone_from(&a.service_tier);
        b.inference_geo.clone_from(&a.inference_geo);
        let modifiers = Modifiers::of(None, Some(&a));
        let ca = table.cost(model, &a, modifiers).unwrap();
        let cb = table.cost(model, &b, modifiers).unwrap();
        let cab = table.cost(model, &sum(&a, &b), modifiers).unwrap();
        prop_assert!(ca.total >= Usd::ZERO);
        prop_assert_eq!(ca.total, ca.input + ca.cache_write_5m + ca.cache_write_1h + ca.cache_read + ca.output + ca.web_search);
        prop_assert_eq!(cab.total, ca.total + cb.total, "additive");
        // More of anything never costs less.
        prop_assert!(cab.total >= ca.total);
    }

    #[test]
    fn streamed_and_complete_replies_cost_the_same(model in prop::sample::select(MODELS), usage in arb_usage(), text in "[a-z ]{1,60}", chunk in 1usize..9) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut message = Message::new("msg_1", model);
            message.content.push(ContentBlock::text(text));
            message.stop_reason = Some(StopReason::EndTurn);
            message.usage = usage;
            let mock = MockClaude::new()
                .with_chunk_chars(chunk)
                .with_script([Attempt::message(message.clone()), Attempt::message(message)]);
            let service = ServiceBuilder::new().layer(CostLayer::new()).service(mock);
            let request = MessagesRequest::new(model, 100).user("hi");
            let complete = service.clone().oneshot(request.clone().into_http()).await.unwrap();
            let complete_cost = complete.extensions().get::<Cost>().unwrap().clone();
            let streamed = service.oneshot(request.stream(true).into_http()).await.unwrap();
            let handle = streamed.extensions().get::<CostHandle>().unwrap().clone();
            assert!(handle.get().is_none(), "a stream is priced at its end");
            let _events: Vec<_> = streamed.into_body().into_stream().collect().await;
            assert_eq!(handle.get().unwrap(), &complete_cost);
        });
    }
}

#[tokio::test]
async fn ledger_attributes_per_tenant_user_feature_and_model() {
    let ledger = CostLedger::new();
    let service = ServiceBuilder::new()
        .layer(CostLayer::new().ledger(ledger.clone()))
        .service(MockClaude::new());
    for (tenant, user, model) in [
        ("acme", "ann", "claude-haiku-4-5"),
        ("acme", "bob", "claude-sonnet-4-6"),
        ("globex", "ann", "claude-haiku-4-5"),
    ] {
        let mut request = MessagesRequest::new(model, 200)
            .user("Summarise the quarterly report")
            .into_http();
        request.extensions_mut().insert(
            Attribution::tenant(tenant)
                .with_user(user)
                .with_feature("summaries"),
        );
        service.clone().oneshot(request).await.unwrap();
    }
    // metadata.user_id is the fallback user.
    let mut request = MessagesRequest::new("claude-haiku-4-5", 200).user("hi");
    request.metadata = Some(claude_tower_core::Metadata {
        user_id: Some("carl".to_owned()),
        ..Default::default()
    });
    service.clone().oneshot(request.into_http()).await.unwrap();

    let snapshot = ledger.snapshot();
    assert_eq!(snapshot.total.requests, 4);
    assert_eq!(snapshot.by_tenant["acme"].requests, 2);
    assert_eq!(snapshot.by_user["ann"].requests, 2);
    assert_eq!(snapshot.by_user["carl"].requests, 1);
    assert_eq!(snapshot.by_feature["summaries"].requests, 3);
    assert_eq!(snapshot.by_model["claude-haiku-4-5"].requests, 3);
    let by_tenant: Usd = snapshot.by_tenant.values().map(|t| t.cost).sum();
    assert_eq!(
        by_tenant + snapshot.by_user["carl"].cost,
        snapshot.total.cost
    );
    let json = serde_json::to_value(&snapshot).unwrap();
    assert!(json["total"]["cost"].as_str().unwrap().starts_with("0.0"));
}

#[tokio::test]
async fn a_dropped_stream_is_charged_what_was_used() {
    let ledger = CostLedger::new();
    let service = ServiceBuilder::new()
        .layer(CostLayer::new().ledger(ledger.clone()))
        .service(MockClaude::new());
    let request = MessagesRequest::new("claude-sonnet-4-6", 300)
        .user("Tell me a long story")
        .stream(true);
    let expected_input = request.estimate_input_tokens();
    let response = service.oneshot(request.into_http()).await.unwrap();
    let handle = response.extensions().get::<CostHandle>().unwrap().clone();
    let mut events = response.into_body().into_stream();
    let _start = events.next().await.unwrap().unwrap();
    drop(events);
    let cost = handle.get().expect("priced on drop");
    assert_eq!(
        cost.input,
        PriceTable::builtin()
            .row("claude-sonnet-4-6")
            .unwrap()
            .input
            .cost(expected_input)
    );
    assert_eq!(ledger.snapshot().total.requests, 1);
}

#[tokio::test]
async fn response_cache_hits_cost_nothing() {
    let ledger = CostLedger::new();
    let hit = tower::service_fn(|request: http::Request<MessagesRequest>| async move {
        let mut response = MockClaude::new().oneshot(request).await?;
        response.extensions_mut().insert(ResponseCacheStatus::Hit);
        Ok::<_, claude_tower_core::Error>(response)
    });
    let service = ServiceBuilder::new()
        .layer(CostLayer::new().ledger(ledger.clone()))
        .service(hit);
    let response = service
        .oneshot(
            MessagesRequest::new("claude-opus-4-8", 100)
                .user("hi")
                .into_http(),
        )
        .await
        .unwrap();
    let cost = response.extensions().get::<Cost>().unwrap();
    assert!(cost.cached);
    assert_eq!(cost.total, Usd::ZERO);
    assert_eq!(ledger.snapshot().total.cached_responses, 1);
}

#[tokio::test]
async fn unknown_models_are_refused_before_sending() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(CostLayer::new())
        .service(mock.clone());
    let error = service
        .oneshot(
            MessagesRequest::new("claude-next-99", 100)
                .user("hi")
                .into_http(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(mock.request_count(), 0);
}

/// A reply after a server-side compaction (the mock's `usage.iterations`) costs its message
/// plus the compaction at the model's input and output prices, streamed or not (the
/// compaction tokens are not in the top-level totals).
#[tokio::test]
async fn compaction_iterations_from_the_mock_are_priced_on_top() {
    let table = PriceTable::builtin();
    for stream in [false, true] {
        let mock =
            MockClaude::new().with_script([Attempt::ok(), Attempt::compacted(40_000, 2_000)]);
        let service = ServiceBuilder::new().layer(CostLayer::new()).service(mock);
        let request = MessagesRequest::new("claude-sonnet-4-6", 100)
            .user("hi")
            .stream(stream);
        let mut costs = Vec::new();
        for _ in 0..2 {
            let response = service
                .clone()
                .oneshot(request.clone().into_http())
                .await
                .unwrap();
            // A message carries its `Cost`; a stream a `CostHandle` set at its end.
            let cost = response.extensions().get::<Cost>().cloned();
            let handle = response.extensions().get::<CostHandle>().cloned();
            assert_eq!((cost.is_some(), handle.is_some()), (!stream, stream));
            let _ = response.into_body().into_message().await.unwrap();
            costs.push(cost.unwrap_or_else(|| handle.unwrap().get().unwrap().clone()));
        }
        let compaction = Usage {
            input_tokens: 40_000,
            output_tokens: 2_000,
            ..Usage::default()
        };
        let compaction = table
            .cost("claude-sonnet-4-6", &compaction, Modifiers::default())
            .unwrap();
        assert_eq!(
            costs[1].total,
            costs[0].total + compaction.total,
            "stream={stream}: {costs:?}"
        );
        assert!(compaction.total > Usd::ZERO);
    }
}
