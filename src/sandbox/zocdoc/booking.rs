//! Zocdoc's scheduling API, simulated: open times per provider location, booking, a user's
//! appointments, cancellation. Zocdoc documents only authentication; these shapes are ours, in
//! its style (JSON, `data` lists, OAuth-style `error` codes), kept in this one file so that
//! they are easy to swap for the real API's.
//!
//! - `GET {prefix}/v1/provider_locations/availability?provider_location_ids=a,b&start_date=
//!   YYYY-MM-DD&end_date=YYYY-MM-DD`: any live token of the environment. Open 30-minute times,
//!   Monday to Friday 9:00–17:00 local time (not 12:00–13:00, and not every one), for at most 14
//!   days from now, each `start_time` with the location's UTC offset of that day.
//! - `POST {prefix}/v1/appointments` with `Idempotency-Key` and `{"provider_location_id",
//!   "start_time", "visit_reason_id"}`: a signed-in user's token with
//!   `external.appointment.write` (else 403 `insufficient_scope`). One booking per time: a
//!   taken or never-open time is 409 `slot_unavailable`. The same key with the same request
//!   answers the first booking again (200 instead of 201); with another request, 422.
//! - `GET {prefix}/v1/appointments`: the user's appointments (`external.appointment.read`).
//! - `POST {prefix}/v1/appointments/{appointment_id}/cancel`: the user's upcoming appointment
//!   (`external.appointment.write`); 409 `already_cancelled` or `appointment_in_past`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use ring::digest;
use serde_json::{json, Value};

use super::catalogue::{self, location_json, visit_reason_json, Location, Provider};
use super::Env;
use crate::sandbox::authorize::{self as authz, Param};
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, JsonBody, JsonError};
use crate::sandbox::tokens::{random_token, Authorized, GrantKind};
use crate::sandbox::{lock, Shared};

pub(crate) const READ_SCOPE: &str = "external.appointment.read";
pub(crate) const WRITE_SCOPE: &str = "external.appointment.write";
/// How far ahead times can be seen and booked.
pub(crate) const HORIZON_DAYS: i64 = 14;
const SLOT_MINUTES: i64 = 30;
/// Who books a time that tests take "as someone else".
pub(crate) const SOMEONE_ELSE: &str = "someone.else@example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Confirmed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Booking {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) location_id: &'static str,
    pub(crate) visit_reason_id: &'static str,
    pub(crate) start: i64,
    pub(crate) status: Status,
}

/// One environment's bookings.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) bookings: Vec<Booking>,
    /// (user, key) → (the request it was first used with, the booking it made).
    idempotency: HashMap<(String, String), (String, String)>,
    /// Sample appointments the user cancelled.
    cancelled_samples: Vec<String>,
}

impl Ledger {
    fn taken(&self, location_id: &str, start: i64) -> bool {
        self.bookings.iter().any(|b| b.status == Status::Confirmed && b.location_id == location_id && b.start == start)
    }
}

/// The simulated Zocdoc's scheduling state, both environments.
#[derive(Default)]
pub(crate) struct Desk {
    production: Ledger,
    sandbox: Ledger,
    /// A scope that sign-ins from now on do not grant (a user who withheld it).
    pub(crate) withheld_scope: Option<String>,
}

impl Desk {
    pub(crate) fn ledger(&mut self, env: &Env) -> &mut Ledger {
        if env.vendor == super::SANDBOX.vendor {
            &mut self.sandbox
        } else {
            &mut self.production
        }
    }
}

/// Whether this local time is one of the location's bookable times (a fixed, plausible pattern).
fn offered(location_id: &str, date: Date, minute_of_day: i64) -> bool {
    let lunch = (12 * 60..13 * 60).contains(&minute_of_day);
    let seed = format!("{location_id}/{date}/{minute_of_day}");
    let spread = digest::digest(&digest::SHA256, seed.as_bytes()).as_ref()[0] % 3 != 0;
    !lunch && spread
}

