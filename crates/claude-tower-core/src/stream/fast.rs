//! The fast path of [`StreamEvent::from_sse`](crate::StreamEvent::from_sse) for the events that
//! make up almost all of a stream (`content_block_delta`, `content_block_stop`, `ping`,
//! `message_stop`).
//!
//! The general deserializer goes through `serde_json::Value` to keep unknown types and fields;
//! here the JSON is read in one pass into strict shapes (`deny_unknown_fields`). Anything else
//! — an unknown field, an unknown delta type, an escaped tag, a duplicate key — makes this path
//! return `None` and the general path decides, so both always agree.

use serde::Deserialize;

use super::{
    ContentBlockDeltaEvent, ContentBlockStopEvent, Delta, EmptyEvent, InputJsonDelta,
    SignatureDelta, StreamEvent, TextDelta, ThinkingDelta,
};
use crate::content::Extra;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    index: usize,
    #[serde(borrow)]
    delta: WireDelta<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireStopEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    index: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEmptyEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

/// Parses the common events strictly; `None` means "not in the strict shape, ask the general
/// deserializer".
pub(crate) fn parse(event: &str, data: &str) -> Option<StreamEvent> {
    match event {
        "content_block_delta" => {
            if let Some(parsed) = canonical_delta(data) {
                return Some(parsed);
            }
            let wire: WireDeltaEvent<'_> = serde_json::from_str(data).ok()?;
            if wire.kind != "content_block_delta" {
                return None;
            }
            let WireDelta {
                kind,
                text,
                partial_json,
                thinking,
                signature,
            } = wire.delta;
            let delta = match (kind, text, partial_json, thinking, signature) {
                ("text_delta", Some(text), None, None, None) => Delta::Text(TextDelta {
                    text,
                    extra: Extra::new(),
                }),
                ("input_json_delta", None, Some(partial_json), None, None) => {
                    Delta::InputJson(InputJsonDelta {
                        partial_json,
                        extra: Extra::new(),
                    })
                }
                ("thinking_delta", None, None, Some(thinking), None) => {
                    Delta::Thinking(ThinkingDelta {
                        thinking,
                        extra: Extra::new(),
                    })
                }
                ("signature_delta", None, None, None, Some(signature)) => {
                    Delta::Signature(SignatureDelta {
                        signature,
                        extra: Extra::new(),
                    })
                }
                _ => return None,
            };
            Some(StreamEvent::ContentBlockDelta(ContentBlockDeltaEvent {
                index: wire.index,
                delta,
                extra: Extra::new(),
            }))
        }
        "content_block_stop" => {
            let wire: WireStopEvent<'_> = serde_json::from_str(data).ok()?;
            (wire.kind == "content_block_stop").then(|| {
                StreamEvent::ContentBlockStop(ContentBlockStopEvent {
                    index: wire.index,
                    extra: Extra::new(),
                })
            })
        }
        "ping" | "message_stop" => {
            let wire: WireEmptyEvent<'_> = serde_json::from_str(data).ok()?;
            match wire.kind {
                "ping" => Some(StreamEvent::Ping(EmptyEvent::default())),
                "message_stop" => Some(StreamEvent::MessageStop(EmptyEvent::default())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A `content_block_delta` exactly in the API's own layout,
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`
/// (also for the other three string deltas), with or without the API's whitespace padding
/// before the closing braces. Only the string value is handed to `serde_json` (which rejects
/// anything but exactly one string literal, so a different shape falls through).
fn canonical_delta(data: &str) -> Option<StreamEvent> {
    let rest = data.strip_prefix(r#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.find(',')?;
    let index = parse_index(&rest[..digits])?;
    let rest = rest[digits..].strip_prefix(r#","delta":{"type":""#)?;
    let (kind, rest) = rest.split_once('"')?;
    let field = match kind {
        "text_delta" => "text",
        "input_json_delta" => "partial_json",
        "thinking_delta" => "thinking",
        "signature_delta" => "signature",
        _ => return None,
    };
    let rest = rest
        .strip_prefix(",\"")?
        .strip_prefix(field)?
        .strip_prefix("\":")?;
    let literal = trim_json_ws(trim_json_ws(rest).strip_suffix('}')?).strip_suffix('}')?;
    let value: String = serde_json::from_str(literal).ok()?;
    let delta = match kind {
        "text_delta" => Delta::Text(TextDelta {
            text: value,
            extra: Extra::new(),
        }),
        "input_json_delta" => Delta::InputJson(InputJsonDelta {
            partial_json: value,
            extra: Extra::new(),
        }),
        "thinking_delta" => Delta::Thinking(ThinkingDelta {
            thinking: value,
            extra: Extra::new(),
        }),
        _ => Delta::Signature(SignatureDelta {
            signature: value,
            extra: Extra::new(),
        }),
    };
    Some(StreamEvent::ContentBlockDelta(ContentBlockDeltaEvent {
        index,
        delta,
        extra: Extra::new(),
    }))
}

/// A JSON non-negative integer as `usize` (no sign, no leading zero, no exponent).
fn parse_index(digits: &str) -> Option<usize> {
    let bytes = digits.as_bytes();
    if bytes.is_empty()
        || !bytes.iter().all(u8::is_ascii_digit)
        || (bytes.len() > 1 && bytes[0] == b'0')
    {
        return None;
    }
    digits.parse().ok()
}

fn trim_json_ws(text: &str) -> &str {
    text.trim_end_matches([' ', '\t', '\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::StreamEvent;

    /// The general deserializer, bypassing the fast path.
    fn general(data: &str) -> StreamEvent {
        serde_json::from_str(data).expect("general path")
    }

    /// Every layer moves each event; the rare, large events are boxed to keep this small.
    #[test]
    fn a_stream_event_is_small() {
        assert!(std::mem::size_of::<StreamEvent>() <= 96);
    }

    #[test]
    fn agrees_with_the_general_deserializer() {
        let cases = [
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\"\n"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"index":3,"delta":{"partial_json":"{\"a\":","type":"input_json_delta"},"type":"content_block_delta"}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQ"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"padded \u00e9"}      }"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"k\": [1,"} }"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for (event, data) in cases {
            if let Some(canonical) = super::canonical_delta(data) {
                assert_eq!(canonical, general(data), "{data}");
            }
            let fast = parse(event, data).unwrap_or_else(|| panic!("fast path for {data}"));
            assert_eq!(fast, general(data), "{data}");
            assert_eq!(fast, StreamEvent::from_sse(event, data).unwrap());
        }
    }

    #[test]
    fn leaves_anything_unusual_to_the_general_path() {
        let cases = [
            // unknown field on the event and on the delta: kept by the general path
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"new":1,"delta":{"type":"text_delta","text":"a"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","new":true}}"#,
            ),
            // unknown delta type, citations, a field of another delta type
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"future_delta","x":1}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","thinking":"a"}}"#,
            ),
            // event name and type disagree; escaped tag
            (
                "content_block_delta",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            ("ping", r#"{"type":"message_stop","x":1}"#),
            ("message_stop", r#"{"type":"message\u005fstop"}"#),
        ];
        for (event, data) in cases {
            assert!(parse(event, data).is_none(), "{data}");
        }
        // Layouts the canonical reader must not take (the strict or general path decides).
        for data in [
            r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","x":"b"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"x":{}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":1}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","thinking":"a"}}"#,
        ] {
            assert!(super::canonical_delta(data).is_none(), "{data}");
        }
        // ...and the general path still keeps every field of them.
        let kept = StreamEvent::from_sse("content_block_delta", cases[1].1).unwrap();
        let StreamEvent::ContentBlockDelta(delta) = kept else {
            panic!("{kept:?}")
        };
        assert_eq!(serde_json::to_value(&delta.delta).unwrap()["new"], true);
    }
}
