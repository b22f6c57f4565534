//! Admission and reconciliation of one call: reserve on the buckets, wait, send, then charge
//! the real usage (at once, or when a stream ends, fails or is dropped).
//!
//! The work is split so that a store that answers synchronously (the in-memory one) needs no
//! future of its own: [`prepare`] and [`Prepared::admit`] run in `call`, [`finish`] runs when
//! the inner future completes, and what the store must do afterwards is a list of
//! [`StoreOp`]s, run at once where the store answers ready, else awaited ([`StoreOp::run`]).

use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::MessagesService;
use claude_tower_core::ext::{Attribution, RateLimitScope};
use claude_tower_core::layout::InputEstimate;
use claude_tower_core::rate_limit::Refusal;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest, StoreFuture};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::Reconcile;
use crate::limits::{Dimension, Limits};
use crate::reservation::{PerBucket, Permits, Reservation, Sink, StoreOp};
use crate::state::{PoolSpecs, Shared};
use crate::store::{Admission, BucketSpec, RateLimitStore};

/// What a request asks of the buckets, computed before admission.
pub(crate) struct Prepared {
    pub(crate) pool: Arc<PoolSpecs>,
    pub(crate) buckets: Arc<[BucketSpec]>,
    pub(crate) dimensions: Arc<[Dimension]>,
    pub(crate) amounts: PerBucket<u64>,
    pub(crate) counts_reads: bool,
    /// The key's concurrency slots and their number.
    pub(crate) key_slots: Option<(Arc<Semaphore>, usize)>,
}

/// The buckets and amounts of a request: its pool's buckets (shared, never copied) and, with
/// per-key limits and a key, its key's.
pub(crate) fn prepare(shared: &Shared, request: &http::Request<MessagesRequest>) -> Prepared {
    // The innermost estimator: an outer layer's shared estimate, else its own (not stored).
    let input = InputEstimate::get(request).map_or_else(
        || request.body().estimate_input_tokens(),
        InputEstimate::total,
    );
    let body = request.body();
    let (pool, counts_reads) = shared.model_specs(&body.model);
    let output = shared.output_reservation(u64::from(body.max_tokens));
    let amount_of = |dimension: Dimension| match dimension {
        Dimension::Requests => 1,
        Dimension::InputTokens => input,
        Dimension::OutputTokens => output,
    };
    let mut amounts = PerBucket::new();
    for dimension in pool.dimensions.iter() {
        amounts.push(amount_of(*dimension));
    }
    let key = shared.per_key.and_then(|per_key| {
        // The credential's scope (a key pool's workspace) first, else the attribution.
        if let Some(scope) = request.extensions().get::<RateLimitScope>() {
            return Some((per_key, scope.0.clone()));
        }
        let attribution = Attribution::of(request);
        attribution
            .tenant
            .or(attribution.user)
            .map(|k| (per_key, k))
    });
    let key_slots = key.as_ref().and_then(|(per_key, key)| {
        let n = per_key.max_concurrent?;
        Some((shared.key_slots(&pool.class, key, n), n))
    });
    let (buckets, dimensions) = match key {
        // A key with token or request limits (not only a concurrency limit) has buckets too.
        Some((per_key, key)) if Dimension::ALL.iter().any(|d| d.of(&per_key).is_some()) => {
            let mut buckets = pool.buckets.to_vec();
            let mut dimensions = pool.dimensions.to_vec();
            for dimension in Dimension::ALL {
                if let Some(spec) = shared.spec(&pool.class, Some(&key), dimension, &per_key) {
                    buckets.push(spec);
                    dimensions.push(dimension);
                    amounts.push(amount_of(dimension));
                }
            }
            (Arc::from(buckets), Arc::from(dimensions))
        }
        // The common case: the pool's own buckets, shared.
        _ => (Arc::clone(&pool.buckets), Arc::clone(&pool.dimensions)),
    };
    Prepared {
        pool,
        buckets,
        dimensions,
        amounts,
        counts_reads,
        key_slots,
    }
}

/// A granted admission: how long to wait before sending, and what to do after.
pub(crate) struct Admitted {
    pub(crate) wait: Duration,
    pub(crate) after: After,
}

/// A concurrency limit a request is subject to.
struct Slots<'a> {
    pub(crate) semaphore: Option<&'a Arc<Semaphore>>,
    pub(crate) limit: usize,
    pub(crate) whose: &'static str,
}

