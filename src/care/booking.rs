//! A patient's booking: the chosen time (provider, location, time, visit reason) and its
//! idempotency key live in the patient's server-side session, never in a URL; confirming books
//! it through Zocdoc with the user token and that key, so a double click or a retry books once.

use actix_session::Session;
use serde::{Deserialize, Serialize};

use super::browse;
use super::public::Found;
use super::times::parse_instant;
use super::zocdoc::{self, Appointment, BookingRequest, Slot};
use super::{api_base, as_patient, as_user, begin_session, is_logged_in, put, CareError};
use crate::clock::UnixTime;
use crate::startup::AppState;
use crate::vault::random_token;
use crate::vendors::http::VendorError;

const CHOICE: &str = "booking_choice";
const BOOKED: &str = "booking_done";

/// What the patient chose, as Zocdoc showed it (checked against its open times, never taken
/// from the form as it came).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    pub provider_id: String,
    pub provider_name: String,
    pub location_id: String,
    pub address: String,
    /// The location's IANA time zone.
    pub zone: String,
    pub start: UnixTime,
    /// Zocdoc's own spelling of the time, sent back when booking.
    pub start_raw: String,
    pub reason_id: String,
    pub reason_name: String,
    /// One key per choice: every attempt to book this choice carries it.
    pub idempotency_key: String,
}

/// The last booking made in this session, for its confirmation page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Booked {
    pub provider_name: String,
    pub address: String,
    pub zone: String,
    pub start: UnixTime,
    pub reason_name: String,
}

/// A Book button's fields: the provider, `location|time` and the visit reason.
pub struct Pick<'a> {
    pub provider_id: &'a str,
    pub slot: &'a str,
    pub reason_id: &'a str,
}

pub fn choice(session: &Session) -> Option<Choice> {
    session.get::<Choice>(CHOICE).ok().flatten()
}

pub fn booked(session: &Session) -> Option<Booked> {
    session.get::<Booked>(BOOKED).ok().flatten()
}

/// The open time a Book button names, among Zocdoc's current open times of that provider.
fn find_slot<'f>(found: &'f Found, slot: &str) -> Option<&'f Slot> {
    let (location_id, raw) = slot.split_once('|')?;
    let start = parse_instant(raw)?;
    found.slots.iter().find(|s| s.location_id == location_id && s.start == start)
}

/// Checks the pick against Zocdoc's current open times and keeps it in the session (which
/// this starts). `SlotGone` when the time is no longer open; the provider's times come along.
pub async fn choose(
    state: &AppState,
    session: &Session,
    pick: &Pick<'_>,
) -> Result<Choice, (CareError, Option<std::sync::Arc<Found>>)> {
    let found = browse::provider(state, session, pick.provider_id).await.map_err(|e| (e, None))?;
    let provider = found.providers.first().ok_or((CareError::NoSuchProvider, None))?;
    let Some(reason) = provider.visit_reasons.iter().find(|r| r.id == pick.reason_id) else {
        return Err((CareError::NoChoice, None));
    };
    let Some(slot) = find_slot(&found, pick.slot) else {
        return Err((CareError::SlotGone, Some(found)));
    };
    let Some(location) = provider.locations.iter().find(|l| l.id == slot.location_id) else {
        return Err((CareError::SlotGone, Some(found)));
    };
    let choice = Choice {
        provider_id: provider.id.clone(),
        provider_name: provider.name.clone(),
        location_id: location.id.clone(),
        address: location.address.clone(),
        zone: location.zone.name().to_owned(),
        start: slot.start,
        start_raw: slot.raw.clone(),
        reason_id: reason.id.clone(),
        reason_name: reason.name.clone(),
        idempotency_key: random_token(24).map_err(|e| (e.into(), None))?,
    };
    begin_session(session).map_err(|e| (e, None))?;
    put(session, CHOICE, &choice).map_err(|e| (e, None))?;
    tracing::info!("patient chose a time to book");
    Ok(choice)
}

