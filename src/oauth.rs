//! The authorization-code flow's pure parts: the authorize URL with PKCE and state, and the
//! checks a callback must pass. No I/O here; time is passed in.

use std::fmt;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::clock::UnixTime;
use crate::vendors::VendorProfile;

/// How long a started flow may take before its state is refused.
pub const FLOW_TTL_SECONDS: i64 = 10 * 60;
/// 32 random bytes: 256 bits of state.
const STATE_BYTES: u32 = 32;

pub struct AuthorizationRequest {
    pub url: Url,
    pub state: SecretString,
    pub verifier: SecretString,
    pub expires_at: UnixTime,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Builds the URL the browser is sent to, with a fresh state and PKCE S256 challenge.
pub fn authorization_request(
    profile: &VendorProfile,
    authorize_url: &Url,
    client_id: &str,
    redirect_uri: &Url,
    scopes: &[String],
    extra_params: &[(String, String)],
    now: UnixTime,
) -> anyhow::Result<AuthorizationRequest> {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::from_url(authorize_url.clone()))
        .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(|| CsrfToken::new_random_len(STATE_BYTES))
        .add_scopes(scopes.iter().cloned().map(Scope::new));
    if profile.pkce {
        request = request.set_pkce_challenge(challenge);
    }
    for (name, value) in profile.extra_authorize_params.iter().chain(extra_params) {
        request = request.add_extra_param(name.clone(), value.clone());
    }
    let (url, state) = request.url();
    Ok(AuthorizationRequest {
        url,
        state: SecretString::from(state.secret().clone()),
        verifier: SecretString::from(verifier.secret().clone()),
        expires_at: now + FLOW_TTL_SECONDS,
    })
}

/// What a vendor sends back to a callback. `Debug` hides the code and the state.
#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The authorization server's issuer identifier (RFC 9207), when it sends one.
    pub iss: Option<String>,
}

impl fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("error", &self.error)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// What the callback carries, once its shape is checked.
pub enum CallbackOutcome {
    Code { code: SecretString, state: SecretString, issuer: Option<String> },
    Denied { state: SecretString, error: String, description: Option<String>, issuer: Option<String> },
}

impl CallbackOutcome {
    /// The `iss` the authorization server sent (RFC 9207), on a code or an error alike.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            CallbackOutcome::Code { issuer, .. } | CallbackOutcome::Denied { issuer, .. } => issuer.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("the callback has no state")]
    MissingState,
    #[error("the callback has neither a code nor an error")]
    MissingCode,
    #[error("the state is unknown, already used, or belongs to another session or vendor")]
    UnknownState,
    #[error("the flow expired")]
    Expired,
    #[error("the flow was started for another clinic")]
    WrongClinic,
    #[error("the authorization server declares an issuer, and the callback carries no `iss`")]
    MissingIssuer,
    #[error("the callback's `iss` is not the authorization server's issuer")]
    WrongIssuer,
}

impl CallbackQuery {
    pub fn into_outcome(self) -> Result<CallbackOutcome, CallbackError> {
        let state = self.state.filter(|s| !s.is_empty() && s.len() <= 512).ok_or(CallbackError::MissingState)?;
        let state = SecretString::from(state);
        // Kept whole (it is compared, never shown), but not without bound.
        let issuer = self.iss.map(|i| if i.len() > 2048 { String::new() } else { i });
        if let Some(error) = self.error {
            let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            let description = self.error_description.map(|d| d.chars().take(300).collect());
            return Ok(CallbackOutcome::Denied { state, error, description, issuer });
        }
        let code = self.code.filter(|c| !c.is_empty() && c.len() <= 2048).ok_or(CallbackError::MissingCode)?;
        Ok(CallbackOutcome::Code { code: SecretString::from(code), state, issuer })
    }
}

/// RFC 9207 §2.4: when the environment the flow was started in declares an issuer, the callback
/// (a code or an error alike) must carry `iss`, equal to it by simple string comparison.
/// Without a declared issuer, an `iss` is not required (the vendors' docs do not promise one).
pub fn check_issuer(expected: Option<&str>, presented: Option<&str>) -> Result<(), CallbackError> {
    match (expected, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(CallbackError::MissingIssuer),
        (Some(expected), Some(presented)) if expected == presented => Ok(()),
        (Some(_), Some(_)) => Err(CallbackError::WrongIssuer),
    }
}

/// [`check_issuer`] for a flow of `profile` started in its environment `environment`.
pub fn check_callback_issuer(
    profile: &VendorProfile,
    environment: &str,
    outcome: &CallbackOutcome,
) -> Result<(), CallbackError> {
    let expected = profile.environment(environment).and_then(|e| e.issuer.as_deref());
    check_issuer(expected, outcome.issuer())
}

/// The checks on a flow taken out of storage by its state.
pub fn check_flow(
    flow_clinic: Option<i64>,
    flow_expires_at: UnixTime,
    clinic_id: Option<i64>,
    now: UnixTime,
) -> Result<(), CallbackError> {
    if now >= flow_expires_at {
        return Err(CallbackError::Expired);
    }
    if flow_clinic != clinic_id {
        return Err(CallbackError::WrongClinic);
    }
    Ok(())
}

