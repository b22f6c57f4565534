//! [`MessagesBody`]: the body of every response in a claude-tower stack.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;

use crate::accumulate::MessageAccumulator;
use crate::error::Error;
use crate::request::MessagesRequest;
use crate::response::Message;
use crate::stream::StreamEvent;

/// A `Send` stream of typed events; ends when the body ends or after the first error.
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent, Error>> + Send + 'static>>,
}

impl EventStream {
    /// Wraps any stream of events.
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<StreamEvent, Error>> + Send + 'static,
    {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// A stream that yields the given items.
    #[must_use]
    pub fn from_events(events: Vec<StreamEvent>) -> Self {
        Self::new(futures_util::stream::iter(events.into_iter().map(Ok)))
    }

    /// Reads the stream to its end and returns the accumulated message.
    ///
    /// # Errors
    /// The first error the stream yields (with the partial message attached, when there is
    /// one), or [`ErrorKind::StreamInterrupted`](crate::ErrorKind::StreamInterrupted) if it
    /// ended before `message_stop`.
    pub async fn collect_message(mut self) -> Result<Message, Error> {
        let mut acc = MessageAccumulator::new();
        while let Some(item) = self.next().await {
            let pushed = item.and_then(|event| acc.push(&event));
            if let Err(error) = pushed {
                return Err(
                    match (error.partial_message().is_none(), acc.into_partial()) {
                        (true, Some(partial)) => error.with_partial_message(partial),
                        _ => error,
                    },
                );
            }
        }
        if !acc.is_complete() {
            let error = Error::stream_interrupted("stream ended before `message_stop`");
            return Err(match acc.into_partial() {
                Some(partial) => error.with_partial_message(partial),
                None => error,
            });
        }
        acc.finish()
    }
}

impl Stream for EventStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// The response body of a Messages call: a complete [`Message`] (non-streaming requests) or
/// an [`EventStream`] (`stream: true`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::{ContentBlock, Message, MessagesBody};
///
/// let mut message = Message::new("msg_1", "claude-haiku-4-5");
/// message.content.push(ContentBlock::text("Hi"));
/// // A complete message can be consumed as a stream, and a stream as a message.
/// let events = MessagesBody::from(message.clone()).into_stream();
/// let rebuilt = MessagesBody::Stream(events).into_message().await.unwrap();
/// assert_eq!(rebuilt, message);
/// # }
/// ```
#[derive(Debug)]
pub enum MessagesBody {
    /// A complete message.
    Message(Box<Message>),
    /// A stream of events.
    Stream(EventStream),
}

impl MessagesBody {
    /// Whether this is a stream.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        matches!(self, Self::Stream(_))
    }

    /// The complete message, if this is one.
    #[must_use]
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Self::Message(message) => Some(message),
            Self::Stream(_) => None,
        }
    }

    /// The message: returned as is, or accumulated from the stream.
    ///
    /// # Errors
    /// See [`EventStream::collect_message`].
    pub async fn into_message(self) -> Result<Message, Error> {
        match self {
            Self::Message(message) => Ok(*message),
            Self::Stream(stream) => stream.collect_message().await,
        }
    }

    /// The events: passed through, or synthesized from a complete message (as the API would
    /// have streamed it, see [`Message::to_events`]).
    #[must_use]
    pub fn into_stream(self) -> EventStream {
        match self {
            Self::Message(message) => EventStream::from_events(message.to_events(64)),
            Self::Stream(stream) => stream,
        }
    }
}

impl From<Message> for MessagesBody {
    fn from(message: Message) -> Self {
        Self::Message(Box::new(message))
    }
}

impl From<EventStream> for MessagesBody {
    fn from(stream: EventStream) -> Self {
        Self::Stream(stream)
    }
}

pin_project_lite::pin_project! {
    /// Enforces the stream contract on raw events from the wire: an `error` event becomes an
    /// `Err` (mapped like an HTTP error of that type) and ends the stream, any `Err` ends the
    /// stream, and an end before `message_stop` yields a
    /// [`ErrorKind::StreamInterrupted`](crate::ErrorKind::StreamInterrupted) error.
    struct Checked<S> {
        #[pin]
        inner: S,
        request_id: Option<String>,
        stopped: bool,
        done: bool,
    }
}

impl<S> Stream for Checked<S>
where
    S: Stream<Item = Result<StreamEvent, Error>>,
{
    type Item = Result<StreamEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let item = match this.inner.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let with_id = |error: Error| match this.request_id.as_ref() {
            Some(id) if error.request_id().is_none() => error.with_request_id(id.clone()),
            _ => error,
        };
        Poll::Ready(Some(match item {
            None if *this.stopped => {
                *this.done = true;
                return Poll::Ready(None);
            }
            None => {
                *this.done = true;
                Err(with_id(Error::stream_interrupted(
                    "the stream ended before `message_stop` (connection closed)",
                )))
            }
            Some(Ok(StreamEvent::Error(event))) => {
                *this.done = true;
                Err(with_id(Error::from_stream_error(&event.error)))
            }
            Some(Ok(event)) => {
                if matches!(event, StreamEvent::MessageStop(_)) {
                    *this.stopped = true;
                }
                Ok(event)
            }
            Some(Err(error)) => {
                *this.done = true;
                Err(with_id(error))
            }
        }))
    }
}

