//! Two replicas' breakers over one real redis-server: a circuit opened on one is open on the
//! other within the refresh interval, and closes everywhere when its cooldown ends.

use std::time::Duration;

use claude_tower::route::{BreakerConfig, CircuitBreaker, CircuitState, RedisCircuits};
use claude_tower_mock::RedisServer;

const M: &str = "claude-opus-4-5";

/// Polls `condition` every 20 ms for at most `limit` (a bounded wait on real time: Redis
/// expiries are on the server's clock).
async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let step = Duration::from_millis(20);
    for _ in 0..limit.as_millis() / step.as_millis() {
        if condition() {
            return true;
        }
        tokio::time::sleep(step).await;
    }
    condition()
}

#[tokio::test]
async fn replicas_open_together() {
    let redis = RedisServer::start().await;
    let config = BreakerConfig::default()
        .consecutive_failures(2)
        .cooldown(Duration::from_millis(800));
    let replica = |_: u8| async {
        let share = RedisCircuits::connect(&redis.url())
            .await
            .unwrap()
            .refresh(Duration::from_millis(50));
        CircuitBreaker::new(config).shared(share)
    };
    let a = replica(1).await;
    let b = replica(2).await;
    // B follows the model (asks about it) before A's circuit opens.
    assert!(b.try_call(M).is_some_and(|permit| {
        permit.success();
        true
    }));
    a.try_call(M).unwrap().failure();
    a.try_call(M).unwrap().failure();
    assert!(matches!(a.state(M), CircuitState::Open { .. }));
    assert!(
        eventually(Duration::from_secs(3), || b.try_call(M).is_none()).await,
        "B skips the model A opened"
    );
    assert!(matches!(b.state(M), CircuitState::Open { .. }));
    // The shared entry lapses with the cooldown: B calls again.
    assert!(
        eventually(Duration::from_secs(5), || b.state(M)
            == CircuitState::Closed)
        .await,
        "closed again on B after the cooldown"
    );
    assert!(format!("{b:?}").contains("RedisCircuits"));
}

#[tokio::test]
async fn a_breaker_works_alone_when_redis_is_gone() {
    let mut redis = RedisServer::start().await;
    let share = RedisCircuits::connect(&redis.url())
        .await
        .unwrap()
        .refresh(Duration::from_millis(10));
    let breaker =
        CircuitBreaker::new(BreakerConfig::default().consecutive_failures(1)).shared(share);
    redis.kill();
    // Nothing waits on the dead server: calls are answered from local state.
    for _ in 0..100 {
        breaker.try_call("claude-haiku-4-5").unwrap().success();
    }
    breaker.try_call(M).unwrap().failure();
    assert!(matches!(breaker.state(M), CircuitState::Open { .. }));
}