pub fn state_hash(state: &SecretString) -> String {
    crate::vault::lookup_hash(state.expose_secret())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vendors::builtin;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn request() -> AuthorizationRequest {
        let profile = builtin::yappointment();
        let authorize = Url::parse("https://yappointment.com/oauth/authorize").unwrap();
        let redirect = Url::parse("https://app.example/connections/yappointment/callback").unwrap();
        let extra = [("audience".to_owned(), "A".to_owned())];
        authorization_request(&profile, &authorize, "cid", &redirect, &profile.scopes, &extra, 1_000).unwrap()
    }

    #[test]
    fn authorize_url_carries_pkce_s256_and_a_long_state() {
        let r = request();
        let q: std::collections::HashMap<String, String> = r.url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["audience"], "A");
        assert_eq!(q["scope"], "bookings:read services:read calendars:read customers:read");
        assert_eq!(q["state"], r.state.expose_secret());
        assert!(URL_SAFE_NO_PAD.decode(r.state.expose_secret()).unwrap().len() * 8 >= 128);
        let digest = ring::digest::digest(&ring::digest::SHA256, r.verifier.expose_secret().as_bytes());
        assert_eq!(q["code_challenge"], URL_SAFE_NO_PAD.encode(digest));
        assert!(!r.url.as_str().contains(r.verifier.expose_secret()));
        assert_eq!(r.expires_at, 1_000 + FLOW_TTL_SECONDS);
    }

    #[test]
    fn states_and_verifiers_are_fresh_each_time() {
        let (a, b) = (request(), request());
        assert_ne!(a.state.expose_secret(), b.state.expose_secret());
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
    }

    #[test]
    fn flow_checks() {
        assert_eq!(check_flow(Some(1), 100, Some(1), 99), Ok(()));
        assert_eq!(check_flow(Some(1), 100, Some(1), 100), Err(CallbackError::Expired));
        assert_eq!(check_flow(Some(1), 100, Some(2), 99), Err(CallbackError::WrongClinic));
        assert_eq!(check_flow(None, 100, Some(2), 99), Err(CallbackError::WrongClinic));
        assert_eq!(check_flow(None, 100, None, 99), Ok(()));
    }

    #[test]
    fn a_declared_issuer_must_come_back_exactly() {
        let issuer = "https://auth.example.com";
        assert_eq!(check_issuer(Some(issuer), Some(issuer)), Ok(()));
        assert_eq!(check_issuer(Some(issuer), None), Err(CallbackError::MissingIssuer));
        for other in [
            "https://auth.example.com/",
            "https://AUTH.example.com",
            "http://auth.example.com",
            "https://auth.example.com.evil.example",
            "https://evil.example",
            "",
        ] {
            assert_eq!(check_issuer(Some(issuer), Some(other)), Err(CallbackError::WrongIssuer), "{other}");
        }
        assert_eq!(check_issuer(None, None), Ok(()));
        assert_eq!(check_issuer(None, Some("https://anything.example")), Ok(()));
    }

    #[test]
    fn the_issuer_is_read_from_codes_and_errors_and_checked_per_environment() {
        let mut profile = builtin::zocdoc();
        profile.environments[1].issuer = Some("https://sandbox-issuer.example".into());
        let outcome = |iss: Option<&str>, error: Option<&str>| {
            CallbackQuery {
                code: Some("c".into()),
                state: Some("s".into()),
                error: error.map(str::to_owned),
                iss: iss.map(str::to_owned),
                ..Default::default()
            }
            .into_outcome()
            .unwrap()
        };
        let good = outcome(Some("https://sandbox-issuer.example"), None);
        assert_eq!(check_callback_issuer(&profile, "sandbox", &good), Ok(()));
        let denied = outcome(None, Some("access_denied"));
        assert_eq!(check_callback_issuer(&profile, "sandbox", &denied), Err(CallbackError::MissingIssuer));
        let wrong = outcome(Some("https://production-issuer.example"), Some("access_denied"));
        assert_eq!(check_callback_issuer(&profile, "sandbox", &wrong), Err(CallbackError::WrongIssuer));
        // Production declares none: nothing is required there.
        assert_eq!(check_callback_issuer(&profile, "production", &denied), Ok(()));
        let huge = outcome(Some(&"x".repeat(5000)), None);
        assert_eq!(check_callback_issuer(&profile, "sandbox", &huge), Err(CallbackError::WrongIssuer));
    }

    #[test]
    fn callback_shapes() {
        let q = CallbackQuery { code: Some("c".into()), state: None, ..Default::default() };
        assert!(matches!(q.into_outcome(), Err(CallbackError::MissingState)));
        let q = CallbackQuery { state: Some("s".into()), ..Default::default() };
        assert!(matches!(q.into_outcome(), Err(CallbackError::MissingCode)));
        let q = CallbackQuery {
            state: Some("s".into()),
            error: Some("access_denied<script>".into()),
            ..Default::default()
        };
        match q.into_outcome() {
            Ok(CallbackOutcome::Denied { error, .. }) => assert_eq!(error, "access_deniedscript"),
            _ => unreachable!("expected a denial"),
        }
        let shown = format!(
            "{:?}",
            CallbackQuery { code: Some("yapp_ac_x".into()), state: Some("st".into()), ..Default::default() }
        );
        assert!(!shown.contains("yapp_ac_x") && !shown.contains("st\""), "{shown}");
    }
}
