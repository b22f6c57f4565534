//! [`SettlingStream`]: settles a streamed response's reservation when the stream ends, fails
//! or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::{Error, EventStream, StreamEvent, Usage};
use futures_core::Stream;

use super::Shared;
use super::settlement::Settlement;
use super::stats::Reserved;
use crate::meter::Metering;

/// Settles the reservation when the stream ends (before yielding its end), fails, or is
/// dropped.
pub(super) struct SettlingStream {
    pub(super) inner: EventStream,
    pub(super) settlement: Option<Settlement>,
    pub(super) metering: Metering,
    pub(super) reserved: Reserved,
    pub(super) shared: Arc<Shared>,
    pub(super) usage: Usage,
    pub(super) model: Option<String>,
    pub(super) cached: bool,
    pub(super) settling: Option<(
        Pin<Box<dyn Future<Output = ()> + Send>>,
        Option<Result<StreamEvent, Error>>,
    )>,
}

impl Stream for SettlingStream {
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
                return Poll::Ready(last);
            }
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some(Ok(StreamEvent::MessageStart(start))) => {
                    this.usage = start.message.usage.clone();
                    this.model = Some(start.message.model.clone());
                }
                Some(Ok(StreamEvent::MessageDelta(delta))) => this.usage.apply_delta(&delta.usage),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if let Some(mut settlement) = this.settlement.take() {
                        let actual = this.shared.finish(
                            &this.reserved,
                            &this.metering,
                            this.model.as_deref(),
                            &this.usage,
                            this.cached,
                        );
                        settlement.actual = actual;
                        this.settling = Some((Box::pin(settlement.settle(actual)), item));
                        continue;
                    }
                }
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for SettlingStream {
    fn drop(&mut self) {
        if let Some(mut settlement) = self.settlement.take() {
            // Dropped mid-stream: charge what is known to have been used so far (the
            // settlement's own drop settles it in the background).
            settlement.actual = self.shared.finish(
                &self.reserved,
                &self.metering,
                self.model.as_deref(),
                &self.usage,
                self.cached,
            );
        }
    }
}
