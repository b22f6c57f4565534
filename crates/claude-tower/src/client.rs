//! [`Client`]: an SDK-like front over any claude-tower service.

use std::fmt;

use claude_tower_core::{
    Delta, Error, EventStream, Message, MessageAccumulator, MessagesBody, MessagesRequest,
    StreamEvent,
};
use futures_util::StreamExt;
use tower::{Service, ServiceExt};

/// A small high-level client over any service of the stack, so the first lines of a program
/// read like the official SDKs':
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), claude_tower::Error> {
/// use claude_tower::{Client, MessagesRequest};
/// use claude_tower_mock::MockClaude;
///
/// let client = Client::new(MockClaude::new()); // or a full stack over the transport
/// let message = client.messages().create(MessagesRequest::new("claude-haiku-4-5", 256).user("Hello")).await?;
/// println!("{}", message.text());
///
/// let mut stream = client.messages().stream(MessagesRequest::new("claude-haiku-4-5", 256).user("Hi")).await?;
/// while let Some(text) = stream.next_text().await? {
///     print!("{text}");
/// }
/// let final_message = stream.into_message()?;
/// assert!(final_message.usage.output_tokens > 0);
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

    /// The Messages API.
    pub fn messages(&self) -> Messages<'_, S> {
        Messages { client: self }
    }
}

/// `client.messages()`.
#[derive(Debug)]
pub struct Messages<'a, S> {
    client: &'a Client<S>,
}

impl<S> Messages<'_, S>
where
    S: Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        > + Clone,
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
        let response = self
            .client
            .service
            .clone()
            .oneshot(request.into_http())
            .await?;
        let (parts, body) = response.into_parts();
        Ok((body.into_message().await?, parts.extensions))
    }

    /// Sends a streaming request (`stream: true` is set) and returns a [`TextStream`].
    ///
    /// # Errors
    /// The stack's error before the stream starts.
    pub async fn stream(&self, request: MessagesRequest) -> Result<TextStream, Error> {
        let response = self
            .client
            .service
            .clone()
            .oneshot(request.stream(true).into_http())
            .await?;
        let (parts, body) = response.into_parts();
        Ok(TextStream {
            events: body.into_stream(),
            accumulator: MessageAccumulator::new(),
            extensions: parts.extensions,
        })
    }
}

/// A streamed reply: its text as it arrives, then the final message.
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

impl TextStream {
    /// The next piece of text, or `None` at the end of the stream.
    ///
    /// # Errors
    /// A stream error (e.g. `StreamInterrupted` with the partial message).
    pub async fn next_text(&mut self) -> Result<Option<String>, Error> {
        while let Some(event) = self.events.next().await {
            let event = event?;
            self.accumulator.push(&event)?;
            if let StreamEvent::ContentBlockDelta(delta) = &event
                && let Delta::Text(text) = &delta.delta
            {
                return Ok(Some(text.text.clone()));
            }
        }
        Ok(None)
    }

    /// The response extensions.
    #[must_use]
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
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
