//! `claude-tower-fuzz`: a stable-Rust mutation fuzzer for the parsers and the arithmetic that
//! face untrusted input. Run it with `cargo xtask fuzz [--secs N] [--seed S]`; see README.md.
//!
//! Every case runs under `catch_unwind`: a panic, or a broken invariant, stops the run, names
//! the target and writes the input to `target/fuzz-crashes/`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use claude_tower_core::rate_limit::{RateLimitHeaders, TokenBucket};
use claude_tower_core::{
    Error, ErrorEnvelope, Message, MessageAccumulator, MessagesRequest, RETRY_AFTER_IGNORED_ABOVE,
    StreamEvent, Usage, parse_retry_after,
};
use claude_tower_cost::{Modifiers, PriceTable, Usd};
use claude_tower_transport::sse::Framer;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

/// One fuzz target: an input and a per-case number (split points, choices) → `Err` when an
/// invariant breaks.
type Target = fn(&[u8], u64, &Corpus) -> Result<(), String>;

const TARGETS: &[(&str, Target)] = &[
    ("sse-framer", sse_framer),
    ("event-decode", event_decode),
    ("accumulator", accumulator),
    ("json-roundtrip", json_roundtrip),
    ("headers", headers),
    ("arithmetic", arithmetic),
];

/// Seeds: SSE bodies and JSON documents.
struct Corpus {
    sse: Vec<Vec<u8>>,
    json: Vec<Vec<u8>>,
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let secs: u64 = value("--secs").and_then(|v| v.parse().ok()).unwrap_or(10);
    let seed: u64 = value("--seed")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let fixtures = value("--fixtures").map_or_else(
        || root.join("../shared/data/anthropic-fixtures"),
        PathBuf::from,
    );
    let corpus = Corpus::load(&fixtures);
    println!(
        "fuzz: {secs} s, seed {seed}, {} SSE and {} JSON seeds (from {})",
        corpus.sse.len(),
        corpus.json.len(),
        fixtures.display()
    );
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {l}"));
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *PANIC
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(format!("{payload}{location}"));
    }));

    let mut rng = fastrand::Rng::with_seed(seed);
    // A command-line run against the wall clock (no tokio runtime to pause here).
    #[expect(
        clippy::disallowed_methods,
        reason = "the fuzzer runs for a wall-clock budget"
    )]
    let now = std::time::Instant::now;
    let deadline = now() + Duration::from_secs(secs);
    let mut counts = vec![0u64; TARGETS.len()];
    let mut round = 0usize;
    while now() < deadline {
        for _ in 0..64 {
            let index = round % TARGETS.len();
            round += 1;
            let (name, target) = TARGETS[index];
            let input = corpus.input_for(name, &mut rng);
            let aux = rng.u64(..);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(&input, aux, &corpus)));
            counts[index] += 1;
            let failure = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(broken)) => format!("invariant broken: {broken}"),
                Err(_) => format!(
                    "panic: {}",
                    PANIC
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take()
                        .unwrap_or_default()
                ),
            };
            let dir = root.join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{seed}-{round}.bin"));
            let _ = std::fs::write(&file, &input);
            eprintln!(
                "fuzz: {name}: {failure}\n  aux {aux}, input ({} bytes) in {}\n  {}",
                input.len(),
                file.display(),
                String::from_utf8_lossy(&input[..input.len().min(400)])
            );
            return ExitCode::FAILURE;
        }
    }
    let total: u64 = counts.iter().sum();
    println!("| target | cases |\n|---|---|");
    for ((name, _), count) in TARGETS.iter().zip(&counts) {
        println!("| {name} | {count} |");
    }
    println!("fuzz: {total} cases, 0 failures (seed {seed})");
    ExitCode::SUCCESS
}

impl Corpus {
    fn load(dir: &Path) -> Self {
        let mut sse = Vec::new();
        let mut json = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if bytes.starts_with(b"event:") || bytes.windows(7).any(|w| w == b"\ndata: ") {
                    for line in bytes.split(|&b| b == b'\n') {
                        if let Some(data) = line.strip_prefix(b"data: ") {
                            json.push(data.to_vec());
                        }
                    }
                    sse.push(bytes);
                } else if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                    collect_objects(&value, &mut json);
                }
            }
        }
        // Built-in seeds, so the fuzzer works without the fixtures too.
        sse.push(BUILTIN_SSE.as_bytes().to_vec());
        for line in BUILTIN_SSE.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                json.push(data.as_bytes().to_vec());
            }
        }
        json.push(BUILTIN_REQUEST.as_bytes().to_vec());
        json.truncate(20_000);
        Self { sse, json }
    }

    fn input_for(&self, target: &str, rng: &mut fastrand::Rng) -> Vec<u8> {
        let pool = match target {
            "sse-framer" | "accumulator" => &self.sse,
            _ => &self.json,
        };
        let mut input = pool[rng.usize(..pool.len())].clone();
        let other = &self.json[rng.usize(..self.json.len())];
        mutate(&mut input, other, rng);
        input
    }
}

