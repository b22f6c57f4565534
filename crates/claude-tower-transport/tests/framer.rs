//! The SSE framer against the reference implementation (`eventsource-stream`) on random
//! streams: every line-end style, split anywhere, comments, multi-line data, empty data,
//! frames without data, and a last frame without its blank line.

use bytes::Bytes;
use claude_tower_transport::sse::Framer;
use futures_util::StreamExt;
use proptest::prelude::*;

/// Frames from our framer, bytes pushed in the given chunks, then the end of the stream.
fn ours(chunks: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut framer = Framer::default();
    let mut frames = Vec::new();
    let mut take = |framer: &mut Framer| {
        while let Some(frame) = framer.next_frame().expect("utf-8") {
            frames.push((frame.event.to_owned(), frame.data.to_owned()));
        }
    };
    for chunk in chunks {
        framer.push(chunk);
        take(&mut framer);
    }
    framer.push(b"\n\n");
    take(&mut framer);
    frames
}

fn reference(chunks: &[Vec<u8>]) -> Vec<(String, String)> {
    use eventsource_stream::Eventsource;
    let mut all: Vec<Result<Bytes, std::convert::Infallible>> =
        chunks.iter().map(|c| Ok(Bytes::from(c.clone()))).collect();
    all.push(Ok(Bytes::from_static(b"\n\n")));
    futures_executor_block_on(
        futures_util::stream::iter(all)
            .eventsource()
            .map(|event| {
                let event = event.expect("reference parses");
                (event.event, event.data)
            })
            .collect(),
    )
}

fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn line_end() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
}

fn line() -> impl Strategy<Value = String> {
    let value = "[a-z{}\":, é漢]{0,12}";
    prop_oneof![
        4 => value.prop_map(|v| format!("data: {v}")),
        1 => value.prop_map(|v| format!("data:{v}")),
        1 => Just("data".to_owned()),
        2 => "[a-z_]{0,10}".prop_map(|v| format!("event: {v}")),
        1 => value.prop_map(|v| format!(": {v}")),
        1 => Just("id: 7".to_owned()),
        1 => Just("retry: 100".to_owned()),
        1 => value.prop_map(|v| format!("unknown: {v}")),
        3 => Just(String::new()),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    // No BOM here: the reference panics on one (it slices `&text[1..]` inside the 3-byte
    // U+FEFF); `a_leading_bom_is_skipped` covers it.
    proptest::collection::vec((line(), line_end()), 0..24).prop_map(|lines| {
        let mut text = String::new();
        for (line, end) in lines {
            text.push_str(&line);
            text.push_str(end);
        }
        text.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn frames_like_the_reference(bytes in stream(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(bytes[start..point].to_vec());
            start = point;
        }
        chunks.push(bytes[start..].to_vec());
        let whole = reference(std::slice::from_ref(&bytes));
        prop_assert_eq!(&ours(&chunks), &whole);
        prop_assert_eq!(ours(std::slice::from_ref(&bytes)), whole);
    }
}

#[test]
fn invalid_utf8_is_a_decode_error() {
    let mut framer = Framer::default();
    framer.push(b"data: \xff\xfe\n\n");
    let error = framer.next_frame().expect_err("not UTF-8");
    assert_eq!(error.kind(), claude_tower_core::ErrorKind::Decode);
    assert!(error.to_string().contains("UTF-8"), "{error}");
}

#[test]
fn a_cr_at_the_end_of_a_chunk_pairs_with_the_next_lf() {
    let mut framer = Framer::default();
    framer.push(b"data: a\r");
    assert!(framer.next_frame().unwrap().is_none());
    framer.push(b"\n");
    // the LF belongs to the CR: no blank line yet
    assert!(framer.next_frame().unwrap().is_none());
    framer.push(b"\r\n");
    let frame = framer.next_frame().unwrap().expect("frame");
    assert_eq!((frame.event, frame.data), ("message", "a"));
}

#[test]
fn a_leading_bom_is_skipped_in_any_chunking() {
    // Only the stream's first BOM is special; a later one is part of a field name, so the
    // second frame has an unknown field and no data.
    let text = "\u{feff}event: ping\ndata: {}\n\n\u{feff}data: x\n\n";
    let bytes = text.as_bytes();
    for split in 0..=bytes.len() {
        let frames = ours(&[bytes[..split].to_vec(), bytes[split..].to_vec()]);
        assert_eq!(
            frames,
            [("ping".to_owned(), "{}".to_owned())],
            "split at {split}"
        );
    }
}
