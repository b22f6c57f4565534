//! [`Budget`], the service of a [`BudgetLayer`](super::BudgetLayer): reserve, call, settle.

use std::fmt;
use std::sync::Arc;

use claude_tower_core::MessagesService;
use claude_tower_core::ext::ResponseCacheStatus;
use claude_tower_core::layout::InputEstimate;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest};

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

claude_tower_core::boxed_response_future! {
    /// Response future of [`Budget`]: the store I/O makes it multi-step, so it boxes an async
    /// block (one allocation per request) behind this opaque type.
    ResponseFuture
}

// Always ready: the inner service's readiness is taken only after the reservation, so an
// inner permit never idles while the budget store answers.
claude_tower_core::always_ready_service!(Budget, ResponseFuture, call);

async fn call<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService,
{
    let lines = shared.lines(&request);
    if lines.is_empty() {
        return call_when_ready(&mut inner, request).await;
    }
    // An outer layer's shared estimate, else the budget's own (the rate limiter below
    // estimates alone too: storing one costs more than a small request's estimate).
    let (worst, input_side, plan) =
        shared.reservation(request.body(), InputEstimate::get(&request))?;
    let amount = worst.nanodollars_ceil();
    // The guard exists before the reserve is awaited: cancelled from here on, it releases.
    let mut settlement = Settlement::new(Arc::clone(&shared), lines, amount);
    let lines = &settlement.lines;
    match shared
        .store
        .reserve(lines, settlement.id, amount, shared.lease)
        .await
    {
        Ok(Reservation::Granted) => {}
        Ok(Reservation::Refused { line, balance }) => {
            let Some(line) = lines.get(line).or(lines.last()) else {
                return Err(Error::new(ErrorKind::Other, "budget store refused no line"));
            };
            let error = Error::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "{}: spent {}, reserved {}, limit {}; this request may cost up to {} (nothing was sent)",
                    line.key,
                    Usd::from_nanodollars(balance.spent),
                    Usd::from_nanodollars(balance.reserved),
                    Usd::from_nanodollars(line.limit),
                    worst
                ),
            );
            // Nothing was reserved.
            settlement.done = true;
            return Err(error);
        }
        Err(error) if shared.fail_open => {
            // Sent unbudgeted; the settlement still charges what it costs (and releases a
            // reserve that may have gone through after all).
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; letting the request through (fail open)");
        }
        Err(error) => {
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; refusing the request (fail closed)");
            return Err(error);
        }
    }
    let metering = Metering::new(Arc::clone(&shared.table), None, &request);
    let reserved = Reserved {
        plan,
        input: input_side.nanodollars_ceil(),
        total: amount,
    };
    let response = match call_when_ready(&mut inner, request).await {
        Ok(response) => response,
        Err(error) => {
            settlement.start(0).await;
            return Err(error);
        }
    };
    let cached =
        response.extensions().get::<ResponseCacheStatus>() == Some(&ResponseCacheStatus::Hit);
    let (parts, body) = response.into_parts();
    let (body, settle) = body.on_end(super::body::Settle {
        settlement: Some(settlement),
        metering,
        reserved,
        shared,
        cached,
    });
    settle.await;
    Ok(http::Response::from_parts(parts, body))
}
