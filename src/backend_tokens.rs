//! The app's own client-credentials tokens (Zocdoc's backend token): fetched once, cached until
//! shortly before they expire, shared by every request, and fetched by one caller at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;

use crate::clock::UnixTime;
use crate::startup::AppState;
use crate::vendors::http::{ClientCredentials, Endpoints, VendorError};
use crate::vendors::{ClientAuth, Parameters, Vendor};

/// Fetch a new token this long before the cached one expires.
const EARLY_SECONDS: i64 = 120;

#[derive(Clone)]
struct Cached {
    token: SecretString,
    expires_at: UnixTime,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

#[derive(Default)]
pub struct BackendTokens {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl BackendTokens {
    fn slot(&self, vendor: &str, environment: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry((vendor.to_owned(), environment.to_owned())).or_default().clone()
    }

    /// A valid backend token for the vendor's environment, from the cache when it has one.
    pub async fn token(
        &self,
        state: &AppState,
        vendor: &Vendor,
        environment: &str,
    ) -> Result<SecretString, VendorError> {
        let profile = &vendor.profile;
        let slot = self.slot(&profile.id, environment);
        // Holding the slot's lock across the fetch makes concurrent callers wait for one fetch.
        let mut cached = slot.lock().await;
        let now = state.clock.now();
        if let Some(c) = cached.as_ref().filter(|c| now < c.expires_at.saturating_sub(EARLY_SECONDS)) {
            return Ok(c.token.clone());
        }
        let env = profile.environment(environment).ok_or(VendorError::NotRegistered)?;
        let registration = vendor.backend.get(environment).ok_or(VendorError::NotRegistered)?;
        let endpoints = Endpoints::resolve(profile, env, &Parameters::new()).map_err(|_| VendorError::NotRegistered)?;
        let client = ClientCredentials {
            client_id: &registration.client_id,
            client_secret: registration.client_secret.as_ref(),
            auth: Some(profile.backend_auth.unwrap_or(ClientAuth::SecretInBody)),
        };
        let tokens =
            state.http.client_credentials(profile, &endpoints, &client, "", env.api_audience.as_deref()).await?;
        // Without an expiry, keep it for a conservative five minutes. Saturating: whatever the
        // vendor sent, no time computed from it can overflow.
        let expires_at = now.saturating_add(tokens.expires_in.unwrap_or(300));
        tracing::info!(vendor = %profile.id, environment, "backend token fetched");
        *cached = Some(Cached { token: tokens.access_token.clone(), expires_at });
        Ok(tokens.access_token)
    }
}
