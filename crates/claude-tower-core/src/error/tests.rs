//! Unit tests of `error`.

use super::*;
use http::HeaderValue;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    map
}

#[test]
fn spend_limits_are_terminal_and_ramp_limits_are_retried() {
    let error = |code: &str, retry_after: Option<&str>| {
        let mut h = headers(&[]);
        if let Some(r) = retry_after {
            h.insert("retry-after", HeaderValue::from_str(r).unwrap());
        }
        let body = format!(
            r#"{{"type":"error","error":{{"type":"rate_limit_error","message":"m","details":{{"error_code":"{code}"}}}}}}"#
        );
        Error::from_response(StatusCode::TOO_MANY_REQUESTS, &h, Bytes::from(body))
    };
    for code in [
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
    ] {
        let e = error(code, None);
        assert!(e.is_spend_cap() && !e.is_retryable(), "{code}");
        assert_eq!(e.error_code(), Some(code));
    }
    let ramp = error("ramp_limit_exceeded", Some("3"));
    assert!(!ramp.is_spend_cap() && ramp.is_retryable());
    assert_eq!(ramp.retry_after(), Some(Duration::from_secs(3)));
}

#[test]
fn spend_cap_is_rate_limited_but_not_retryable() {
    let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"cap","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_1"}"#;
    let e = Error::from_response(
        StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        body.into(),
    );
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_spend_cap());
    assert!(!e.is_retryable());
    assert_eq!(e.request_id(), Some("req_1"));
}

#[test]
fn should_retry_header_overrides_status() {
    let h = headers(&[("x-should-retry", "true")]);
    let e = Error::from_response(StatusCode::BAD_REQUEST, &h, Bytes::new());
    assert!(e.is_retryable());
    let h = headers(&[("x-should-retry", "false")]);
    let e = Error::from_response(StatusCode::TOO_MANY_REQUESTS, &h, Bytes::new());
    assert!(!e.is_retryable());
}

#[test]
fn non_json_body_keeps_text() {
    let e = Error::from_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &HeaderMap::new(),
        "<html>too large</html>".into(),
    );
    assert_eq!(e.kind(), ErrorKind::Api);
    assert_eq!(e.status(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    assert!(e.message().contains("too large"));
    assert!(!e.is_retryable());
}

#[test]
fn box_error_roundtrip_and_tower_elapsed() {
    let e: BoxError = Box::new(Error::invalid_request("nope"));
    assert_eq!(Error::from(e).kind(), ErrorKind::InvalidRequest);
    let e: BoxError = Box::new(tower::timeout::error::Elapsed::new());
    assert_eq!(Error::from(e).kind(), ErrorKind::Timeout);
    let e: BoxError = "boom".into();
    assert_eq!(Error::from(e).kind(), ErrorKind::Other);
}
