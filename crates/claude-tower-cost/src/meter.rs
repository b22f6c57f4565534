//! [`CostLayer`] / [`CostMeter`]: the cost of every response, in its extensions.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use claude_tower_core::MessagesService;
use claude_tower_core::end::{OnEnd, ResponseEnd, Settle};
use claude_tower_core::ext::{Attribution, CostCell, Late, Picodollars, ResponseCacheStatus};
use claude_tower_core::{Error, MessagesBody, MessagesRequest, Usage};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::ledger::CostLedger;
use crate::pricing::{Cost, Modifiers, PriceRow, PriceTable, UnknownModel, model_name};

/// The cost of a stream, in its response extensions: set at the end of the stream (or when
/// the stream is dropped). A complete message carries its [`Cost`] itself instead (no late
/// value to wait for). In both cases the total is also published as a core
/// [`CostCell`](claude_tower_core::ext::CostCell) for layers that do not depend on this crate
/// (tracing).
pub type CostHandle = Late<Cost>;

/// Meters the cost of every response; see the [crate docs](crate).
///
/// Shares its price table and (optional) [`CostLedger`] with every service it builds.
#[derive(Debug, Clone)]
pub struct CostLayer {
    table: Arc<PriceTable>,
    ledger: Option<CostLedger>,
}

impl Default for CostLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CostLayer {
    /// The shipped price table, no ledger.
    #[must_use]
    pub fn new() -> Self {
        Self {
            table: Arc::new(PriceTable::builtin()),
            ledger: None,
        }
    }

    claude_tower_core::setters! {
        /// Uses this price table.
        pub fn table(table: PriceTable) => table = Arc::new(table);
        /// Records every cost in this ledger.
        pub fn ledger(ledger: CostLedger) => ledger = Some(ledger);
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = CostMeter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CostMeter {
            inner,
            table: Arc::clone(&self.table),
            ledger: self.ledger.clone(),
        }
    }
}

/// The service of a [`CostLayer`].
#[derive(Debug, Clone)]
pub struct CostMeter<S> {
    inner: S,
    table: Arc<PriceTable>,
    ledger: Option<CostLedger>,
}

/// What the meter keeps from the request.
#[derive(Debug)]
pub(crate) struct Metering {
    pub(crate) table: Arc<PriceTable>,
    pub(crate) ledger: Option<CostLedger>,
    /// The requested model: the model table's own `&'static str` for a known id (no copy).
    pub(crate) model: Cow<'static, str>,
    pub(crate) request_modifiers: Modifiers,
    /// Read only when there is a ledger to record to.
    pub(crate) attribution: Option<Box<Attribution>>,
    /// The requested model's row, looked up once when the request is sent.
    pub(crate) row: Option<Arc<PriceRow>>,
}

impl Metering {
    pub(crate) fn new(
        table: Arc<PriceTable>,
        ledger: Option<CostLedger>,
        request: &http::Request<MessagesRequest>,
        row: Option<Arc<PriceRow>>,
        request_modifiers: Modifiers,
    ) -> Self {
        let ledger_attribution = ledger.as_ref().map(|_| Box::new(Attribution::of(request)));
        Self {
            table,
            ledger,
            model: model_name(&request.body().model),
            request_modifiers,
            attribution: ledger_attribution,
            row,
        }
    }

    /// Prices `usage` (of a response by `model`) and records it in the ledger.
    pub(crate) fn finish(&self, model: Option<&str>, usage: &Usage, cached: bool) -> Cost {
        let cost = self.price(model, usage, cached);
        if let (Some(ledger), Some(attribution)) = (&self.ledger, &self.attribution) {
            ledger.record(attribution, usage, &cost);
        }
        cost
    }

    /// Prices `usage` (of a response by `model`).
    pub(crate) fn price(&self, model: Option<&str>, usage: &Usage, cached: bool) -> Cost {
        self.price_named(model, usage, cached, true)
    }

    /// The amounts of [`price`](Self::price) only (its `model` and `priced_as` left empty): no
    /// allocation, for the budget.
    pub(crate) fn price_amounts(&self, model: Option<&str>, usage: &Usage, cached: bool) -> Cost {
        self.price_named(model, usage, cached, false)
    }

    fn price_named(&self, model: Option<&str>, usage: &Usage, cached: bool, named: bool) -> Cost {
        let requested = model.is_none_or(|m| m.is_empty() || m == self.model.as_ref());
        let row = self.row.as_deref().filter(|_| requested);
        self.price_with(model, usage, cached, |table, model, usage, modifiers| {
            // The requested model answered: its row is at hand (no second lookup).
            let (mut cost, row) = match row {
                Some(row) => (table.amounts_at(row, usage, modifiers)?, row),
                None => table.amounts(model, usage, modifiers)?,
            };
            if named {
                cost.model = model_name(model);
                cost.priced_as = Some(model_name(&row.model));
            }
            Ok(cost)
        })
    }

