//! The Zocdoc calls patients' pages need: the anonymous-user token, providers, open times,
//! booking, a patient's appointments and cancelling one. Answers are parsed leniently, checked
//! and capped; identifiers that come back are checked before we ever put one in a request.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::times::{parse_instant, Zone};
use crate::clock::UnixTime;
use crate::vendors::http::{parse_token_response, TokenSet, VendorClient, VendorError};

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub specialty: String,
    pub locations: Vec<Location>,
    pub visit_reasons: Vec<VisitReason>,
    pub next_availability: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct Location {
    pub id: String,
    /// `210 Court St, Brooklyn, NY 11201`.
    pub address: String,
    pub zone: Zone,
}

#[derive(Debug, Clone)]
pub struct VisitReason {
    pub id: String,
    pub name: String,
}

/// An open time: where, when, and the vendor's own spelling of it (sent back when booking).
#[derive(Debug, Clone)]
pub struct Slot {
    pub location_id: String,
    pub start: UnixTime,
    pub raw: String,
}

#[derive(Debug, Clone)]
pub struct Appointment {
    pub id: String,
    pub provider: String,
    pub location: Option<Location>,
    pub start: Option<UnixTime>,
    pub visit_reason: String,
    pub status: String,
}

impl Appointment {
    /// Booked, and not begun yet: the patient may cancel it.
    pub fn is_upcoming(&self, now: UnixTime) -> bool {
        self.status == "confirmed" && self.start.is_some_and(|s| s > now)
    }
}

/// An identifier Zocdoc gave us, safe to send back in a path or a query: letters, digits, `_`
/// and `-`, at most 64 characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn url(api_base: &Url, path: &str) -> Result<Url, VendorError> {
    api_base.join(path).map_err(|_| VendorError::Malformed("URL".into()))
}

/// A request with the bearer token; the body on success. A refusal keeps the vendor's `error`
/// code (a short word, checked) so callers can tell a taken time from a missing scope.
async fn call(
    http: &VendorClient,
    request: reqwest::RequestBuilder,
    token: &SecretString,
) -> Result<Answer, VendorError> {
    let request =
        request.header(ACCEPT, "application/json").header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
    let answer = http.timed("zocdoc", "api", request).await?;
    if !answer.status.is_success() {
        let error = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .filter(|e| !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        return Err(VendorError::Refused { status: answer.status.as_u16(), error, retry_after: answer.retry_after });
    }
    Ok(Answer { status: answer.status.as_u16(), body: answer.body })
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

fn json(body: &[u8], what: &str) -> Result<Value, VendorError> {
    serde_json::from_slice(body).map_err(|_| VendorError::Malformed(what.into()))
}

/// `POST /v1/token/anonymous-user` with the app's backend token.
pub async fn anonymous_token(
    http: &VendorClient,
    api_base: &Url,
    backend_token: &SecretString,
    app_client_id: &str,
) -> Result<TokenSet, VendorError> {
    let request = http
        .http()
        .post(url(api_base, "v1/token/anonymous-user")?)
        .header(CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "app_client_id": app_client_id }).to_string());
    parse_token_response(&call(http, request, backend_token).await?.body)
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    data: Vec<Value>,
}

fn listing(body: &[u8], what: &str) -> Result<Vec<Value>, VendorError> {
    serde_json::from_slice::<Listing>(body).map(|l| l.data).map_err(|_| VendorError::Malformed(what.into()))
}

