//! Admission and reconciliation of one call: reserve on the buckets, wait, send, then charge
//! the real usage (at once, or when a stream ends, fails or is dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use claude_tower_core::ext::Attribution;
use claude_tower_core::ratelimit::Refusal;
use claude_tower_core::{
    Error, ErrorKind, EventStream, MessagesBody, MessagesRequest, StreamEvent, Usage,
};
use futures_core::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tower_service::Service;

use crate::layer::{Dimension, Limits, Shared};
use crate::store::{Admission, BucketSpec};

/// What was reserved, to reconcile later.
struct Reservation {
    shared: Arc<Shared>,
    buckets: Arc<[BucketSpec]>,
    dimensions: Arc<[Dimension]>,
    amounts: Vec<u64>,
    counts_reads: bool,
    done: bool,
}

impl Reservation {
    /// Deltas that turn the reservation into the real charge.
    fn deltas(&self, usage: Option<&Usage>) -> Vec<f64> {
        self.dimensions
            .iter()
            .zip(&self.amounts)
            .map(|(dimension, reserved)| {
                let actual = match (dimension, usage) {
                    (Dimension::Requests, _) => return 0.0,
                    (_, None) => 0,
                    (Dimension::InputTokens, Some(u)) => {
                        u.input_tokens
                            + u.cache_write_tokens()
                            + if self.counts_reads {
                                u.cache_read_tokens()
                            } else {
                                0
                            }
                    }
                    (Dimension::OutputTokens, Some(u)) => u.output_tokens,
                };
                *reserved as f64 - actual as f64
            })
            .collect()
    }

    async fn settle(mut self, usage: Option<&Usage>) {
        self.done = true;
        let deltas = self.deltas(usage);
        let store = &self.shared.store;
        let done = match store.adjust_now(&self.buckets, &deltas) {
            Some(done) => done,
            None => store.adjust(&self.buckets, &deltas).await,
        };
        if let Err(error) = done {
            tracing::warn!(target: "claude_tower::ratelimit", %error, "could not reconcile a reservation");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Cancelled before a response: give the tokens back.
        let deltas = self.deltas(None);
        let (shared, buckets) = (Arc::clone(&self.shared), Arc::clone(&self.buckets));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = shared.store.adjust(&buckets, &deltas).await;
            });
        }
    }
}

fn refusal_error(
    class: &str,
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
            format!("rate limit for pool {class}: {what}{requested}: a request this large can never fit (nothing was sent)"),
        ),
        Refusal::WouldWait(wait) => Error::new(
            ErrorKind::RateLimited,
            format!(
                "rate limit for pool {class}: {what}{requested}: it would fit in {:.1}s, longer than max_wait {:.1}s (nothing was sent)",
                wait.as_secs_f64(),
                max_wait.as_secs_f64()
            ),
        )
        .with_retry_after(wait),
        _ => Error::new(ErrorKind::RateLimited, format!("rate limit for pool {class}: {what}")),
    }
}