    fn price_with(
        &self,
        model: Option<&str>,
        usage: &Usage,
        cached: bool,
        cost: impl Fn(&PriceTable, &str, &Usage, Modifiers) -> Result<Cost, Error>,
    ) -> Cost {
        let model = model
            .filter(|m| !m.is_empty())
            .unwrap_or(self.model.as_ref());
        if cached {
            Cost::cached(model)
        } else {
            let mut modifiers = Modifiers::of(None, Some(usage));
            if !usage.extra.contains_key("speed") {
                modifiers.fast = self.request_modifiers.fast;
            }
            // The request's `inference_geo` when the usage does not say.
            modifiers.us_only |= usage.inference_geo.is_none() && self.request_modifiers.us_only;
            match cost(&self.table, model, usage, modifiers) {
                Ok(cost) => cost,
                Err(error) => {
                    // The model was checked before sending; a response naming another model
                    // is priced with the requested one.
                    tracing::warn!(target: "claude_tower::cost", %error, "pricing the response with the requested model");
                    cost(&self.table, self.model.as_ref(), usage, modifiers).unwrap_or_default()
                }
            }
        }
    }
}

impl<S> Service<http::Request<MessagesRequest>> for CostMeter<S>
where
    S: MessagesService,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let model = &request.body().model;
        let row = self.table.row_shared(model);
        if row.is_none() && self.table_refuses_unknown() {
            let error = Error::config(format!(
                "model {model:?} is not in the price table; add a row or set a fallback (nothing was sent)"
            ));
            return ResponseFuture {
                state: FutureState::Failed { error: Some(error) },
            };
        }
        let modifiers = Modifiers::of(Some(request.body()), None);
        let metering = Metering::new(
            Arc::clone(&self.table),
            self.ledger.clone(),
            &request,
            row,
            modifiers,
        );
        ResponseFuture {
            state: FutureState::Running {
                future: self.inner.call(request),
                metering: Some(metering),
            },
        }
    }
}

impl<S> CostMeter<S> {
    fn table_refuses_unknown(&self) -> bool {
        self.table.unknown_policy() == &UnknownModel::Error
    }
}

claude_tower_core::inner_service_accessors!(CostMeter<S>);

pin_project! {
    #[project = FutureProj]
    enum FutureState<F> {
        Running { #[pin] future: F, metering: Option<Metering> },
        Failed { error: Option<Error> },
    }
}

pin_project! {
    /// Response future of [`CostMeter`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: FutureState<F>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<MessagesBody>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            FutureProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
            FutureProj::Running { future, metering } => {
                let response = ready!(future.poll(cx))?;
                let metering = metering
                    .take()
                    .expect("ResponseFuture polled after completion");
                let cached = response.extensions().get::<ResponseCacheStatus>()
                    == Some(&ResponseCacheStatus::Hit);
                let (mut parts, body) = response.into_parts();
                let body = match body {
                    // Priced at once (the hot path: no hook, no late values, the cost moved
                    // in, not cloned).
                    MessagesBody::Message(message) => {
                        let cost = metering.finish(Some(&message.model), &message.usage, cached);
                        parts
                            .extensions
                            .insert(CostCell::ready(Picodollars(cost.total.picodollars())));
                        parts.extensions.insert(cost);
                        MessagesBody::Message(message)
                    }
                    stream => {
                        let meter = Meter {
                            metering,
                            cached,
                            handle: CostHandle::default(),
                            cell: CostCell::default(),
                        };
                        parts.extensions.insert(meter.handle.clone());
                        parts.extensions.insert(meter.cell.clone());
                        stream.on_end(meter).0
                    }
                };
                Poll::Ready(Ok(http::Response::from_parts(parts, body)))
            }
        }
    }
}

/// Prices the response when it ends (for a stream: its latest usage, also when it fails or
/// is dropped).
struct Meter {
    metering: Metering,
    cached: bool,
    handle: CostHandle,
    /// The total, for layers that do not know [`Cost`].
    cell: CostCell,
}

impl OnEnd for Meter {
    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        let none = Usage::default();
        let cost = self
            .metering
            .finish(end.model, end.usage.unwrap_or(&none), self.cached);
        self.cell.set(Picodollars(cost.total.picodollars()));
        self.handle.set(cost);
        Settle::done()
    }
}
