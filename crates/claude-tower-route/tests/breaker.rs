//! The circuit breaker alone (paused clock): rate and streak trips, minimum calls, the
//! doubling cooldown, cancelled probes, many keys.

use std::time::Duration;

use claude_tower::route::{BreakerConfig, CircuitBreaker, CircuitState};

const M: &str = "claude-opus-4-5";

fn open(breaker: &CircuitBreaker) -> bool {
    matches!(breaker.state(M), CircuitState::Open { .. })
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_counts_only_from_the_minimum_calls() {
    let breaker = CircuitBreaker::new(
        BreakerConfig::default()
            .consecutive_failures(0)
            .minimum_calls(4)
            .failure_rate(0.5),
    );
    // success, failure, success: 3 calls, under the minimum.
    breaker.try_call(M).unwrap().success();
    breaker.try_call(M).unwrap().failure();
    breaker.try_call(M).unwrap().success();
    assert!(!open(&breaker));
    // The fourth call fails: 2 of 4 = 50 %.
    breaker.try_call(M).unwrap().failure();
    assert!(open(&breaker));
}

#[tokio::test(start_paused = true)]
async fn old_outcomes_leave_the_window() {
    let breaker = CircuitBreaker::new(
        BreakerConfig::default()
            .consecutive_failures(0)
            .minimum_calls(2)
            .window(Duration::from_secs(10)),
    );
    breaker.try_call(M).unwrap().failure();
    tokio::time::advance(Duration::from_secs(11)).await;
    breaker.try_call(M).unwrap().success();
    breaker.try_call(M).unwrap().success();
    // The old failure left the window: 0 of 2.
    assert!(!open(&breaker));
}

#[tokio::test(start_paused = true)]
async fn the_cooldown_doubles_while_probes_fail_and_resets_on_success() {
    let breaker = CircuitBreaker::new(
        BreakerConfig::default()
            .consecutive_failures(1)
            .cooldown(Duration::from_secs(5))
            .max_cooldown(Duration::from_secs(15)),
    );
    breaker.try_call(M).unwrap().failure();
    for expected in [5, 10, 15, 15] {
        let CircuitState::Open { retry_in } = breaker.state(M) else {
            panic!("open expected");
        };
        assert_eq!(retry_in, Duration::from_secs(expected));
        assert!(breaker.try_call(M).is_none());
        tokio::time::advance(retry_in).await;
        let probe = breaker.try_call(M).expect("a probe after the cooldown");
        assert!(probe.is_probe());
        probe.failure();
    }
    tokio::time::advance(Duration::from_secs(15)).await;
    breaker.try_call(M).unwrap().success();
    assert_eq!(breaker.state(M), CircuitState::Closed);
    // Back to the first cooldown.
    breaker.try_call(M).unwrap().failure();
    assert_eq!(
        breaker.state(M),
        CircuitState::Open {
            retry_in: Duration::from_secs(5)
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_the_slot() {
    let breaker = CircuitBreaker::new(BreakerConfig::default().consecutive_failures(1));
    breaker.try_call(M).unwrap().failure();
    tokio::time::advance(Duration::from_secs(5)).await;
    let probe = breaker.try_call(M).unwrap();
    assert!(breaker.try_call(M).is_none());
    drop(probe);
    assert_eq!(breaker.state(M), CircuitState::HalfOpen);
    assert!(breaker.try_call(M).is_some_and(|p| p.is_probe()));
}

#[tokio::test(start_paused = true)]
async fn circuits_are_per_key_and_bounded() {
    let breaker = CircuitBreaker::new(BreakerConfig::default().consecutive_failures(1));
    breaker.try_call(M).unwrap().failure();
    assert!(open(&breaker));
    assert_eq!(breaker.state("claude-haiku-4-5"), CircuitState::Closed);
    // Many distinct keys (e.g. hostile model ids) never grow it without bound, and the open
    // circuit survives the pruning of closed ones.
    for i in 0..10_000 {
        breaker.try_call(&format!("model-{i}")).unwrap().success();
    }
    assert!(open(&breaker));
    assert!(format!("{breaker:?}").contains("circuits"));
}