/// The location's schedule (ignoring bookings) within [from, to), as instants.
fn schedule(location: &Location, from: i64, to: i64) -> Vec<i64> {
    let Ok(tz) = TimeZone::get(location.time_zone) else { return Vec::new() };
    let Ok(start) = Timestamp::from_second(from) else { return Vec::new() };
    let mut day = start.to_zoned_datetime(tz.clone()).date();
    let mut times = Vec::new();
    for _ in 0..=HORIZON_DAYS + 1 {
        if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            for minute in (9 * 60..17 * 60).step_by(SLOT_MINUTES as usize) {
                if !offered(location.id, day, minute) {
                    continue;
                }
                let Ok(local) = jiff::civil::Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0) else {
                    continue;
                };
                let Ok(zoned) = day.to_datetime(local).to_zoned_datetime(tz.clone()) else { continue };
                let t = zoned.timestamp().as_second();
                if t >= from && t < to {
                    times.push(t);
                }
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    times
}

/// Open (offered and not taken) times of a location from `now` to the horizon.
pub(crate) fn open_times(ledger: &Ledger, location: &Location, now: i64) -> Vec<i64> {
    schedule(location, now + 1, now + HORIZON_DAYS * 86_400)
        .into_iter()
        .filter(|t| !ledger.taken(location.id, *t))
        .collect()
}

/// The provider's first open time at any location.
pub(crate) fn next_open(ledger: &Ledger, provider: &Provider, now: i64) -> Option<i64> {
    provider.locations.iter().filter_map(|l| open_times(ledger, l, now).first().copied()).min()
}

/// `2027-03-15T09:00:00-04:00`: the instant with the location's offset at that moment.
pub(crate) fn local_rfc3339(t: i64, time_zone: &str) -> String {
    match (Timestamp::from_second(t), TimeZone::get(time_zone)) {
        (Ok(ts), Ok(tz)) => ts.to_zoned_datetime(tz).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        _ => http::rfc3339(t),
    }
}

fn parse_instant(raw: &str) -> Option<i64> {
    raw.parse::<Timestamp>().ok().map(Timestamp::as_second)
}

/// The request's live token of this environment, or the 401.
fn bearer(env: &Env, req: &HttpRequest, shared: &Shared) -> Result<Authorized, JsonError> {
    let token = http::bearer_token(req).ok_or_else(JsonError::invalid_token)?;
    lock(env.store(shared)).authorize(token, shared.clock.now()).ok_or_else(|| {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc scheduling call with a dead or foreign token");
        JsonError::invalid_token()
    })
}

/// A signed-in user's token with `scope`: their email, or the 403.
fn user_with(env: &Env, caller: &Authorized, scope: &'static str) -> Result<String, JsonError> {
    let email = match (caller.kind, caller.subject.as_deref()) {
        (GrantKind::User, Some(email)) => email.to_owned(),
        _ => {
            return Err(JsonError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "a signed-in user's token is required",
            ))
        }
    };
    if !caller.scopes.iter().any(|s| s == scope) {
        tracing::info!(vendor = env.vendor, scope, "sandbox zocdoc refused: insufficient_scope");
        let description = if scope == WRITE_SCOPE {
            "this call needs the external.appointment.write scope"
        } else {
            "this call needs the external.appointment.read scope"
        };
        return Err(JsonError::new(StatusCode::FORBIDDEN, "insufficient_scope", description));
    }
    Ok(email)
}

fn reply(result: Result<HttpResponse, JsonError>) -> HttpResponse {
    result.unwrap_or_else(|e| e.response())
}

/// `GET {prefix}/v1/provider_locations/availability`.
pub(super) async fn availability(env: &'static Env, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    reply(find_availability(env, &req, &shared))
}

fn date_param(pairs: &[(String, String)], name: &str) -> Result<Option<Date>, JsonError> {
    match authz::param(pairs, name) {
        Param::Missing => Ok(None),
        Param::One(raw) => raw
            .parse::<Date>()
            .map(Some)
            .map_err(|_| JsonError::bad_request("invalid_request", format!("{name} must be a date (YYYY-MM-DD)"))),
        Param::Repeated => Err(JsonError::bad_request("invalid_request", format!("{name} is repeated"))),
    }
}