impl Prepared {
    fn slots<'a>(
        &'a self,
        permits: &'a mut Permits,
    ) -> [(Slots<'a>, &'a mut Option<OwnedSemaphorePermit>); 2] {
        [
            (
                Slots {
                    semaphore: self.pool.slots.as_ref(),
                    limit: self.pool.limits.max_concurrent.unwrap_or(0),
                    whose: "",
                },
                &mut permits.pool,
            ),
            (
                Slots {
                    semaphore: self.key_slots.as_ref().map(|(s, _)| s),
                    limit: self.key_slots.as_ref().map_or(0, |(_, n)| *n),
                    whose: "per key: ",
                },
                &mut permits.key,
            ),
        ]
    }

    /// Takes the pool's and the key's concurrency slots if they are free now; `false` when
    /// one must be waited for.
    pub(crate) fn try_take_slots(&self, permits: &mut Permits) -> bool {
        for (slots, permit) in self.slots(permits) {
            if let (Some(semaphore), None) = (slots.semaphore, &permit) {
                match Arc::clone(semaphore).try_acquire_owned() {
                    Ok(taken) => *permit = Some(taken),
                    Err(_) => return false,
                }
            }
        }
        true
    }

    /// Waits (FIFO) for the concurrency slots not yet taken, until `deadline`.
    async fn take_slots(
        &self,
        shared: &Shared,
        permits: &mut Permits,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        for (slots, permit) in self.slots(permits) {
            let (Some(semaphore), None) = (slots.semaphore, &permit) else {
                continue;
            };
            match tokio::time::timeout_at(deadline, Arc::clone(semaphore).acquire_owned()).await {
                Ok(Ok(taken)) => *permit = Some(taken),
                // The layer never closes its semaphores.
                Ok(Err(closed)) => return Err(Error::new(ErrorKind::Other, closed.to_string())),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "rate limit for pool {}: {}concurrent requests (limit {}): no slot was freed within max_wait {:.1}s (nothing was sent)",
                            self.pool.class,
                            slots.whose,
                            slots.limit,
                            shared.max_wait.as_secs_f64()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The store's answer: ready (a store in memory) or a future to await.
    pub(crate) fn acquire(
        &self,
        shared: &Shared,
        max_wait: Duration,
    ) -> StoreFuture<Result<Admission, Error>> {
        shared.store.acquire(
            &self.buckets,
            self.amounts.as_slice(),
            &self.pool.pause_key,
            max_wait,
        )
    }

    /// Turns the store's answer into a reservation, or the error to return (nothing sent).
    pub(crate) fn admit(
        self,
        shared: &Arc<Shared>,
        admission: Result<Admission, Error>,
        permits: Permits,
    ) -> Result<Admitted, Error> {
        let (wait, reservation) = match admission {
            Ok(Admission::Granted { wait }) => (
                wait,
                Some(Reservation {
                    shared: Arc::clone(shared),
                    buckets: self.buckets,
                    dimensions: self.dimensions,
                    amounts: self.amounts,
                    counts_reads: self.counts_reads,
                    done: false,
                }),
            ),
            Ok(Admission::Refused { bucket, refusal }) => {
                let dimension = bucket.map(|i| self.dimensions[i]);
                let amount = bucket.map(|i| self.amounts.as_slice()[i]);
                let per_key = bucket.is_some_and(|i| i >= self.pool.buckets.len());
                let limits = if per_key {
                    shared.per_key.unwrap_or(self.pool.limits)
                } else {
                    self.pool.limits
                };
                if refusal == Refusal::TooLarge {
                    // A learned limit too small for this request would refuse it forever, and
                    // nothing sent means nothing corrects it: forget what was learned, so the
                    // next request is admitted on the configured limits and learns afresh.
                    shared.forget_learned(&self.pool.class);
                }
                let whose = if per_key {
                    format!("pool {}, per-key limit", self.pool.class)
                } else {
                    format!("pool {}", self.pool.class)
                };
                return Err(refusal_error(
                    &whose,
                    dimension,
                    &limits,
                    amount,
                    refusal,
                    shared.max_wait,
                ));
            }
            Err(error) if shared.fail_open => {
                tracing::warn!(target: "claude_tower::rate_limit", %error, "rate-limit store failed; letting the request through (fail open)");
                (Duration::ZERO, None)
            }
            Err(error) => {
                tracing::warn!(target: "claude_tower::rate_limit", %error, "rate-limit store failed; refusing the request (fail closed)");
                return Err(error);
            }
        };
        Ok(Admitted {
            wait,
            after: After {
                shared: Arc::clone(shared),
                pool: self.pool,
                reservation,
                permits,
            },
        })
    }
}

/// What is left to do once the request is admitted: reconcile, learn, release the permit.
/// Dropped unfinished (the call was cancelled), it gives the reservation back.
pub(crate) struct After {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pool: Arc<PoolSpecs>,
    pub(crate) reservation: Option<Reservation>,
    pub(crate) permits: Permits,
}

/// `whose`: the pool, and whether its per-key limit (not the pool's) refused.
pub(crate) fn refusal_error(
    whose: &str,
    dimension: Option<Dimension>,
    limits: &Limits,
    amount: Option<u64>,
    refusal: Refusal,
    max_wait: Duration,
) -> Error {
    let what = dimension.map_or_else(
        || "the pool is paused after a 429".to_owned(),
        |d| {
            format!(
                "{} per minute (limit {})",
                d.name(),
                d.of(limits).unwrap_or(0)
            )
        },
    );
    let requested = amount.map_or(String::new(), |a| format!(", requested {a}"));
    match refusal {
        Refusal::TooLarge => Error::new(
            ErrorKind::RateLimited,
            format!("rate limit for {whose}: {what}{requested}: a request this large can never fit (nothing was sent)"),
        ),
        Refusal::WouldWait(wait) => Error::new(
            ErrorKind::RateLimited,
            format!(
                "rate limit for {whose}: {what}{requested}: it would fit in {:.1}s, longer than max_wait {:.1}s (nothing was sent)",
                wait.as_secs_f64(),
                max_wait.as_secs_f64()
            ),
        )
        .with_retry_after(wait),
        _ => Error::new(ErrorKind::RateLimited, format!("rate limit for {whose}: {what}")),
    }
}

/// Handles the inner service's result: pauses the pool on a 429, learns from the headers,
/// reconciles (a stream when it ends). Store work goes to `sink`, in order.
pub(crate) fn finish(
    after: After,
    result: Result<http::Response<MessagesBody>, Error>,
    mut sink: Sink<'_>,
) -> Result<http::Response<MessagesBody>, Error> {
    let After {
        shared,
        pool,
        reservation,
        permits,
    } = after;
    let class = &pool.class;
    let mut sink = |op| sink.put(&shared, op);
    match result {
        Err(error) => {
            if error.status() == Some(http::StatusCode::TOO_MANY_REQUESTS) && !error.is_spend_cap()
            {
                let duration = error
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1))
                    .min(shared.max_pause);
                tracing::debug!(target: "claude_tower::rate_limit", %class, ?duration, "429 from upstream: pausing the pool");
                sink(StoreOp::Pause {
                    key: Arc::clone(&pool.pause_key),
                    duration,
                });
            }
            if let Some(headers) = error.headers() {
                shared.adapt(class, headers, &mut sink);
            }
            if let Some(reservation) = reservation {
                sink(reservation.settle(None));
            }
            drop(permits);
            Err(error)
        }
        Ok(response) => {
            shared.adapt(class, response.headers(), &mut sink);
            let (parts, body) = response.into_parts();
            let body = match body {
                MessagesBody::Message(message) => {
                    if let Some(reservation) = reservation {
                        sink(reservation.settle(Some(&message.usage)));
                    }
                    drop(permits);
                    MessagesBody::Message(message)
                }
                stream => {
                    stream
                        .on_end(Reconcile {
                            reservation,
                            permits,
                        })
                        .0
                }
            };
            Ok(http::Response::from_parts(parts, body))
        }
    }
}

