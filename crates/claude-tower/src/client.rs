//! [`Client`]: an SDK-like front over any claude-tower service, and [`ClaudeService`], the
//! whole stack behind one cloneable type.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use claude_tower_core::MessagesService;
use claude_tower_core::ext::Attribution;
use claude_tower_core::{
    Delta, Error, EventStream, Message, MessageAccumulator, MessagesBody, MessagesRequest,
    StreamEvent,
};
use futures_util::{Stream, StreamExt};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// Any stack, boxed: one nameable, `Clone + Send + Sync + 'static` type to keep in a struct or
/// in axum state (see [`Client::boxed`]). Boxing costs one allocation per call.
pub type ClaudeService =
    BoxCloneSyncService<http::Request<MessagesRequest>, http::Response<MessagesBody>, Error>;

/// A small high-level client over any service of the stack, so the first lines of a program
/// read like the official SDKs':
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), claude_tower::Error> {
/// # #[cfg(feature = "mock")] {
/// use claude_tower::ext::Attribution;
/// use claude_tower::mock::MockClaude;
/// use claude_tower::{Client, MessagesRequest};
///
/// let client = Client::new(MockClaude::new()); // or a full stack over the transport
/// let message = client.messages().create(MessagesRequest::new("claude-haiku-4-5", 256).user("Hello")).await?;
/// println!("{}", message.text());
///
/// // Per call: who it is for (budgets, ledger, per-user limits), never sent upstream.
/// let mut stream = client
///     .messages()
///     .attribution(Attribution::tenant("acme").with_user("u-42"))
///     .stream(MessagesRequest::new("claude-haiku-4-5", 256).user("Hi"))
///     .await?;
/// while let Some(text) = stream.next_text().await? {
///     print!("{text}");
/// }
/// let final_message = stream.into_message()?;
/// assert!(final_message.usage.output_tokens > 0);
/// # }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client<S> {
    service: S,
}

impl<S> Client<S> {
    /// A client over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// The Messages API. Per-call settings ([`Messages::attribution`],
    /// [`Messages::extension`], [`Messages::header`]) go on what this returns.
    pub fn messages(&self) -> Messages<'_, S> {
        Messages {
            client: self,
            extensions: http::Extensions::new(),
            headers: http::HeaderMap::new(),
        }
    }

    /// The service this client calls.
    pub fn service(&self) -> &S {
        &self.service
    }
}

impl Client<ClaudeService> {
    /// A client over `stack`, boxed into [`ClaudeService`]: `Client<ClaudeService>` is one
    /// concrete, cloneable, `Send + Sync` type, whatever the layers.
    ///
    /// ```
    /// # #[cfg(feature = "mock")] {
    /// use claude_tower::mock::MockClaude;
    /// use claude_tower::prelude::*;
    ///
    /// #[derive(Clone)]
    /// struct AppState {
    ///     claude: Client<ClaudeService>,
    /// }
    ///
    /// let stack = ServiceBuilder::new()
    ///     .claude_retry(RetryLayer::new())
    ///     .service(MockClaude::new());
    /// let state = AppState { claude: Client::boxed(stack) };
    /// # let _ = state.clone();
    /// # }
    /// ```
    pub fn boxed<S>(stack: S) -> Self
    where
        S: MessagesService + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Self::new(BoxCloneSyncService::new(stack))
    }
}

/// `client.messages()`: per-call settings, then `create` or `stream`.
#[derive(Debug)]
pub struct Messages<'a, S> {
    client: &'a Client<S>,
    extensions: http::Extensions,
    headers: http::HeaderMap,
}

impl<S> Messages<'_, S> {
    /// Who this call is for ([`Attribution`]: tenant, user, feature): read by the budget, the
    /// cost ledger and per-key rate limits; unlike `metadata.user_id` it is never sent
    /// upstream.
    #[must_use]
    pub fn attribution(self, attribution: Attribution) -> Self {
        self.extension(attribution)
    }

    /// Any request extension for the layers (e.g. a response-cache bypass, an
    /// `opentelemetry::Context`); the extension table of the facade docs lists them.
    #[must_use]
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// A request header sent with this call (e.g. `anthropic-beta`); appended to any
    /// header of the same name set before.
    #[must_use]
    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    fn request(&self, body: MessagesRequest) -> http::Request<MessagesRequest> {
        let mut request = body.into_http();
        *request.extensions_mut() = self.extensions.clone();
        request.headers_mut().extend(self.headers.clone());
        request
    }
}

