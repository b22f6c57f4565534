//! The key pool: sticky per conversation, moves only on 429/529, hot swap with in-flight
//! requests finishing on their key, secrets never printed, and why stickiness matters: the
//! prompt cache is per workspace.

use std::time::Duration;

use claude_tower::core::{CacheControl, ErrorKind, MessagesRequest};
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::route::{ApiKey, ConversationId, KeyPool, KeyPoolLayer, KeyReport};
use secrecy::SecretString;
use tower::{Layer, ServiceExt};

fn key(id: &str, workspace: &str) -> ApiKey {
    ApiKey::new(
        id,
        workspace,
        SecretString::from(format!("sk-ant-secret-{id}")),
    )
}

fn pool() -> KeyPool {
    KeyPool::new([
        key("a1", "wrk-a"),
        key("a2", "wrk-a"),
        key("b1", "wrk-b"),
        key("b2", "wrk-b"),
    ])
}

fn turn(conversation: &str, turn: usize) -> http::Request<MessagesRequest> {
    // A long, cached system prompt per conversation, then a growing history.
    let mut request = MessagesRequest::new("claude-haiku-4-5", 64).system(format!(
        "Conversation {conversation}. {}",
        "Policy text. ".repeat(3_000)
    ));
    for t in 0..=turn {
        request = request.user(format!("question {t}"));
        if t < turn {
            request = request.assistant(format!("answer {t}"));
        }
    }
    request.cache_control = Some(CacheControl::ephemeral());
    let mut request = request.into_http();
    request
        .extensions_mut()
        .insert(ConversationId(conversation.to_owned()));
    request
}

