//! [`CircuitBreaker`]: per model (or per key) failure tracking, so a fallback chain skips a
//! model that is failing instead of sending to it.
//!
//! Closed → open when, within the sliding [`window`](BreakerConfig::window), at least
//! [`minimum_calls`](BreakerConfig::minimum_calls) calls were made and the failure rate reached
//! [`failure_rate`](BreakerConfig::failure_rate), or [`consecutive_failures`](BreakerConfig::consecutive_failures)
//! calls failed in a row. Open → half-open after the cooldown; half-open admits **one** probe
//! at a time: success closes the circuit (fresh window), failure opens it again with the
//! cooldown doubled (up to [`max_cooldown`](BreakerConfig::max_cooldown)), so a model that
//! stays down is probed less and less often and one that recovers is back at the next probe.
//!
//! Only what [`is_breaker_failure`](crate::is_breaker_failure) counts is a failure (overload,
//! 5xx, connection errors, timeouts); a refusal, a 4xx or a spend cap never opens a circuit.
//! Time is tokio's clock (tests can pause it).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::share::CircuitShare;

/// Most outcomes one circuit keeps in its window (older ones are dropped first).
const MAX_OUTCOMES: usize = 1_024;

/// Most circuits one breaker keeps (model ids and keys come from configuration and answers; a
/// bound keeps a hostile model id stream from growing the map: closed circuits go first).
const MAX_CIRCUITS: usize = 4_096;

/// When a circuit opens and how it recovers.
///
/// The defaults react faster than LiteLLM's (3 failures, or ≥ 50 % of a minute's calls with at
/// least 5, then 5 s of cooldown): a 10 s window, and the cooldown doubles while probes keep
/// failing (5 s → 60 s), so it does not flap back and forth during a long outage.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// The sliding window of outcomes (default 10 s).
    pub window: Duration,
    /// Calls within the window before the failure rate counts (default 5).
    pub minimum_calls: u32,
    /// Failure rate that opens the circuit, 0.0–1.0 (default 0.5).
    pub failure_rate: f64,
    /// Failures in a row that open the circuit whatever the rate (default 3; 0 = off).
    pub consecutive_failures: u32,
    /// First cooldown before a probe (default 5 s).
    pub cooldown: Duration,
    /// Longest cooldown after repeated failed probes (default 60 s).
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            minimum_calls: 5,
            failure_rate: 0.5,
            consecutive_failures: 3,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    claude_tower_core::setters! {
        /// The sliding window of outcomes.
        pub fn window(window: Duration) => window = window;
        /// Calls within the window before the failure rate counts.
        pub fn minimum_calls(calls: u32) => minimum_calls = calls;
        /// Failure rate (0.0–1.0, clamped) that opens the circuit.
        pub fn failure_rate(rate: f64) => failure_rate = if rate.is_nan() { 1.0 } else { rate.clamp(0.0, 1.0) };
        /// Failures in a row that open the circuit (0 = off).
        pub fn consecutive_failures(failures: u32) => consecutive_failures = failures;
        /// First cooldown before a probe.
        pub fn cooldown(cooldown: Duration) => cooldown = cooldown;
        /// Longest cooldown after repeated failed probes.
        pub fn max_cooldown(cooldown: Duration) => max_cooldown = cooldown;
    }
}

/// The state of one circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open {
        /// Time left until a probe is allowed.
        retry_in: Duration,
    },
    /// One probe is allowed (or in flight).
    HalfOpen,
}

#[derive(Debug)]
struct Circuit {
    /// (when, failed) within the window, oldest first.
    outcomes: VecDeque<(Instant, bool)>,
    failures_in_window: u32,
    consecutive: u32,
    mode: Mode,
    /// The cooldown to use the next time the circuit opens.
    next_cooldown: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open {
        until: Instant,
    },
    /// A probe is in flight (`true`) or may be sent (`false`).
    HalfOpen {
        probing: bool,
    },
}

