//! [`HostileServer`]: a raw HTTP/1.1 server on `127.0.0.1` that answers with whatever bytes
//! it is told to — malformed, endless, trickling, flooding, reset or redirecting — for tests
//! that treat the upstream as an adversary.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::mock::hostile::{HostileServer, Reply};
//!
//! // An endless JSON body.
//! let server = HostileServer::start(vec![Reply::flood(
//!     Reply::head(200, &[("content-type", "application/json")]),
//!     b"[[[[[[[[".to_vec(),
//! )])
//! .await;
//! println!("{}", server.base_url());
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any one reply keeps sending (a flood or trickle stops by itself then, if the
/// client has not hung up first).
pub const MAX_REPLY_DURATION: Duration = Duration::from_secs(60);

/// What the server does with one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Reply {
    /// Sends these bytes, then closes the connection.
    Bytes(Vec<u8>),
    /// Sends `head`, then `chunk` after every `every`, until the client hangs up (or
    /// [`MAX_REPLY_DURATION`]).
    Trickle {
        /// Status line, headers and the blank line (see [`Reply::head`]).
        head: Vec<u8>,
        /// Sent repeatedly.
        chunk: Vec<u8>,
        /// Pause between chunks.
        every: Duration,
    },
    /// Sends `head`, then `chunk` as fast as the client reads, until it hangs up (or
    /// [`MAX_REPLY_DURATION`]).
    Flood {
        /// Status line, headers and the blank line.
        head: Vec<u8>,
        /// Sent repeatedly.
        chunk: Vec<u8>,
    },
    /// Closes the connection without answering.
    Reset,
}

impl Reply {
    /// A response head without a length (the body runs until the connection closes):
    /// `HTTP/1.1 {status}`, the headers, `connection: close`, a blank line.
    #[must_use]
    pub fn head(status: u16, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {status} Hostile\r\nconnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// A complete response: head, then `body`, then the connection closes.
    #[must_use]
    pub fn complete(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Self {
        let mut bytes = Self::head(status, headers);
        bytes.extend_from_slice(body.as_ref());
        Self::Bytes(bytes)
    }

    /// An event stream: `text/event-stream` head, then these SSE frames, then close.
    #[must_use]
    pub fn sse(frames: &str) -> Self {
        Self::complete(200, &[("content-type", "text/event-stream")], frames)
    }

    /// `head` then `chunk` forever, as fast as possible.
    #[must_use]
    pub fn flood(head: Vec<u8>, chunk: Vec<u8>) -> Self {
        Self::Flood { head, chunk }
    }

    /// `head` then `chunk` every `every`, forever.
    #[must_use]
    pub fn trickle(head: Vec<u8>, chunk: Vec<u8>, every: Duration) -> Self {
        Self::Trickle { head, chunk, every }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The request line and headers, as text (header names as sent).
    pub head: String,
}

impl Received {
    /// The value of a header (case-insensitive name), if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A raw HTTP/1.1 server on a free `127.0.0.1` port; request `i` gets `replies[i]` (the last
/// reply repeats). Stops when dropped.
#[derive(Debug)]
pub struct HostileServer {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    /// Starts the server.
    ///
    /// # Panics
    /// When no loopback port can be bound, or `replies` is empty.
    pub async fn start(replies: Vec<Reply>) -> Self {
        assert!(
            !replies.is_empty(),
            "a hostile server needs at least one reply"
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let port = listener.local_addr().expect("local address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let replies = Arc::new(replies);
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((stream, _)) = listener.accept().await {
                let reply = replies[next.min(replies.len() - 1)].clone();
                next += 1;
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(MAX_REPLY_DURATION, serve(stream, reply, log)).await;
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests received so far.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and a `content-length` body, at most 16 MiB), then replies.
async fn serve(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    const MAX_REQUEST: usize = 16 << 20;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_REQUEST {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let received = Received { head };
    let length = received
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < head_end + 4 + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(received);
    match reply {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Reset => drop(stream),
        Reply::Flood { head, chunk } => {
            if stream.write_all(&head).await.is_ok() {
                while stream.write_all(&chunk).await.is_ok() {}
            }
        }
        Reply::Trickle { head, chunk, every } => {
            if stream.write_all(&head).await.is_ok() {
                loop {
                    tokio::time::sleep(every).await;
                    if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
