//! Records every request the sandbox receives, before any validation, and writes the one
//! log line per request (method, route pattern, status: never a query string or body).

use std::collections::VecDeque;
use std::sync::Mutex;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::HttpMessage as _;
use futures_util::StreamExt as _;

use super::{http, Shared, BODY_LIMIT, VENDORS};
use crate::clock::UnixTime;

/// How many requests are kept; the oldest are dropped beyond this (only long benchmarks
/// ever get there).
const MAX_RECORDED: usize = 100_000;

/// One request as the sandbox received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The vendor id whose prefix the path starts with, or `sandbox` for anything else.
    pub vendor: String,
    pub method: String,
    /// Relative to the vendor prefix, without the query string.
    pub path: String,
    /// The raw query string (may be empty).
    pub query: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8), at most the sandbox's body limit.
    pub body: String,
    pub at: UnixTime,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The body parsed as a urlencoded form (empty if it is not one).
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
pub(crate) struct Recorder {
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    fn push(&self, request: RecordedRequest) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }

    pub(crate) fn matching(&self, vendor: &str, path: &str) -> Vec<RecordedRequest> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().filter(|r| r.vendor == vendor && r.path == path).cloned().collect()
    }
}

/// Splits a request path into (vendor, path relative to that vendor's prefix).
pub(crate) fn split_vendor(path: &str) -> (&'static str, String) {
    for vendor in VENDORS {
        if let Some(rest) = path.strip_prefix(vendor.prefix) {
            if rest.is_empty() {
                return (vendor.id, "/".to_owned());
            }
            if rest.starts_with('/') {
                return (vendor.id, rest.to_owned());
            }
        }
    }
    ("sandbox", path.to_owned())
}

/// Reads at most `limit` bytes of the body. Returns the bytes read and whether the body
/// was complete (false: too large or the stream failed).
async fn read_capped(payload: &mut Payload, limit: usize) -> (Bytes, BodyRead) {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return (buf.freeze(), BodyRead::Broken);
        };
        if buf.len() + chunk.len() > limit {
            let room = limit.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..room.min(chunk.len())]);
            return (buf.freeze(), BodyRead::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    (buf.freeze(), BodyRead::Complete)
}

#[derive(PartialEq, Eq)]
enum BodyRead {
    Complete,
    TooLarge,
    Broken,
}

/// Middleware: read the (capped) body, record the request, hand the body on, log one line.
pub(crate) async fn record_and_log(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let mut payload = req.take_payload();
    let (body, read) = read_capped(&mut payload, BODY_LIMIT).await;
    let method = req.method().clone();

    if let Some(shared) = req.app_data::<web::Data<Shared>>() {
        let (vendor, path) = split_vendor(req.path());
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_ascii_lowercase(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        shared.recorder.push(RecordedRequest {
            vendor: vendor.to_owned(),
            method: method.to_string(),
            path,
            query: req.query_string().to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: shared.clock.now(),
        });
    }

    let refusal = match read {
        BodyRead::Complete => None,
        BodyRead::TooLarge => {
            Some(http::json_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "request body too large"))
        }
        BodyRead::Broken => {
            Some(http::json_error(StatusCode::BAD_REQUEST, "invalid_request", "could not read the request body"))
        }
    };
    if let Some(response) = refusal {
        tracing::info!(%method, status = response.status().as_u16(), "sandbox refused request body");
        return Ok(req.into_response(response).map_into_right_body());
    }

    req.set_payload(Payload::from(body));
    let hold = req.app_data::<web::Data<Shared>>().and_then(|shared| {
        let (vendor, path) = split_vendor(req.path());
        let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = held.iter_mut().find(|(v, p, _, left)| v == vendor && *p == path && *left > 0)?;
        entry.3 -= 1;
        Some((shared.clone(), entry.2))
    });
    let res = next.call(req).await?;
    if let Some((shared, duration)) = hold {
        shared.held_handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(duration).await;
    }
    let route = res.request().match_pattern();
    tracing::info!(
        %method,
        route = route.as_deref().unwrap_or("<unmatched>"),
        status = res.status().as_u16(),
        "sandbox request"
    );
    Ok(res.map_into_left_body())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn splits_vendor_prefix() {
        assert_eq!(split_vendor("/yappointment/oauth/token"), ("yappointment", "/oauth/token".to_owned()));
        assert_eq!(split_vendor("/yappointment"), ("yappointment", "/".to_owned()));
        assert_eq!(split_vendor("/yappointmentx/a"), ("sandbox", "/yappointmentx/a".to_owned()));
        assert_eq!(split_vendor("/"), ("sandbox", "/".to_owned()));
        assert_eq!(split_vendor("/zocdoc/oauth/token"), ("zocdoc", "/oauth/token".to_owned()));
        assert_eq!(split_vendor("/zocdoc-sandbox/oauth/token"), ("zocdoc-sandbox", "/oauth/token".to_owned()));
        assert_eq!(
            split_vendor("/docplanner/znanylekarz.pl/oauth/v2/token"),
            ("docplanner", "/znanylekarz.pl/oauth/v2/token".to_owned())
        );
        assert_eq!(split_vendor("/qmatic/eu-west-1/oauth2/token"), ("qmatic", "/eu-west-1/oauth2/token".to_owned()));
    }

    #[test]
    fn recorded_request_helpers() {
        let r = RecordedRequest {
            vendor: "yappointment".into(),
            method: "POST".into(),
            path: "/oauth/token".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"a":"b"}"#.into(),
            at: 0,
        };
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json(), Some(serde_json::json!({"a": "b"})));
        let f = RecordedRequest { body: "a=b&c=d+e".into(), ..r };
        assert_eq!(f.form(), vec![("a".to_owned(), "b".to_owned()), ("c".to_owned(), "d e".to_owned())]);
    }
}