impl EventStream {
    /// Wraps raw events as read from the wire and enforces the stream contract: an `error`
    /// event becomes an `Err` with the error's kind (e.g.
    /// [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded)) and ends the stream; any
    /// `Err` ends it; events after `message_stop` (unknown ones, pings) still pass; an end
    /// before `message_stop`
    /// yields [`ErrorKind::StreamInterrupted`](crate::ErrorKind::StreamInterrupted). Errors
    /// get `request_id` when they have none.
    pub fn from_wire<S>(stream: S, request_id: Option<String>) -> Self
    where
        S: Stream<Item = Result<StreamEvent, Error>> + Send + 'static,
    {
        Self::new(Checked {
            inner: stream,
            request_id,
            stopped: false,
            done: false,
        })
    }
}

/// A tower service that answers Messages API requests — what every claude-tower layer
/// wraps, and what a stack of them is. Implemented for every such `Service`; write
/// `S: MessagesService` instead of spelling out the request, response and error types.
pub trait MessagesService:
    tower::Service<
        http::Request<MessagesRequest>,
        Response = http::Response<MessagesBody>,
        Error = Error,
    >
{
}

impl<S> MessagesService for S where
    S: tower::Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        >
{
}

/// The boxed future of a Messages call, for layers whose call is multi-step (store I/O,
/// waits). Layers wrap it in their own named, opaque `ResponseFuture` with
/// [`boxed_response_future!`](crate::boxed_response_future), so the box can go later without
/// an API break.
pub type BoxResponseFuture = Pin<
    Box<
        dyn std::future::Future<Output = Result<http::Response<MessagesBody>, Error>>
            + Send
            + 'static,
    >,
>;

/// Defines a layer's named, opaque response future around a [`BoxResponseFuture`] (axum's
/// `opaque_future!` idea): a struct with `Debug`, `Future` and a crate-private `new`.
#[macro_export]
macro_rules! boxed_response_future {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name {
            inner: $crate::BoxResponseFuture,
        }

        impl $name {
            #[allow(dead_code)]
            pub(crate) fn new(
                future: impl ::std::future::Future<
                        Output = ::std::result::Result<::http::Response<$crate::MessagesBody>, $crate::Error>,
                    > + Send
                    + 'static,
            ) -> Self {
                Self { inner: ::std::boxed::Box::pin(future) }
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl ::std::future::Future for $name {
            type Output = ::std::result::Result<::http::Response<$crate::MessagesBody>, $crate::Error>;

            fn poll(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Self::Output> {
                self.inner.as_mut().poll(cx)
            }
        }
    };
}

/// Gives a layer's service (a struct with an `inner` field) the tower accessors `get_ref`,
/// `get_mut` and `into_inner`, so every claude-tower service has the same skeleton.
#[macro_export]
macro_rules! inner_service_accessors {
    ($service:ident < S $(, $param:ident)* >) => {
        impl<S $(, $param)*> $service<S $(, $param)*> {
            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Unwraps the inner service.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

/// The `Service` impl of a layer whose call is one async block (store I/O, summaries): always
/// ready — the inner service's readiness is taken inside the call, just before it is called,
/// so an inner permit never idles while the layer does its own work (the tower pattern: a
/// clone of the inner service moves into the future) — and a call that boxes the future of
/// `$call(shared, inner, request)` (an `async fn`) into the layer's [`boxed_response_future!`].
///
/// The service is a struct with fields `inner` and `shared` (an `Arc`).
#[macro_export]
macro_rules! always_ready_service {
    // The future is a plain [`BoxResponseFuture`].
    ($service:ident, boxed, $call:path) => {
        $crate::always_ready_service!(@impl $service, $crate::BoxResponseFuture, ::std::boxed::Box::pin, $call);
    };
    ($service:ident, $future:ident, $call:path) => {
        $crate::always_ready_service!(@impl $service, $future, $future::new, $call);
    };
    (@impl $service:ident, $future:ty, $wrap:path, $call:path) => {
        impl<S>
            $crate::__macro_support::Service<
                $crate::__macro_support::http::Request<$crate::MessagesRequest>,
            > for $service<S>
        where
            S: $crate::MessagesService + Clone + Send + 'static,
            S::Future: Send,
        {
            type Response = $crate::__macro_support::http::Response<$crate::MessagesBody>;
            type Error = $crate::Error;
            type Future = $future;

            fn poll_ready(
                &mut self,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), $crate::Error>> {
                ::std::task::Poll::Ready(Ok(()))
            }

            fn call(
                &mut self,
                request: $crate::__macro_support::http::Request<$crate::MessagesRequest>,
            ) -> Self::Future {
                $wrap($call(
                    ::std::sync::Arc::clone(&self.shared),
                    self.inner.clone(),
                    request,
                ))
            }
        }
    };
}

/// The skeleton every layer with one piece of shared state has: the service struct
/// (`inner` plus an `Arc` of the layer's state, `Clone`), its [`Layer`](tower::Layer) impl
/// (each service shares the layer's state) and the tower accessors
/// ([`inner_service_accessors!`]).
///
/// `layer_service!(#[derive(Debug)] /** docs */ PromptCacheLayer => PromptCache, shared: Shared)`
/// expects `PromptCacheLayer` to have a field `shared: Arc<Shared>` visible here.
#[macro_export]
macro_rules! layer_service {
    ($(#[$meta:meta])* $layer:ident => $service:ident, $field:ident: $state:ty) => {
        impl<S> $crate::__macro_support::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> $service<S> {
                $service {
                    inner,
                    $field: ::std::sync::Arc::clone(&self.$field),
                }
            }
        }

        $(#[$meta])*
        #[derive(Clone)]
        pub struct $service<S> {
            pub(crate) inner: S,
            pub(crate) $field: ::std::sync::Arc<$state>,
        }

        $crate::inner_service_accessors!($service<S>);
    };
}