pub(crate) async fn admit_and_call<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        >,
{
    let model = request.body().model.clone();
    let class = (shared.classify)(&model);
    let pool = shared.pool_specs(&class);
    let limits = pool.limits;
    let key = if shared.per_key.is_some() {
        let attribution = Attribution::of(&request);
        attribution.tenant.or(attribution.user)
    } else {
        None
    };
    let input = request.body().estimate_input_tokens();
    let output = shared.output_reservation(u64::from(request.body().max_tokens));
    let amount_of = |dimension: Dimension| match dimension {
        Dimension::Requests => 1,
        Dimension::InputTokens => input,
        Dimension::OutputTokens => output,
    };
    let mut amounts: Vec<u64> = pool.dimensions.iter().map(|d| amount_of(*d)).collect();
    let (buckets, dimensions) = match (&shared.per_key, &key) {
        (Some(per_key), Some(key)) => {
            let mut buckets = pool.buckets.to_vec();
            let mut dimensions = pool.dimensions.to_vec();
            for dimension in Dimension::ALL {
                if let Some(spec) = shared.spec(&class, Some(key), dimension, per_key) {
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
    let pause_key = &pool.pause_key;
    let admission = match shared
        .store
        .acquire_now(&buckets, &amounts, pause_key, shared.max_wait)
    {
        Some(admission) => admission,
        None => {
            shared
                .store
                .acquire(&buckets, &amounts, pause_key, shared.max_wait)
                .await
        }
    };
    let reservation = match admission {
        Ok(Admission::Granted { wait }) => {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Some(Reservation {
                shared: Arc::clone(&shared),
                buckets,
                dimensions,
                amounts,
                counts_reads: (shared.counts_reads)(&model),
                done: false,
            })
        }
        Ok(Admission::Refused { bucket, refusal }) => {
            let dimension = bucket.map(|i| dimensions[i]);
            let amount = bucket.map(|i| amounts[i]);
            let bucket_limits = match bucket {
                Some(i) if buckets[i].key.contains(":key:") => shared.per_key.unwrap_or(limits),
                _ => limits,
            };
            return Err(refusal_error(
                &class,
                dimension,
                &bucket_limits,
                amount,
                refusal,
                shared.max_wait,
            ));
        }
        Err(error) if shared.fail_open => {
            tracing::warn!(target: "claude_tower::ratelimit", %error, "rate-limit store failed; letting the request through (fail open)");
            None
        }
        Err(error) => {
            tracing::warn!(target: "claude_tower::ratelimit", %error, "rate-limit store failed; refusing the request (fail closed)");
            return Err(error);
        }
    };
    let result = inner.call(request).await;
    match result {
        Err(error) => {
            if error.status() == Some(http::StatusCode::TOO_MANY_REQUESTS) && !error.is_spend_cap()
            {
                let pause = error.retry_after().unwrap_or(Duration::from_secs(1));
                tracing::debug!(target: "claude_tower::ratelimit", class, ?pause, "429 from upstream: pausing the pool");
                if let Err(store_error) = shared.store.pause(pause_key, pause).await {
                    tracing::warn!(target: "claude_tower::ratelimit", %store_error, "could not pause the pool");
                }
            }
            if let Some(headers) = error.headers() {
                shared.adapt(&class, headers).await;
            }
            if let Some(reservation) = reservation {
                reservation.settle(None).await;
            }
            Err(error)
        }
        Ok(response) => {
            shared.adapt(&class, response.headers()).await;
            let (parts, body) = response.into_parts();
            let body = match body {
                MessagesBody::Message(message) => {
                    if let Some(reservation) = reservation {
                        reservation.settle(Some(&message.usage)).await;
                    }
                    drop(permit);
                    MessagesBody::Message(message)
                }
                MessagesBody::Stream(stream) => {
                    MessagesBody::Stream(EventStream::new(Reconciling {
                        inner: stream,
                        reservation,
                        usage: None,
                        permit,
                        settling: None,
                    }))
                }
            };
            Ok(http::Response::from_parts(parts, body))
        }
    }
}

/// Reconciles the reservation when a stream ends, fails or is dropped (and holds the
/// concurrency permit until then).
struct Reconciling {
    inner: EventStream,
    reservation: Option<Reservation>,
    usage: Option<Usage>,
    permit: Option<OwnedSemaphorePermit>,
    settling: Option<(
        Pin<Box<dyn Future<Output = ()> + Send>>,
        Option<Result<StreamEvent, Error>>,
    )>,
}

impl Stream for Reconciling {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some((future, last)) = this.settling.as_mut() {
                if future.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let last = last.take();
                this.settling = None;
                this.permit = None;
                return Poll::Ready(last);
            }
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some(Ok(StreamEvent::MessageStart(start))) => {
                    this.usage = Some(start.message.usage.clone())
                }
                Some(Ok(StreamEvent::MessageDelta(delta))) => {
                    if let Some(usage) = &mut this.usage {
                        usage.apply_delta(&delta.usage);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if let Some(reservation) = this.reservation.take() {
                        let usage = this.usage.clone();
                        this.settling = Some((
                            Box::pin(async move { reservation.settle(usage.as_ref()).await }),
                            item,
                        ));
                        continue;
                    }
                    this.permit = None;
                }
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        if let Some(mut reservation) = self.reservation.take() {
            reservation.done = true;
            let deltas = reservation.deltas(self.usage.as_ref());
            let (shared, buckets) = (
                Arc::clone(&reservation.shared),
                Arc::clone(&reservation.buckets),
            );
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = shared.store.adjust(&buckets, &deltas).await;
                });
            }
        }
    }
}
