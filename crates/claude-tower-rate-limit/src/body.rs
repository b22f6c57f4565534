//! The stream wrapper that reconciles a streamed response when it ends, fails or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::{Error, EventStream, StreamEvent, Usage};
use futures_core::Stream;

use crate::reservation::{Permits, Reservation, run_now_or_spawn};

/// Reconciles the reservation when a stream ends, fails or is dropped (and holds the
/// concurrency permit until then).
pub(crate) struct Reconciling {
    pub(crate) inner: EventStream,
    pub(crate) reservation: Option<Reservation>,
    pub(crate) usage: Option<Usage>,
    pub(crate) permits: Permits,
    pub(crate) settling: Option<(
        Pin<Box<dyn Future<Output = ()> + Send>>,
        Option<Result<StreamEvent, Error>>,
    )>,
}

impl Reconciling {
    pub(crate) fn new(
        inner: EventStream,
        reservation: Option<Reservation>,
        permits: Permits,
    ) -> Self {
        Self {
            inner,
            reservation,
            usage: None,
            permits,
            settling: None,
        }
    }
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
                this.permits = Permits::default();
                return Poll::Ready(last);
            }
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some(Ok(StreamEvent::MessageStart(start))) => {
                    this.usage = Some(start.message.usage.clone());
                }
                Some(Ok(StreamEvent::MessageDelta(delta))) => {
                    if let Some(usage) = &mut this.usage {
                        usage.apply_delta(&delta.usage);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if let Some(reservation) = this.reservation.take() {
                        let shared = Arc::clone(&reservation.shared);
                        let op = reservation.settle(this.usage.as_ref());
                        if let Some(done) = op.run_now(&*shared.store) {
                            op.report(done);
                        } else {
                            this.settling = Some((
                                Box::pin(async move {
                                    let done = op.run(&*shared.store).await;
                                    op.report(done);
                                }),
                                item,
                            ));
                            continue;
                        }
                    }
                    this.permits = Permits::default();
                }
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let shared = Arc::clone(&reservation.shared);
            let op = reservation.settle(self.usage.as_ref());
            run_now_or_spawn(&shared, op);
        }
    }
}