/// Whether the chosen time is still open, asked with the patient's own token.
pub async fn still_open(state: &AppState, session: &Session, choice: &Choice) -> Result<bool, CareError> {
    let base = api_base(state)?;
    let (http, base, now) = (&state.http, &base, state.clock.now());
    let ids = [choice.location_id.as_str()];
    let ids = &ids;
    let slots = as_patient(state, session, move |t| async move {
        zocdoc::availability(http, base, &t, ids, now, browse::DAYS_AHEAD).await
    })
    .await?;
    Ok(slots.iter().any(|s| s.start == choice.start))
}

/// The provider's other open times nearest to the chosen one (earliest first).
pub fn nearest_times(found: &Found, around: UnixTime, except: Option<(&str, UnixTime)>, count: usize) -> Vec<Slot> {
    let mut near: Vec<Slot> = found
        .slots
        .iter()
        .filter(|s| except.is_none_or(|(loc, start)| !(s.location_id == loc && s.start == start)))
        .cloned()
        .collect();
    near.sort_by_key(|s| (s.start - around).abs());
    near.truncate(count);
    near.sort_by_key(|s| s.start);
    near
}

/// Books the chosen time. `SlotGone` when Zocdoc says it is taken, `NoWriteScope` when the
/// patient's login does not allow booking; the choice stays for either (and for any failure:
/// retrying sends the same key).
pub async fn confirm(state: &AppState, session: &Session) -> Result<Booked, CareError> {
    let choice = choice(session).ok_or(CareError::NoChoice)?;
    if !is_logged_in(session) {
        return Err(CareError::NotLoggedIn);
    }
    let base = api_base(state)?;
    let (http, base) = (&state.http, &base);
    let request = BookingRequest {
        location_id: &choice.location_id,
        start_time: &choice.start_raw,
        visit_reason_id: &choice.reason_id,
    };
    let (key, request) = (choice.idempotency_key.as_str(), &request);
    let result =
        as_user(state, session, move |t| async move { zocdoc::book(http, base, &t, key, request).await }).await;
    let appointment = match result {
        Ok(a) => a,
        Err(CareError::Zocdoc(VendorError::Refused { status: 409, .. })) => {
            tracing::info!("the chosen time was taken before the booking");
            return Err(CareError::SlotGone);
        }
        Err(CareError::Zocdoc(VendorError::Refused { status: 403, error, .. }))
            if error.as_deref() == Some("insufficient_scope") =>
        {
            tracing::info!("booking refused: the patient's login lacks external.appointment.write");
            return Err(CareError::NoWriteScope);
        }
        Err(e) => return Err(e),
    };
    let booked = Booked {
        provider_name: choice.provider_name.clone(),
        address: choice.address.clone(),
        zone: choice.zone.clone(),
        start: appointment.start.unwrap_or(choice.start),
        reason_name: choice.reason_name.clone(),
    };
    session.remove(CHOICE);
    put(session, BOOKED, &booked)?;
    tracing::info!("patient booked an appointment");
    Ok(booked)
}

pub async fn appointments(state: &AppState, session: &Session) -> Result<Vec<Appointment>, CareError> {
    let base = api_base(state)?;
    let (http, base) = (&state.http, &base);
    as_user(state, session, move |t| async move { zocdoc::appointments(http, base, &t).await }).await
}

/// Cancels one of the patient's appointments; one that is already cancelled counts as done.
pub async fn cancel(state: &AppState, session: &Session, appointment_id: &str) -> Result<(), CareError> {
    let base = api_base(state)?;
    let (http, base) = (&state.http, &base);
    match as_user(state, session, move |t| async move { zocdoc::cancel(http, base, &t, appointment_id).await }).await {
        Err(CareError::Zocdoc(VendorError::Refused { status: 409, error, .. }))
            if error.as_deref() == Some("already_cancelled") =>
        {
            Ok(())
        }
        other => other,
    }
}
