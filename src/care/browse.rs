//! Searching providers and looking at one, with their open times for the next 14 days: shared
//! and cached for visitors without a session, with the patient's own token for those with one.

use std::sync::Arc;

use actix_session::Session;

use super::public::{provider_key, search_key, Found};
use super::zocdoc::{self, Provider};
use super::{api_base, as_app, as_patient, has_session, CareError};
use crate::startup::AppState;

/// Open times are shown this far ahead.
pub const DAYS_AHEAD: i64 = 14;

fn location_ids(providers: &[Provider]) -> Vec<String> {
    providers.iter().flat_map(|p| p.locations.iter().map(|l| l.id.clone())).take(50).collect()
}

/// Providers matching the search, with their open times.
pub async fn search(
    state: &AppState,
    session: &Session,
    query: &str,
    specialty: &str,
) -> Result<Arc<Found>, CareError> {
    let base = api_base(state)?;
    let (http, base) = (&state.http, &base);
    let now = state.clock.now();
    if !has_session(session) {
        let key = search_key(query, specialty);
        if let Some(found) = state.care.cached(&key, now) {
            return Ok(found);
        }
        let providers =
            as_app(state, move |t| async move { zocdoc::providers(http, base, &t, query, specialty).await }).await?;
        let ids = location_ids(&providers);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let slots = if ids.is_empty() {
            Vec::new()
        } else {
            let ids = &ids;
            as_app(state, move |t| async move { zocdoc::availability(http, base, &t, ids, now, DAYS_AHEAD).await })
                .await?
        };
        let found = Arc::new(Found { providers, slots });
        state.care.remember(key, found.clone(), now);
        return Ok(found);
    }
    let providers =
        as_patient(state, session, move |t| async move { zocdoc::providers(http, base, &t, query, specialty).await })
            .await?;
    let ids = location_ids(&providers);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let ids = &ids;
    let slots =
        if ids.is_empty() {
            Vec::new()
        } else {
            as_patient(state, session, move |t| async move {
                zocdoc::availability(http, base, &t, ids, now, DAYS_AHEAD).await
            })
            .await?
        };
    Ok(Arc::new(Found { providers, slots }))
}

/// One provider with its open times; `NoSuchProvider` when Zocdoc does not know it.
pub async fn provider(state: &AppState, session: &Session, id: &str) -> Result<Arc<Found>, CareError> {
    if !zocdoc::valid_id(id) {
        return Err(CareError::NoSuchProvider);
    }
    let base = api_base(state)?;
    let (http, base) = (&state.http, &base);
    let now = state.clock.now();
    let public = !has_session(session);
    let key = provider_key(id);
    if public {
        if let Some(found) = state.care.cached(&key, now) {
            return Ok(found);
        }
    }
    let found = if public {
        let provider = as_app(state, move |t| async move { zocdoc::provider_by_id(http, base, &t, id).await }).await?;
        let provider = provider.ok_or(CareError::NoSuchProvider)?;
        let ids: Vec<&str> = provider.locations.iter().map(|l| l.id.as_str()).collect();
        let ids = &ids;
        let slots =
            as_app(state, move |t| async move { zocdoc::availability(http, base, &t, ids, now, DAYS_AHEAD).await })
                .await?;
        Found { providers: vec![provider], slots }
    } else {
        let provider =
            as_patient(state, session, move |t| async move { zocdoc::provider_by_id(http, base, &t, id).await })
                .await?;
        let provider = provider.ok_or(CareError::NoSuchProvider)?;
        let ids: Vec<&str> = provider.locations.iter().map(|l| l.id.as_str()).collect();
        let ids = &ids;
        let slots = as_patient(state, session, move |t| async move {
            zocdoc::availability(http, base, &t, ids, now, DAYS_AHEAD).await
        })
        .await?;
        Found { providers: vec![provider], slots }
    };
    let found = Arc::new(found);
    if public {
        state.care.remember(key, found.clone(), now);
    }
    Ok(found)
}