impl Circuit {
    fn new(cooldown: Duration) -> Self {
        Self {
            outcomes: VecDeque::new(),
            failures_in_window: 0,
            consecutive: 0,
            mode: Mode::Closed,
            next_cooldown: cooldown,
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(at, failed)) = self.outcomes.front() {
            if now.saturating_duration_since(at) < window && self.outcomes.len() < MAX_OUTCOMES {
                break;
            }
            self.outcomes.pop_front();
            if failed {
                self.failures_in_window = self.failures_in_window.saturating_sub(1);
            }
        }
    }

    fn open(&mut self, now: Instant, config: &BreakerConfig) {
        let cooldown = self.next_cooldown;
        self.mode = Mode::Open {
            until: now + cooldown,
        };
        self.next_cooldown = cooldown
            .saturating_mul(2)
            .min(config.max_cooldown.max(config.cooldown));
        self.outcomes.clear();
        self.failures_in_window = 0;
        self.consecutive = 0;
    }

    fn close(&mut self, config: &BreakerConfig) {
        self.mode = Mode::Closed;
        self.next_cooldown = config.cooldown;
        self.outcomes.clear();
        self.failures_in_window = 0;
        self.consecutive = 0;
    }
}

/// Circuits per model or key, shared by clones.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use claude_tower::route::{BreakerConfig, CircuitBreaker, CircuitState};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::default().consecutive_failures(2));
/// for _ in 0..2 {
///     breaker.try_call("claude-opus-4-5").unwrap().failure();
/// }
/// assert!(matches!(breaker.state("claude-opus-4-5"), CircuitState::Open { .. }));
/// assert!(breaker.try_call("claude-opus-4-5").is_none()); // skipped, not sent
///
/// tokio::time::advance(Duration::from_secs(5)).await;
/// let probe = breaker.try_call("claude-opus-4-5").expect("one probe after the cooldown");
/// assert!(breaker.try_call("claude-opus-4-5").is_none()); // only one at a time
/// probe.success();
/// assert_eq!(breaker.state("claude-opus-4-5"), CircuitState::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    circuits: Arc<Mutex<HashMap<String, Circuit>>>,
    share: Option<Arc<dyn CircuitShare>>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("circuits", &self.lock().len())
            .field("share", &self.share)
            .finish()
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A breaker with `config`, every circuit closed.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            circuits: Arc::default(),
            share: None,
        }
    }

    /// Shares open circuits with other replicas (e.g. [`RedisCircuits`](crate::RedisCircuits),
    /// feature `redis`): a circuit opened on one is open on all, for its cooldown.
    #[must_use]
    pub fn shared(mut self, share: impl CircuitShare) -> Self {
        self.share = Some(Arc::new(share));
        self
    }

    /// Its configuration.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of the circuit of `key`.
    #[must_use]
    pub fn state(&self, key: &str) -> CircuitState {
        let now = Instant::now();
        match self.lock().get(key).map(|c| c.mode) {
            None | Some(Mode::Closed) if self.open_elsewhere(key) => CircuitState::Open {
                retry_in: Duration::ZERO,
            },
            None | Some(Mode::Closed) => CircuitState::Closed,
            Some(Mode::Open { until }) if until > now => CircuitState::Open {
                retry_in: until - now,
            },
            Some(Mode::Open { .. } | Mode::HalfOpen { .. }) => CircuitState::HalfOpen,
        }
    }

    /// Asks to call `key`: `None` while its circuit is open (or its one probe is in flight);
    /// otherwise a [`CallPermit`] to report the outcome with. A permit dropped without an
    /// outcome (the call was cancelled) changes nothing, and frees the probe slot.
    #[must_use]
    pub fn try_call(&self, key: &str) -> Option<CallPermit> {
        let now = Instant::now();
        let mut circuits = self.lock();
        if !circuits.contains_key(key) {
            if circuits.len() >= MAX_CIRCUITS {
                circuits.retain(|_, c| c.mode != Mode::Closed);
                if circuits.len() >= MAX_CIRCUITS {
                    // Full of open circuits: no tracking for a new key (calls go through).
                    return Some(CallPermit::untracked());
                }
            }
            circuits.insert(key.to_owned(), Circuit::new(self.config.cooldown));
        }
        let circuit = circuits.get_mut(key)?;
        let probe = match circuit.mode {
            // Open on another replica: skipped here too (that replica probes).
            Mode::Closed if self.open_elsewhere(key) => return None,
            Mode::Closed => false,
            Mode::Open { until } if until > now => return None,
            Mode::Open { .. } | Mode::HalfOpen { probing: false } => {
                circuit.mode = Mode::HalfOpen { probing: true };
                true
            }
            Mode::HalfOpen { probing: true } => return None,
        };
        Some(CallPermit {
            breaker: Some(self.clone()),
            key: key.to_owned(),
            probe,
        })
    }

    fn open_elsewhere(&self, key: &str) -> bool {
        self.share
            .as_ref()
            .is_some_and(|share| share.open_elsewhere(key))
    }

    /// Opens `circuit` and tells the other replicas.
    fn open(&self, key: &str, circuit: &mut Circuit, now: Instant) {
        let cooldown = circuit.next_cooldown;
        circuit.open(now, &self.config);
        if let Some(share) = &self.share {
            share.opened(key, cooldown);
        }
    }

    fn record(&self, key: &str, probe: bool, outcome: Option<bool>) {
        let now = Instant::now();
        let config = &self.config;
        let mut circuits = self.lock();
        let Some(circuit) = circuits.get_mut(key) else {
            return;
        };
        if probe {
            match outcome {
                Some(false) => circuit.close(config),
                Some(true) => self.open(key, circuit, now),
                // Cancelled: another probe may go.
                None => {
                    if circuit.mode == (Mode::HalfOpen { probing: true }) {
                        circuit.mode = Mode::HalfOpen { probing: false };
                    }
                }
            }
            return;
        }
        let Some(failed) = outcome else {
            return;
        };
        if circuit.mode != Mode::Closed {
            // A call admitted before the circuit opened: the probe decides now.
            return;
        }
        circuit.expire(now, config.window);
        circuit.outcomes.push_back((now, failed));
        if failed {
            circuit.failures_in_window += 1;
            circuit.consecutive += 1;
        } else {
            circuit.consecutive = 0;
        }
        let calls = u32::try_from(circuit.outcomes.len()).unwrap_or(u32::MAX);
        let rate_trips = calls >= config.minimum_calls.max(1)
            && f64::from(circuit.failures_in_window) >= config.failure_rate * f64::from(calls);
        let streak_trips =
            config.consecutive_failures > 0 && circuit.consecutive >= config.consecutive_failures;
        if failed && (rate_trips || streak_trips) {
            self.open(key, circuit, now);
        }
    }
}

/// Permission for one call through a circuit: report how it went with
/// [`success`](Self::success) or [`failure`](Self::failure).
#[derive(Debug)]
#[must_use = "report the outcome; a dropped permit counts as cancelled"]
pub struct CallPermit {
    breaker: Option<CircuitBreaker>,
    key: String,
    probe: bool,
}

impl CallPermit {
    fn untracked() -> Self {
        Self {
            breaker: None,
            key: String::new(),
            probe: false,
        }
    }

    /// Whether this call is the half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The call succeeded (or failed in a way that says nothing about the model's health).
    pub fn success(mut self) {
        self.finish(Some(false));
    }

    /// The call failed in a way that counts (see [`is_breaker_failure`](crate::is_breaker_failure)).
    pub fn failure(mut self) {
        self.finish(Some(true));
    }

    fn finish(&mut self, outcome: Option<bool>) {
        if let Some(breaker) = self.breaker.take() {
            breaker.record(&self.key, self.probe, outcome);
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        self.finish(None);
    }
}