/// Objects inside recorded JSON that look like requests, messages, events or usage (as text).
fn collect_objects(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("model") || map.contains_key("type") || map.contains_key("usage") {
                out.push(value.to_string().into_bytes());
            }
            for v in map.values() {
                collect_objects(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_objects(v, out)),
        Value::String(text) if text.starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(text) {
                collect_objects(&inner, out);
            }
        }
        _ => {}
    }
}

const INTERESTING_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-1",
    "0",
    "-0.0",
    "1e308",
    "1e400",
    "NaN",
    "1e-400",
    "4294967296",
    "99999999999999999999999",
];

const INTERESTING_BYTES: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b":",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"null",
    b"\xEF\xBB\xBF",
    b"\xFF",
    b"event: message_start\n",
    b"data: ",
    b"\\u0000",
    b"\\ud800",
];

fn mutate(input: &mut Vec<u8>, other: &[u8], rng: &mut fastrand::Rng) {
    for _ in 0..rng.usize(1..=8) {
        let len = input.len();
        match rng.u8(0..9) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                input[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let piece = INTERESTING_BYTES[rng.usize(..INTERESTING_BYTES.len())];
                let at = rng.usize(..=len);
                input.splice(at..at, piece.iter().copied());
            }
            2 if len > 0 => {
                let start = rng.usize(..len);
                let end = (start + rng.usize(1..=64)).min(len);
                input.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.usize(..len);
                let end = (start + rng.usize(1..=256)).min(len);
                let copy = input[start..end].to_vec();
                let at = rng.usize(..=input.len());
                input.splice(at..at, copy);
            }
            4 if !other.is_empty() => {
                let start = rng.usize(..other.len());
                let end = (start + rng.usize(1..=128)).min(other.len());
                let at = rng.usize(..=len);
                let cut = (at + rng.usize(0..=32)).min(len);
                input.splice(at..cut, other[start..end].iter().copied());
            }
            5 => {
                // Swap a run of digits for an extreme number.
                let digits: Vec<usize> = input
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                if let Some(&start) = digits.get(rng.usize(..digits.len().max(1))) {
                    let mut end = start;
                    while end < input.len() && input[end].is_ascii_digit() {
                        end += 1;
                    }
                    let number = INTERESTING_NUMBERS[rng.usize(..INTERESTING_NUMBERS.len())];
                    input.splice(start..end, number.bytes());
                }
            }
            6 if len > 0 => input.truncate(rng.usize(..len)),
            7 if len > 0 => {
                let i = rng.usize(..len);
                input[i] = rng.u8(..);
            }
            _ => {}
        }
    }
}

type Frames = (Vec<(String, String)>, Option<String>);