/// Sends an admitted request and finishes it, awaiting the store (the path for stores that
/// answer only asynchronously, and for admissions that must wait).
pub(crate) async fn call_and_finish<S>(
    mut inner: S,
    request: http::Request<MessagesRequest>,
    wait: Duration,
    after: After,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService,
{
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let result = inner.call(request).await;
    let shared = Arc::clone(&after.shared);
    let mut ops = Vec::new();
    let result = finish(after, result, Sink::Collect(&mut ops));
    for op in ops {
        let done = op.run(&*shared.store).await;
        op.report(done);
    }
    result
}

/// Admits through the store's future, then sends and finishes.
pub(crate) async fn admit_and_call<S>(
    shared: Arc<Shared>,
    inner: S,
    request: http::Request<MessagesRequest>,
    prepared: Prepared,
    mut permits: Permits,
    asked: Option<StoreFuture<Result<Admission, Error>>>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService,
{
    let admission = match asked {
        // The slots were free and the store was asked: its answer.
        Some(pending) => pending.await,
        None => {
            // Concurrency slots first (so no tokens are held while waiting for one), then
            // the buckets, within one max_wait in all.
            let start = tokio::time::Instant::now();
            prepared
                .take_slots(&shared, &mut permits, start + shared.max_wait)
                .await?;
            let max_wait = shared.max_wait.saturating_sub(start.elapsed());
            prepared.acquire(&shared, max_wait).await
        }
    };
    let Admitted { wait, after } = prepared.admit(&shared, admission, permits)?;
    call_and_finish(inner, request, wait, after).await
}