fn sent_key(request: &claude_tower::mock::RecordedRequest) -> String {
    request.headers["x-api-key"].to_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn conversations_keep_their_key_and_spread_over_workspaces() {
    let mock = MockClaude::new();
    let service = KeyPoolLayer::new(pool()).layer(mock.clone());
    for c in 0..20 {
        for t in 0..4 {
            let response = service
                .clone()
                .oneshot(turn(&format!("c{c}"), t))
                .await
                .unwrap();
            assert!(response.extensions().get::<KeyReport>().is_some());
        }
    }
    let requests = mock.requests();
    let mut workspaces = std::collections::HashSet::new();
    for c in 0..20 {
        let keys: std::collections::HashSet<String> =
            requests[c * 4..c * 4 + 4].iter().map(sent_key).collect();
        assert_eq!(keys.len(), 1, "conversation c{c} kept one key");
        let key = keys.into_iter().next().unwrap();
        workspaces.insert(key.chars().nth_back(1));
    }
    assert_eq!(workspaces.len(), 2, "both workspaces carry conversations");
    // The key is sent as a sensitive header.
    assert!(requests[0].headers["x-api-key"].is_sensitive());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_key_moves_to_another_workspace_a_spend_cap_does_not() {
    let mock =
        MockClaude::new().with_script([Attempt::rate_limited(Some(Duration::from_secs(30)))]);
    let service = KeyPoolLayer::new(pool()).layer(mock.clone());
    let response = service.clone().oneshot(turn("c1", 0)).await.unwrap();
    let report = response.extensions().get::<KeyReport>().unwrap().clone();
    assert_eq!(report.moved_from.len(), 1);
    let first = &mock.requests()[0];
    let second = &mock.requests()[1];
    assert_ne!(
        sent_key(first)[..16],
        sent_key(second)[..16],
        "another workspace"
    );
    // The conversation stays on its new key.
    service.clone().oneshot(turn("c1", 1)).await.unwrap();
    assert_eq!(sent_key(&mock.requests()[2]), sent_key(second));

    let capped = MockClaude::new().with_script([Attempt::spend_cap()]);
    let service = KeyPoolLayer::new(pool()).layer(capped.clone());
    let error = service.oneshot(turn("c2", 0)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(
        capped.request_count(),
        1,
        "a spend cap is not the key's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_swap_at_run_time_and_in_flight_requests_keep_theirs() {
    let pool = KeyPool::new([key("old", "wrk-a")]);
    let mock = MockClaude::new()
        .with_script([Attempt::ok().with_first_byte_delay(Duration::from_secs(10))]);
    let service = KeyPoolLayer::new(pool.clone()).layer(mock.clone());
    let slow = tokio::spawn(service.clone().oneshot(turn("c1", 0)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    pool.replace([key("new", "wrk-a")]);
    let fresh = service.clone().oneshot(turn("c2", 0)).await.unwrap();
    assert_eq!(fresh.extensions().get::<KeyReport>().unwrap().id, "new");
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.extensions().get::<KeyReport>().unwrap().id, "old");
    // The pinned conversation moves to a key that exists.
    let again = service.oneshot(turn("c1", 1)).await.unwrap();
    assert_eq!(again.extensions().get::<KeyReport>().unwrap().id, "new");
}

#[tokio::test]
async fn keys_load_from_files_and_never_print() {
    let dir = std::env::temp_dir().join(format!("claude-tower-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.txt");
    std::fs::write(&file, "# rotated\nk1 wrk-a sk-ant-file-one\n").unwrap();
    let pool = KeyPool::from_file(&file).unwrap();
    std::fs::write(&file, "k2 wrk-b sk-ant-file-two\nbroken line\n").unwrap();
    let error = pool.reload_from_file(&file).unwrap_err();
    assert!(!error.to_string().contains("sk-ant"), "{error}");
    assert_eq!(pool.len(), 1, "a bad file keeps the current keys");
    std::fs::write(&file, "k2 wrk-b sk-ant-file-two\n").unwrap();
    pool.reload_from_file(&file).unwrap();
    let layer = KeyPoolLayer::new(pool.clone());
    for text in [format!("{pool:?}"), format!("{layer:?}")] {
        assert!(!text.contains("sk-ant"), "{text}");
        assert!(text.contains("k2"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The prompt cache is per workspace: a pool that keeps conversations on one workspace reads
/// the cache; one that spreads a conversation's turns over workspaces writes it again.
#[tokio::test(start_paused = true)]
async fn sticky_keys_keep_the_prompt_cache_warm() {
    let workspaces = [
        ("sk-ant-secret-a1", "wrk-a"),
        ("sk-ant-secret-a2", "wrk-a"),
        ("sk-ant-secret-b1", "wrk-b"),
        ("sk-ant-secret-b2", "wrk-b"),
    ];
    let mut ratios = Vec::new();
    for split in [false, true] {
        let mock = MockClaude::new().with_workspace_keys(workspaces);
        let service = KeyPoolLayer::new(pool()).layer(mock.clone());
        let (mut read, mut total) = (0u64, 0u64);
        for c in 0..10 {
            for t in 0..6 {
                // Splitting: every turn looks like a new conversation to the pool.
                let id = if split {
                    format!("c{c}-t{t}")
                } else {
                    format!("c{c}")
                };
                let mut request = turn(&format!("c{c}"), t);
                request.extensions_mut().insert(ConversationId(id));
                let response = service.clone().oneshot(request).await.unwrap();
                let usage = response.into_body().into_message().await.unwrap().usage;
                read += usage.cache_read_tokens();
                total += usage.total_input_tokens();
            }
        }
        ratios.push(read as f64 / total as f64);
    }
    println!(
        "cache reads: sticky {:.1} %, split across workspaces {:.1} %",
        ratios[0] * 100.0,
        ratios[1] * 100.0
    );
    assert!(ratios[0] > ratios[1] + 0.1, "{ratios:?}");
}

/// Each workspace's keys have their own rate-limit buckets: the pool tells the rate limiter
/// the key's workspace (`RateLimitScope`), which its per-key limits use.
#[tokio::test(start_paused = true)]
async fn each_workspace_has_its_own_rate_limit_buckets() {
    use claude_tower::rate_limit::{Limits, RateLimitLayer};
    let mock = MockClaude::new();
    let service = tower::ServiceBuilder::new()
        .layer(KeyPoolLayer::new(KeyPool::new([
            key("a1", "wrk-a"),
            key("b1", "wrk-b"),
        ])))
        .layer(
            RateLimitLayer::new()
                .per_key(Limits::learn().with_requests_per_minute(1))
                .max_wait(Duration::ZERO),
        )
        .service(mock.clone());
    let mut answered = 0;
    for c in 0..10 {
        match service.clone().oneshot(turn(&format!("c{c}"), 0)).await {
            Ok(_) => answered += 1,
            Err(error) => assert_eq!(error.kind(), ErrorKind::RateLimited),
        }
    }
    // One request per workspace per minute: two in all (without the scope, these requests
    // have no key for the rate limiter and all ten would pass).
    assert_eq!(answered, 2);
    let keys: std::collections::HashSet<String> = mock.requests().iter().map(sent_key).collect();
    assert_eq!(keys.len(), 2, "one per workspace");
}