impl<S> Messages<'_, S>
where
    S: MessagesService + Clone,
{
    /// Sends a request and returns the complete message (a streamed reply is accumulated).
    ///
    /// # Errors
    /// The stack's error.
    pub async fn create(&self, request: MessagesRequest) -> Result<Message, Error> {
        Ok(self.create_with_response(request).await?.0)
    }

    /// Like [`create`](Self::create), also returning the response extensions (usage, cost,
    /// cache report, attempts, trim report put there by the layers).
    ///
    /// # Errors
    /// The stack's error.
    pub async fn create_with_response(
        &self,
        request: MessagesRequest,
    ) -> Result<(Message, http::Extensions), Error> {
        let response = self.send(request).await?;
        let (parts, body) = response.into_parts();
        Ok((body.into_message().await?, parts.extensions))
    }

    /// Sends a streaming request (`stream: true` is set) and returns its text as a
    /// [`TextStream`] (a `Stream` of text pieces, then the final message).
    ///
    /// # Errors
    /// The stack's error before the stream starts.
    pub async fn stream(&self, request: MessagesRequest) -> Result<TextStream, Error> {
        let (events, extensions) = self.stream_events(request).await?;
        Ok(TextStream {
            events,
            accumulator: MessageAccumulator::new(),
            extensions,
        })
    }

    /// Sends a streaming request and returns the raw server-sent events (an
    /// [`EventStream`], a `Stream` of [`StreamEvent`]s) with the response extensions: what
    /// a proxy or a browser relay forwards, each event re-encoded with
    /// [`StreamEvent::to_sse`].
    ///
    /// # Errors
    /// The stack's error before the stream starts.
    pub async fn stream_events(
        &self,
        request: MessagesRequest,
    ) -> Result<(EventStream, http::Extensions), Error> {
        let response = self.send(request.stream(true)).await?;
        let (parts, body) = response.into_parts();
        Ok((body.into_stream(), parts.extensions))
    }

    async fn send(&self, body: MessagesRequest) -> Result<http::Response<MessagesBody>, Error> {
        let request = self.request(body);
        self.client.service.clone().oneshot(request).await
    }
}

/// A streamed reply: a `Stream` of its text as it arrives (or [`next_text`](Self::next_text)),
/// then the final message with [`into_message`](Self::into_message).
pub struct TextStream {
    events: EventStream,
    accumulator: MessageAccumulator,
    extensions: http::Extensions,
}

impl fmt::Debug for TextStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextStream")
            .field("events", &self.accumulator.event_count())
            .finish_non_exhaustive()
    }
}

impl Stream for TextStream {
    type Item = Result<String, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let event = match this.events.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(event))) => event,
            };
            if let Err(error) = this.accumulator.push(&event) {
                return Poll::Ready(Some(Err(error)));
            }
            if let StreamEvent::ContentBlockDelta(delta) = event
                && let Delta::Text(text) = delta.delta
            {
                return Poll::Ready(Some(Ok(text.text)));
            }
        }
    }
}

impl TextStream {
    /// The next piece of text, or `None` at the end of the stream.
    ///
    /// # Errors
    /// A stream error (e.g. `StreamInterrupted` with the partial message).
    pub async fn next_text(&mut self) -> Result<Option<String>, Error> {
        self.next().await.transpose()
    }

    /// The response extensions.
    #[must_use]
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// The message so far (complete once the text ran out).
    #[must_use]
    pub fn snapshot(&self) -> Option<&Message> {
        self.accumulator.snapshot()
    }

    /// The final message (call after the text ran out).
    ///
    /// # Errors
    /// `StreamInterrupted` if the stream did not complete.
    pub fn into_message(self) -> Result<Message, Error> {
        if !self.accumulator.is_complete() {
            return Err(Error::stream_interrupted("the stream has not completed"));
        }
        self.accumulator.finish()
    }
}