fn find_availability(env: &Env, req: &HttpRequest, shared: &Shared) -> Result<HttpResponse, JsonError> {
    bearer(env, req, shared)?;
    let pairs = authz::query_pairs(req);
    let ids: Vec<&str> = match authz::param(&pairs, "provider_location_ids") {
        Param::One(raw) => raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() || ids.len() > 50 {
        return Err(JsonError::bad_request(
            "invalid_request",
            "provider_location_ids must list 1 to 50 ids, separated by commas",
        ));
    }
    let (start_date, end_date) = (date_param(&pairs, "start_date")?, date_param(&pairs, "end_date")?);
    if let (Some(s), Some(e)) = (start_date, end_date) {
        if e < s {
            return Err(JsonError::bad_request("invalid_request", "end_date is before start_date"));
        }
    }
    let now = shared.clock.now();
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    let mut data = Vec::new();
    for id in ids {
        let Some((provider, location)) = catalogue::location(id) else {
            return Err(JsonError::new(StatusCode::NOT_FOUND, "not_found", "a provider_location_id is unknown"));
        };
        let tz = TimeZone::get(location.time_zone).ok();
        let in_range = |t: &i64| {
            let Some(day) = tz
                .as_ref()
                .and_then(|tz| Timestamp::from_second(*t).ok().map(|ts| ts.to_zoned_datetime(tz.clone()).date()))
            else {
                return true;
            };
            start_date.is_none_or(|s| day >= s) && end_date.is_none_or(|e| day <= e)
        };
        let timeslots: Vec<Value> = open_times(ledger, location, now)
            .into_iter()
            .filter(in_range)
            .map(|t| json!({"start_time": local_rfc3339(t, location.time_zone), "duration_minutes": SLOT_MINUTES}))
            .collect();
        data.push(json!({
            "provider_location_id": location.id,
            "provider_id": provider.id,
            "time_zone": location.time_zone,
            "timeslots": timeslots,
        }));
    }
    Ok(http::json(StatusCode::OK, &json!({ "data": data })))
}

fn appointment_json(b: &Booking) -> Value {
    let found = catalogue::location(b.location_id);
    let provider = found.map(|(p, _)| json!({"provider_id": p.id, "full_name": p.full_name}));
    let location = found.map(|(_, l)| location_json(l));
    let zone = found.map(|(_, l)| l.time_zone).unwrap_or("UTC");
    let reason =
        found.and_then(|(p, _)| p.visit_reasons.iter().find(|v| v.id == b.visit_reason_id)).map(visit_reason_json);
    json!({
        "appointment_id": b.id,
        "status": b.status.as_str(),
        "start_time": local_rfc3339(b.start, zone),
        "duration_minutes": SLOT_MINUTES,
        "provider": provider,
        "location": location,
        "visit_reason": reason,
        "patient": {"email": b.email},
    })
}

/// `POST {prefix}/v1/appointments`.
pub(super) async fn book(
    env: &'static Env,
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    reply(make_booking(env, &req, &body, &shared))
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<String, JsonError> {
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(JsonError::bad_request(
            "invalid_request",
            "an Idempotency-Key header (1 to 255 visible ASCII characters) is required",
        ));
    }
    Ok(key.to_owned())
}

fn make_booking(env: &Env, req: &HttpRequest, body: &[u8], shared: &Shared) -> Result<HttpResponse, JsonError> {
    let caller = bearer(env, req, shared)?;
    let email = user_with(env, &caller, WRITE_SCOPE)?;
    let key = idempotency_key(req)?;
    if !http::is_json(req) {
        return Err(JsonError::bad_request("invalid_request", "request body must be JSON"));
    }
    let body = JsonBody::parse(body)?;
    let location_id = body.required("provider_location_id")?;
    let start_raw = body.required("start_time")?;
    let reason_id = body.required("visit_reason_id")?;
    let (provider, location) = catalogue::location(location_id)
        .ok_or_else(|| JsonError::new(StatusCode::NOT_FOUND, "not_found", "the provider_location_id is unknown"))?;
    let reason = provider.visit_reasons.iter().find(|v| v.id == reason_id).ok_or_else(|| {
        JsonError::bad_request("invalid_request", "the visit_reason_id is not one this provider takes")
    })?;
    let start = parse_instant(start_raw)
        .ok_or_else(|| JsonError::bad_request("invalid_request", "start_time must be an RFC 3339 date-time"))?;
    let fingerprint = format!("{}|{start}|{}", location.id, reason.id);
    let now = shared.clock.now();
    // One lock for the check and the booking: two requests can never both take a time.
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    let remembered = (email.clone(), key);
    if let Some((first, id)) = ledger.idempotency.get(&remembered) {
        if *first != fingerprint {
            return Err(JsonError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        let booking = ledger.bookings.iter().find(|b| &b.id == id).cloned();
        if let Some(booking) = booking {
            tracing::info!(vendor = env.vendor, "sandbox zocdoc booking replayed for a repeated Idempotency-Key");
            return Ok(http::json(StatusCode::OK, &json!({ "data": appointment_json(&booking) })));
        }
    }
    if !open_times(ledger, location, now).contains(&start) {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc booking refused: slot_unavailable");
        return Err(JsonError::new(StatusCode::CONFLICT, "slot_unavailable", "this time is no longer available"));
    }
    let id = random_token(&shared.rng, "apt_").map_err(|_| http::random_failed())?;
    let booking = Booking {
        id: id.clone(),
        email,
        location_id: location.id,
        visit_reason_id: reason.id,
        start,
        status: Status::Confirmed,
    };
    ledger.bookings.push(booking.clone());
    ledger.idempotency.insert(remembered, (fingerprint, id));
    tracing::info!(vendor = env.vendor, "sandbox zocdoc appointment booked");
    Ok(http::json(StatusCode::CREATED, &json!({ "data": appointment_json(&booking) })))
}

/// `GET {prefix}/v1/appointments`.
pub(super) async fn appointments(env: &'static Env, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    reply(list(env, &req, &shared))
}

fn list(env: &Env, req: &HttpRequest, shared: &Shared) -> Result<HttpResponse, JsonError> {
    let caller = bearer(env, req, shared)?;
    let email = user_with(env, &caller, READ_SCOPE)?;
    let now = shared.clock.now();
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    let mut data: Vec<(i64, Value)> = samples(&email, now)
        .into_iter()
        .map(|mut s| {
            if ledger.cancelled_samples.contains(&s.id) {
                s.status = Status::Cancelled;
            }
            let mut value = appointment_json(&s);
            if s.start < now && s.status == Status::Confirmed {
                value["status"] = json!("completed");
            }
            (s.start, value)
        })
        .collect();
    data.extend(
        ledger.bookings.iter().filter(|b| b.email.eq_ignore_ascii_case(&email)).map(|b| (b.start, appointment_json(b))),
    );
    data.sort_by_key(|(start, _)| *start);
    let data: Vec<Value> = data.into_iter().map(|(_, v)| v).collect();
    Ok(http::json(
        StatusCode::OK,
        &json!({ "data": data, "meta": {"anonymous_session_linked": caller.linked_anonymous} }),
    ))
}

/// `POST {prefix}/v1/appointments/{appointment_id}/cancel`.
pub(super) async fn cancel(
    env: &'static Env,
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    reply(cancel_one(env, &req, &path, &shared))
}

fn cancel_one(env: &Env, req: &HttpRequest, id: &str, shared: &Shared) -> Result<HttpResponse, JsonError> {
    let caller = bearer(env, req, shared)?;
    let email = user_with(env, &caller, WRITE_SCOPE)?;
    let now = shared.clock.now();
    let not_found = || JsonError::new(StatusCode::NOT_FOUND, "not_found", "no such appointment of this user");
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    let cancelled =
        if let Some(b) = ledger.bookings.iter_mut().find(|b| b.id == id && b.email.eq_ignore_ascii_case(&email)) {
            check_cancellable(b, now)?;
            b.status = Status::Cancelled;
            b.clone()
        } else {
            let mut sample = samples(&email, now).into_iter().find(|s| s.id == id).ok_or_else(not_found)?;
            if ledger.cancelled_samples.contains(&sample.id) {
                sample.status = Status::Cancelled;
            }
            check_cancellable(&sample, now)?;
            ledger.cancelled_samples.push(sample.id.clone());
            Booking { status: Status::Cancelled, ..sample }
        };
    tracing::info!(vendor = env.vendor, "sandbox zocdoc appointment cancelled");
    Ok(http::json(StatusCode::OK, &json!({ "data": appointment_json(&cancelled) })))
}

fn check_cancellable(b: &Booking, now: i64) -> Result<(), JsonError> {
    if b.status == Status::Cancelled {
        return Err(JsonError::new(StatusCode::CONFLICT, "already_cancelled", "the appointment is already cancelled"));
    }
    if b.start <= now {
        return Err(JsonError::new(
            StatusCode::CONFLICT,
            "appointment_in_past",
            "an appointment that has started cannot be cancelled",
        ));
    }
    Ok(())
}

/// Three appointments every user has: two coming, one past. Their ids depend on the email, so
/// two users never see the same ones.
fn samples(email: &str, now: i64) -> Vec<Booking> {
    let digest = digest::digest(&digest::SHA256, email.to_ascii_lowercase().as_bytes());
    let tag: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    let day = now - now.rem_euclid(86_400);
    let sample = |n: u8, location_id: &'static str, visit_reason_id: &'static str, start: i64| Booking {
        id: format!("apt_{tag}{n}"),
        email: email.to_owned(),
        location_id,
        visit_reason_id,
        start,
        status: Status::Confirmed,
    };
    vec![
        sample(1, "pl_20235", "vr_physical", day + 2 * 86_400 + 14 * 3600),
        sample(2, "pl_20231", "vr_cleaning", day + 9 * 86_400 + 15 * 3600 + 1800),
        sample(3, "pl_20233", "vr_skin_check", day - 12 * 86_400 + 13 * 3600),
    ]
}

/// For tests: a location's open times now.
pub(crate) fn open_times_of(shared: &Shared, env: &Env, location_id: &str, now: i64) -> Vec<i64> {
    let Some((_, location)) = catalogue::location(location_id) else { return Vec::new() };
    open_times(lock(&shared.zocdoc_desk).ledger(env), location, now)
}

/// For tests: books a time as someone else (the patient's time is then gone). False when the
/// time is not open.
pub(crate) fn take_as_someone_else(shared: &Shared, env: &Env, location_id: &str, start: i64) -> bool {
    let Some((provider, location)) = catalogue::location(location_id) else { return false };
    let now = shared.clock.now();
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    if !open_times(ledger, location, now).contains(&start) {
        return false;
    }
    let Some(reason) = provider.visit_reasons.first() else { return false };
    let Ok(id) = random_token(&shared.rng, "apt_") else { return false };
    ledger.bookings.push(Booking {
        id,
        email: SOMEONE_ELSE.to_owned(),
        location_id: location.id,
        visit_reason_id: reason.id,
        start,
        status: Status::Confirmed,
    });
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn times_are_weekday_business_hours_in_the_locations_zone_across_a_dst_change() {
        let (_, new_york) = catalogue::location("pl_20233").unwrap();
        let (_, phoenix) = catalogue::location("pl_20239").unwrap();
        // Friday 2027-03-12 noon UTC; New York moves to daylight saving time on Sunday the 14th.
        let now = at("2027-03-12T12:00:00Z");
        for location in [new_york, phoenix] {
            let tz = TimeZone::get(location.time_zone).unwrap();
            let times = open_times(&Ledger::default(), location, now);
            assert!(times.len() > 40, "{}", times.len());
            assert!(times.iter().all(|t| *t > now && *t < now + HORIZON_DAYS * 86_400));
            for t in &times {
                let local = Timestamp::from_second(*t).unwrap().to_zoned_datetime(tz.clone());
                let minute = i64::from(local.hour()) * 60 + i64::from(local.minute());
                assert!((9 * 60..17 * 60).contains(&minute) && !(12 * 60..13 * 60).contains(&minute), "{local}");
                assert!(!matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday));
            }
        }
        // 9:00 in New York is 14:00 UTC before the change and 13:00 UTC after; Phoenix stays at 16:00.
        assert_eq!(local_rfc3339(at("2027-03-12T14:00:00Z"), "America/New_York"), "2027-03-12T09:00:00-05:00");
        assert_eq!(local_rfc3339(at("2027-03-15T13:00:00Z"), "America/New_York"), "2027-03-15T09:00:00-04:00");
        assert_eq!(local_rfc3339(at("2027-03-15T16:00:00Z"), "America/Phoenix"), "2027-03-15T09:00:00-07:00");
        let after = schedule(new_york, at("2027-03-15T00:00:00Z"), at("2027-03-16T00:00:00Z"));
        assert!(after.iter().all(|t| (at("2027-03-15T13:00:00Z")..at("2027-03-15T21:00:00Z")).contains(t)));
    }

    #[test]
    fn a_taken_time_is_not_open() {
        let (_, location) = catalogue::location("pl_20231").unwrap();
        let now = at("2027-03-10T12:00:00Z");
        let mut ledger = Ledger::default();
        let first = open_times(&ledger, location, now)[0];
        ledger.bookings.push(Booking {
            id: "apt_x".into(),
            email: "a@example.com".into(),
            location_id: location.id,
            visit_reason_id: "vr_cleaning",
            start: first,
            status: Status::Confirmed,
        });
        assert!(!open_times(&ledger, location, now).contains(&first));
        ledger.bookings[0].status = Status::Cancelled;
        assert!(open_times(&ledger, location, now).contains(&first));
    }
}