fn location(v: &Value) -> Option<Location> {
    let id = text(v, "/provider_location_id");
    if !valid_id(&id) {
        return None;
    }
    let zip = text(v, "/zip");
    let city_state = [text(v, "/city"), [text(v, "/state"), zip].join(" ").trim().to_owned()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let address =
        [text(v, "/address1"), city_state].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ");
    Some(Location { id, address, zone: Zone::parse(&text(v, "/time_zone")) })
}

fn provider(v: &Value) -> Option<Provider> {
    let id = text(v, "/provider_id");
    if !valid_id(&id) {
        return None;
    }
    let list = |key: &str| v.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    Some(Provider {
        id,
        name: text(v, "/full_name"),
        specialty: text(v, "/specialty"),
        locations: list("locations").iter().filter_map(location).take(10).collect(),
        visit_reasons: list("visit_reasons")
            .iter()
            .filter_map(|r| {
                let id = text(r, "/visit_reason_id");
                valid_id(&id).then(|| VisitReason { id, name: text(r, "/name") })
            })
            .take(20)
            .collect(),
        next_availability: v.get("next_availability").and_then(Value::as_str).and_then(parse_instant),
    })
}

/// `GET /v1/providers?q=&specialty=`.
pub async fn providers(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    query: &str,
    specialty: &str,
) -> Result<Vec<Provider>, VendorError> {
    let mut url = url(api_base, "v1/providers")?;
    url.query_pairs_mut().append_pair("q", query).append_pair("specialty", specialty);
    let body = call(http, http.http().get(url), token).await?.body;
    Ok(listing(&body, "provider search")?.iter().filter_map(provider).take(50).collect())
}

/// `GET /v1/providers/{provider_id}`; `None` when Zocdoc knows no such provider.
pub async fn provider_by_id(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    id: &str,
) -> Result<Option<Provider>, VendorError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let request = http.http().get(url(api_base, &format!("v1/providers/{id}"))?);
    match call(http, request, token).await {
        Ok(answer) => Ok(json(&answer.body, "provider")?.get("data").and_then(provider)),
        Err(VendorError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /v1/provider_locations/availability` for these locations over the next `days` days.
pub async fn availability(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    location_ids: &[&str],
    now: UnixTime,
    days: i64,
) -> Result<Vec<Slot>, VendorError> {
    let ids: Vec<&str> = location_ids.iter().copied().filter(|id| valid_id(id)).take(50).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let date = |t: UnixTime| {
        jiff::Timestamp::from_second(t).map(|ts| ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string())
    };
    // UTC dates a day wide on each side: every location's local days are inside.
    let (start, end) = match (date(now - 86_400), date(now + (days + 1) * 86_400)) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return Err(VendorError::Malformed("date range".into())),
    };
    let mut url = url(api_base, "v1/provider_locations/availability")?;
    url.query_pairs_mut()
        .append_pair("provider_location_ids", &ids.join(","))
        .append_pair("start_date", &start)
        .append_pair("end_date", &end);
    let body = call(http, http.http().get(url), token).await?.body;
    let mut slots = Vec::new();
    for entry in listing(&body, "availability")? {
        let location_id = text(&entry, "/provider_location_id");
        if !ids.contains(&location_id.as_str()) {
            continue;
        }
        for slot in entry.get("timeslots").and_then(Value::as_array).into_iter().flatten().take(1000) {
            let raw = text(slot, "/start_time");
            match parse_instant(&raw) {
                Some(start) if start > now && start <= now + days * 86_400 => {
                    slots.push(Slot { location_id: location_id.clone(), start, raw })
                }
                _ => {}
            }
        }
    }
    slots.sort_by_key(|s| s.start);
    Ok(slots)
}

fn appointment(v: &Value) -> Option<Appointment> {
    let id = text(v, "/appointment_id");
    if !valid_id(&id) {
        return None;
    }
    let location = v.get("location").and_then(location);
    let provider = ["/provider/full_name", "/provider/name", "/provider_name"]
        .iter()
        .map(|p| text(v, p))
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "—".to_owned());
    Some(Appointment {
        id,
        provider,
        location,
        start: parse_instant(&text(v, "/start_time")),
        visit_reason: text(v, "/visit_reason/name"),
        status: text(v, "/status"),
    })
}

/// `GET /v1/appointments`.
pub async fn appointments(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
) -> Result<Vec<Appointment>, VendorError> {
    let body = call(http, http.http().get(url(api_base, "v1/appointments")?), token).await?.body;
    Ok(listing(&body, "appointments")?.iter().filter_map(appointment).take(200).collect())
}

/// What is booked: where, when, and for what.
pub struct BookingRequest<'a> {
    pub location_id: &'a str,
    pub start_time: &'a str,
    pub visit_reason_id: &'a str,
}

/// `POST /v1/appointments` with an `Idempotency-Key`: a retry with the same key answers the
/// same appointment instead of booking again.
pub async fn book(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    idempotency_key: &str,
    booking: &BookingRequest<'_>,
) -> Result<Appointment, VendorError> {
    let body = serde_json::json!({
        "provider_location_id": booking.location_id,
        "start_time": booking.start_time,
        "visit_reason_id": booking.visit_reason_id,
    });
    let request = http
        .http()
        .post(url(api_base, "v1/appointments")?)
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", idempotency_key)
        .body(body.to_string());
    let answer = call(http, request, token).await?;
    tracing::info!(status = answer.status, "Zocdoc answered the booking");
    json(&answer.body, "booking")?
        .get("data")
        .and_then(appointment)
        .ok_or_else(|| VendorError::Malformed("booking".into()))
}

/// `POST /v1/appointments/{appointment_id}/cancel`.
pub async fn cancel(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    appointment_id: &str,
) -> Result<(), VendorError> {
    if !valid_id(appointment_id) {
        return Err(VendorError::Malformed("appointment id".into()));
    }
    let request = http.http().post(url(api_base, &format!("v1/appointments/{appointment_id}/cancel"))?);
    call(http, request, token).await.map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_that_could_change_a_path_are_refused() {
        for ok in ["pr_10231", "pl-1", "apt_0a1B"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "../v1/x", "a/b", "a?b=1", "a b", "a%2F", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn providers_parse_with_locations_zones_and_reasons_and_skip_bad_ids() {
        let p = provider(&json!({
            "provider_id": "pr_1", "full_name": "Dr. A", "specialty": "Dentistry",
            "locations": [
                {"provider_location_id": "pl_1", "address1": "1 Main St", "city": "Phoenix", "state": "AZ", "zip": "85004", "time_zone": "America/Phoenix"},
                {"provider_location_id": "../x", "time_zone": "UTC"}
            ],
            "visit_reasons": [{"visit_reason_id": "vr_1", "name": "Cleaning"}],
            "next_availability": "2027-03-15T16:00:00Z"
        }))
        .unwrap();
        assert_eq!(p.locations.len(), 1);
        assert_eq!(p.locations[0].address, "1 Main St, Phoenix, AZ 85004");
        assert_eq!(p.locations[0].zone.name(), "America/Phoenix");
        assert_eq!(p.visit_reasons[0].name, "Cleaning");
        assert!(p.next_availability.is_some());
        assert!(provider(&json!({"provider_id": "a/b"})).is_none());
    }

    #[test]
    fn appointments_know_whether_they_are_upcoming() {
        let a = appointment(&json!({
            "appointment_id": "apt_1", "status": "confirmed", "start_time": "2027-03-15T09:00:00-04:00",
            "provider": {"full_name": "Dr. A"}, "visit_reason": {"name": "Cleaning"},
            "location": {"provider_location_id": "pl_1", "time_zone": "America/New_York"}
        }))
        .unwrap();
        let start = a.start.unwrap();
        assert!(a.is_upcoming(start - 1));
        assert!(!a.is_upcoming(start));
        assert_eq!(a.location.unwrap().zone.time(start), "9:00 AM EDT");
    }
}
