//! [`Budget`], the service of a [`BudgetLayer`](super::BudgetLayer): reserve, call, settle.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::MessagesService;
use claude_tower_core::ext::Deferred;
use claude_tower_core::layout::InputEstimate;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest};

use super::future::{After, ResponseFuture};
use super::settlement::Settlement;
use super::stats::Reserved;
use super::{BudgetLayer, Shared};
use crate::meter::Metering;
use crate::money::Usd;
use crate::store::Reservation;

claude_tower_core::layer_service!(
    /// The service of a [`BudgetLayer`](super::BudgetLayer).
    ///
    /// # Clone
    ///
    /// The call future owns the inner service (clone-and-swap), so `S: Clone`.
    BudgetLayer => Budget, shared: Shared
);

impl<S: fmt::Debug> fmt::Debug for Budget<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> tower_service::Service<http::Request<MessagesRequest>> for Budget<S>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S, S::Future>;

    // A store in memory answers in `call`: the inner service's readiness is forwarded and it
    // is called from `call`. A store across the network: always ready, and the inner
    // service's readiness is taken only after the reservation, so an inner permit never idles
    // while the store answers.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.shared.store_ready {
            self.inner.poll_ready(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let shared = &self.shared;
        let lines = shared.lines(&request);
        if lines.is_empty() {
            return if shared.store_ready {
                ResponseFuture::calling(self.inner.call(request), None)
            } else {
                ResponseFuture::ready(self.inner.clone(), request, None)
            };
        }
        // An outer layer's shared estimate, else the budget's own (the rate limiter below
        // estimates alone too: storing one costs more than a small request's estimate).
        let (worst, input_side, plan, row, modifiers) = match shared.reservation(
            request.body(),
            InputEstimate::get(&request),
            request.extensions().get::<Deferred>().is_some(),
        ) {
            Ok(reservation) => reservation,
            Err(error) => return ResponseFuture::failed(error),
        };
        let amount = worst.nanodollars_ceil();
        // The guard exists before the reserve is asked: dropped from here on, it releases.
        let settlement = Settlement::new(Arc::clone(shared), lines, amount);
        let reserved = Reserved {
            plan,
            input: input_side.nanodollars_ceil(),
            total: amount,
        };
        let answer = shared
            .store
            .reserve(&settlement.lines, settlement.id, amount, shared.lease)
            .into_ready();
        // How the response is priced (the requested model's row, looked up once).
        let metering = Metering::new(Arc::clone(&shared.table), None, &request, row, modifiers);
        match answer {
            // Admitted or refused now, no future of our own.
            Ok(answer) => match admit(shared, settlement, answer, worst) {
                Ok(settlement) => {
                    let after = After {
                        settlement,
                        metering,
                        reserved,
                    };
                    if shared.store_ready {
                        // `poll_ready` forwarded the inner readiness: call it now.
                        ResponseFuture::calling(self.inner.call(request), Some(after))
                    } else {
                        ResponseFuture::ready(self.inner.clone(), request, Some(after))
                    }
                }
                Err(error) => ResponseFuture::failed(error),
            },
            Err(pending) => {
                let shared = Arc::clone(shared);
                // A store answering later. One that claimed to answer ready gets the inner
                // service whose readiness it holds (clone-and-swap); others a fresh clone.
                let inner = if shared.store_ready {
                    let clone = self.inner.clone();
                    std::mem::replace(&mut self.inner, clone)
                } else {
                    self.inner.clone()
                };
                ResponseFuture::boxed(async move {
                    let settlement = admit(&shared, settlement, pending.await, worst)?;
                    let after = After {
                        metering,
                        settlement,
                        reserved,
                    };
                    let mut inner = inner;
                    let result = call_when_ready(&mut inner, request).await;
                    let (result, settle) = after.finish(result);
                    settle.await;
                    result
                })
            }
        }
    }
}

/// The store's answer to a reserve: the settlement to keep (granted, or a failed store with
/// `fail_open`), or the error to answer with (refused: nothing was reserved).
fn admit(
    shared: &Shared,
    mut settlement: Settlement,
    answer: Result<Reservation, Error>,
    worst: Usd,
) -> Result<Settlement, Error> {
    match answer {
        Ok(Reservation::Granted) => Ok(settlement),
        Ok(Reservation::Refused { line, balance }) => {
            // Nothing was reserved.
            settlement.done = true;
            let lines = &settlement.lines;
            let Some(line) = lines.get(line).or(lines.last()) else {
                return Err(Error::new(ErrorKind::Other, "budget store refused no line"));
            };
            Err(Error::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "{}: spent {}, reserved {}, limit {}; this request may cost up to {} (nothing was sent)",
                    line.key,
                    Usd::from_nanodollars(balance.spent),
                    Usd::from_nanodollars(balance.reserved),
                    Usd::from_nanodollars(line.limit),
                    worst
                ),
            ))
        }
        Err(error) if shared.fail_open => {
            // Sent unbudgeted; the settlement still charges what it costs (and releases a
            // reserve that may have gone through after all).
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; letting the request through (fail open)");
            Ok(settlement)
        }
        Err(error) => {
            // The settlement's drop releases a reserve that may have gone through after all.
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; refusing the request (fail closed)");
            Err(error)
        }
    }
}
