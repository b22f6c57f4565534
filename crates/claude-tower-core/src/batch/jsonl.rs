//! An incremental JSONL decoder for batch results: bytes in, one [`BatchResult`] per line out,
//! holding at most one line (bounded by `max_line_bytes`) however large the stream is.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::BatchResult;
use crate::{Error, ErrorKind};

/// Default bound of one results line (a message of 300k output tokens fits).
pub const DEFAULT_MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// Decodes `bytes` (a results body) into result lines. A line longer than `max_line_bytes` is
/// a `TooLarge` error (the stream ends there); a line that does not parse is a `Decode` error
/// naming its number (the stream goes on with the next line); blank lines are skipped.
pub fn decode<S, E>(
    bytes: S,
    max_line_bytes: usize,
) -> impl Stream<Item = Result<BatchResult, Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    struct State<S> {
        bytes: S,
        buffer: BytesMut,
        /// Bytes of `buffer` already searched for a newline (a long line is scanned once).
        scanned: usize,
        line: u64,
        done: bool,
        max: usize,
    }
    let state = State {
        bytes,
        buffer: BytesMut::new(),
        scanned: 0,
        line: 0,
        done: false,
        max: max_line_bytes,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            let found = find_newline(&state.buffer[state.scanned..]).map(|i| i + state.scanned);
            state.scanned = state.buffer.len();
            if let Some(end) = found {
                let line = state.buffer.split_to(end + 1);
                state.scanned = 0;
                state.line += 1;
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some((parse(text, state.line), state));
            }
            if state.buffer.len() > state.max {
                state.buffer = BytesMut::new();
                state.scanned = 0;
                state.done = true;
                let error = Error::new(
                    ErrorKind::TooLarge,
                    format!(
                        "batch results line {} is longer than {} bytes",
                        state.line + 1,
                        state.max
                    ),
                );
                return Some((Err(error), state));
            }
            if state.done {
                if state.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                // The last line without a newline.
                let rest = std::mem::take(&mut state.buffer);
                state.scanned = 0;
                state.line += 1;
                return Some((parse(rest.chunk(), state.line), state));
            }
            match state.bytes.next().await {
                Some(Ok(chunk)) => state.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    state.done = true;
                    state.buffer = BytesMut::new();
                    state.scanned = 0;
                    let error = Error::new(
                        ErrorKind::StreamInterrupted,
                        format!("batch results broke after line {}: {error}", state.line),
                    );
                    return Some((Err(error), state));
                }
                None => state.done = true,
            }
        }
    })
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn parse(text: &[u8], line: u64) -> Result<BatchResult, Error> {
    serde_json::from_slice(text)
        .map_err(|e| Error::new(ErrorKind::Decode, format!("batch results line {line}: {e}")))
}
