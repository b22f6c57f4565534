//! The local-tokenizer counter with a tiny tokenizer file written by the test (the real legacy
//! Claude `tokenizer.json` loads the same way; nothing is downloaded).
#![cfg(feature = "legacy-tokenizer")]

use claude_tower_core::MessagesRequest;
use claude_tower_core::estimate::MESSAGE_OVERHEAD_TOKENS;
use claude_tower_mock::MockClaude;
use claude_tower_trim::{TokenBudget, TokenCounter, TokenizerCounter, TrimLayer, TrimReport};
use tower::{ServiceBuilder, ServiceExt};

fn tokenizer_file() -> std::path::PathBuf {
    let json = r#"{
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"hello": 0, "world": 1, "[UNK]": 2}, "unk_token": "[UNK]"}
    }"#;
    let path = std::env::temp_dir().join(format!(
        "claude-tower-test-tokenizer-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, json).unwrap();
    path
}

#[tokio::test]
async fn counts_with_a_local_tokenizer_file_and_trims_with_it() {
    let path = tokenizer_file();
    let counter = TokenizerCounter::from_file(&path).unwrap();
    assert_eq!(counter.count_text("hello world hello").unwrap(), 3);
    assert_eq!(
        counter.count_text("hello, unknown words!").unwrap(),
        5,
        "punctuation and unknown words are tokens"
    );
    let request = MessagesRequest::new("claude-haiku-4-5", 10).user("hello world");
    assert_eq!(
        counter.count(&request).await.unwrap(),
        MESSAGE_OVERHEAD_TOKENS + 2
    );

    // Trimming driven by the tokenizer's counts.
    let mut long = MessagesRequest::new("claude-haiku-4-5", 10).user("hello");
    for _ in 0..50 {
        long = long
            .assistant("world world")
            .user("hello hello hello hello");
    }
    let service = ServiceBuilder::new()
        .layer(
            TrimLayer::new()
                .budget(TokenBudget::Tokens(120))
                .counter(TokenizerCounter::from_file(&path).unwrap()),
        )
        .service(MockClaude::new());
    let response = service.oneshot(long.into_http()).await.unwrap();
    let report = response.extensions().get::<TrimReport>().unwrap();
    assert!(report.messages_dropped > 0);
    assert!(report.tokens_after <= 120, "{report:?}");
    assert!(TokenizerCounter::from_file("/nonexistent/tokenizer.json").is_err());
    let _ = std::fs::remove_file(path);
}