fn drain(framer: &mut Framer, frames: &mut Vec<(String, String)>) -> Result<(), String> {
    loop {
        match framer.next_frame() {
            Ok(Some(frame)) => frames.push((frame.event.to_owned(), frame.data.to_owned())),
            Ok(None) => return Ok(()),
            Err(error) => return Err(error.kind_name()),
        }
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for Error {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

fn frame_all(pieces: &[&[u8]], limit: usize) -> Frames {
    let mut framer = Framer::with_limit(limit);
    let mut frames = Vec::new();
    for piece in pieces.iter().copied().chain([&b"\n\n"[..]]) {
        framer.push(piece);
        if let Err(error) = drain(&mut framer, &mut frames) {
            return (frames, Some(error));
        }
    }
    (frames, None)
}

/// Framing does not depend on how the bytes are chunked (with or without a small limit).
fn sse_framer(input: &[u8], aux: u64, _: &Corpus) -> Result<(), String> {
    let limit = if aux.is_multiple_of(3) {
        64
    } else {
        usize::MAX
    };
    let whole = frame_all(&[input], limit);
    let mut rng = fastrand::Rng::with_seed(aux);
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(16));
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    let chunked = frame_all(&pieces, limit);
    if whole == chunked {
        Ok(())
    } else {
        Err(format!(
            "whole {} frames ({:?}) vs chunked {} frames ({:?})",
            whole.0.len(),
            whole.1,
            chunked.0.len(),
            chunked.1
        ))
    }
}

const EVENT_NAMES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "surprise",
];

/// Decoding an event and encoding it again is stable.
fn event_decode(input: &[u8], aux: u64, _: &Corpus) -> Result<(), String> {
    let Ok(data) = std::str::from_utf8(input) else {
        return Ok(());
    };
    let name = EVENT_NAMES[usize::try_from(aux % EVENT_NAMES.len() as u64).unwrap_or(0)];
    let Ok(event) = StreamEvent::from_sse(name, data) else {
        return Ok(());
    };
    let once = serde_json::to_string(&event).map_err(|e| format!("cannot encode: {e}"))?;
    let again = StreamEvent::from_sse(event.event_name(), &once)
        .map_err(|e| format!("re-decoding {once} failed: {e}"))?;
    let twice = serde_json::to_string(&again).map_err(|e| format!("cannot encode: {e}"))?;
    if once == twice {
        Ok(())
    } else {
        Err(format!("not stable:\n  {once}\n  {twice}"))
    }
}

/// Any order of events (shuffled, repeated, dropped) accumulates without a panic.
fn accumulator(input: &[u8], aux: u64, _: &Corpus) -> Result<(), String> {
    let (frames, _) = frame_all(&[input], 1 << 20);
    let mut events: Vec<StreamEvent> = frames
        .iter()
        .filter_map(|(name, data)| StreamEvent::from_sse(name, data).ok())
        .collect();
    let mut rng = fastrand::Rng::with_seed(aux);
    for _ in 0..rng.usize(0..4) {
        if events.is_empty() {
            break;
        }
        let i = rng.usize(..events.len());
        match rng.u8(0..3) {
            0 => {
                let copy = events[i].clone();
                let at = rng.usize(..=events.len());
                events.insert(at, copy);
            }
            1 => {
                events.remove(i);
            }
            _ => {
                let j = rng.usize(..events.len());
                events.swap(i, j);
            }
        }
    }
    let mut acc = MessageAccumulator::new();
    for event in &events {
        if acc.push(event).is_err() && rng.bool() {
            break;
        }
    }
    let _ = acc.snapshot().map(Message::text);
    let _ = acc.finish();
    Ok(())
}

fn reencode<T>(value: &Value) -> Option<Result<Value, String>>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let parsed: T = serde_json::from_value(value.clone()).ok()?;
    let once = serde_json::to_value(&parsed).map_err(|e| format!("cannot encode: {e}"));
    Some(once.and_then(|once| {
        let again: T =
            serde_json::from_value(once.clone()).map_err(|e| format!("re-decoding failed: {e}"))?;
        let twice = serde_json::to_value(&again).map_err(|e| format!("cannot encode: {e}"))?;
        if once == twice {
            Ok(once)
        } else {
            Err(format!("not stable:\n  {once}\n  {twice}"))
        }
    }))
}

/// Requests, messages, usage, events and error envelopes re-encode stably, and no top-level
/// field of the input is lost.
fn json_roundtrip(input: &[u8], _aux: u64, _: &Corpus) -> Result<(), String> {
    let Ok(value) = serde_json::from_slice::<Value>(input) else {
        return Ok(());
    };
    let results = [
        ("MessagesRequest", reencode::<MessagesRequest>(&value)),
        ("Message", reencode::<Message>(&value)),
        ("Usage", reencode::<Usage>(&value)),
        ("StreamEvent", reencode::<StreamEvent>(&value)),
        ("ErrorEnvelope", reencode::<ErrorEnvelope>(&value)),
    ];
    for (name, result) in results {
        let Some(result) = result else { continue };
        let encoded = result.map_err(|e| format!("{name}: {e}"))?;
        if let (Value::Object(original), Value::Object(encoded)) = (&value, &encoded) {
            for (key, field) in original {
                if !field.is_null() && !encoded.contains_key(key) {
                    return Err(format!("{name}: field {key:?} lost"));
                }
            }
        }
    }
    Ok(())
}

const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "request-id",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-limit",
    "anthropic-ratelimit-tokens-reset",
];

/// Header values of any bytes parse without a panic, and hints stay sane.
fn headers(input: &[u8], aux: u64, _: &Corpus) -> Result<(), String> {
    let mut map = HeaderMap::new();
    for (i, piece) in input
        .split(|&b| b == b'\n')
        .take(HEADER_NAMES.len())
        .enumerate()
    {
        let offset = usize::try_from(aux % 7).unwrap_or(0);
        let name = HEADER_NAMES[(i + offset) % HEADER_NAMES.len()];
        let piece = if piece.len() > 40 && aux.is_multiple_of(2) {
            INTERESTING_NUMBERS[i % INTERESTING_NUMBERS.len()].as_bytes()
        } else {
            piece
        };
        if let Ok(value) = HeaderValue::from_bytes(piece) {
            map.append(HeaderName::from_static(name), value);
        }
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(aux % 4_000_000_000);
    if let Some(hint) = parse_retry_after(&map, now)
        && hint > RETRY_AFTER_IGNORED_ABOVE
    {
        return Err(format!("hint {hint:?} above the cap"));
    }
    let parsed = RateLimitHeaders::parse(&map, now);
    let _ = parsed.is_empty();
    let status = StatusCode::from_u16(u16::try_from(100 + aux % 900).unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = Error::from_response(status, &map, bytes::Bytes::copy_from_slice(input));
    let _ = (
        error.to_string(),
        format!("{error:?}"),
        error.is_retryable(),
    );
    if error
        .retry_after()
        .is_some_and(|r| r > RETRY_AFTER_IGNORED_ABOVE)
    {
        return Err("an error's retry_after above the cap".to_owned());
    }
    Ok(())
}

fn number(bytes: &[u8], i: usize, aux: u64) -> u64 {
    let mut word = [0u8; 8];
    for (j, b) in word.iter_mut().enumerate() {
        *b = bytes.get(i * 8 + j).copied().unwrap_or(0);
    }
    match (aux >> (i % 60)) & 3 {
        0 => u64::MAX,
        1 => u64::from_le_bytes(word),
        2 => u64::from_le_bytes(word) % 1_000_000,
        _ => u64::from(word[0]),
    }
}

/// Cost and token-bucket arithmetic on any numbers: no panic, waits bounded, costs add up.
fn arithmetic(input: &[u8], aux: u64, _: &Corpus) -> Result<(), String> {
    let n = |i| number(input, i, aux);
    let table = PriceTable::builtin();
    let models: Vec<&str> = table.rows().map(|r| r.model.as_str()).collect();
    let model = models[usize::try_from(aux % models.len() as u64).unwrap_or(0)];
    let usage: Usage = serde_json::from_value(serde_json::json!({
        "input_tokens": n(0), "output_tokens": n(1),
        "cache_creation_input_tokens": n(2), "cache_read_input_tokens": n(3),
        "cache_creation": {"ephemeral_5m_input_tokens": n(4), "ephemeral_1h_input_tokens": n(5)},
        "server_tool_use": {"web_search_requests": n(6)},
        "service_tier": if aux.is_multiple_of(2) { "batch" } else { "standard" },
    }))
    .map_err(|e| format!("usage: {e}"))?;
    let modifiers = Modifiers::of(None, Some(&usage));
    let cost = table
        .cost(model, &usage, modifiers)
        .map_err(|e| format!("cost: {e}"))?;
    let parts = [
        cost.input,
        cost.cache_write_5m,
        cost.cache_write_1h,
        cost.cache_read,
        cost.output,
        cost.web_search,
    ];
    if parts.iter().any(|p| *p > cost.total) {
        return Err(format!("a part exceeds the total: {cost:?}"));
    }
    let summed: Usd = parts.iter().copied().sum();
    if summed != cost.total {
        return Err("parts do not add up to the total".to_owned());
    }
    let _ = table.worst_case(model, n(7), n(8), n(9), modifiers);
    let _ = usage.total_input_tokens();

    let year = Duration::from_secs(366 * 86_400);
    let mut bucket = TokenBucket::full(n(10), Duration::from_millis(n(11) % 1_000_000));
    let mut now = Duration::ZERO;
    for i in 0..8 {
        now += Duration::from_millis(n(12 + i) % 100_000);
        let amount = n(20 + i);
        match (aux >> (i * 3)) & 7 {
            0 => bucket.take(f64::NAN, now),
            1 => bucket.take(amount as f64, now),
            2 => bucket.take(-(amount as f64), now),
            3 => bucket.correct(amount, now),
            4 => bucket.set_capacity(amount, now),
            5 => {
                let _ = bucket.reserve(amount, now, Duration::from_millis(amount));
            }
            _ => {
                if let Ok(wait) = bucket.wait_for(amount, now)
                    && wait > year
                {
                    return Err(format!("wait {wait:?} past a year"));
                }
            }
        }
        if bucket.until_full(now) > year {
            return Err("until_full past a year".to_owned());
        }
    }
    Ok(())
}

const BUILTIN_SSE: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-haiku-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"stop_details\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0}}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{}}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Pa\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ris\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9},\"context_management\":{\"applied_edits\":[]}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

const BUILTIN_REQUEST: &str = r#"{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}},{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3},{"name":"get","input_schema":{"type":"object"}}],"temperature":0,"metadata":{"user_id":"u"}}"#;
