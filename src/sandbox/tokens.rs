//! The in-memory authorization server state of one simulated vendor: pending consent
//! requests, authorization codes, grants, access tokens and rotating refresh tokens.
//!
//! A *grant* is what one consent produced; every token issued from its code, and from its
//! refreshes, belongs to it, and revoking it kills them all.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SecureRandom;

use super::pkce;
use crate::clock::UnixTime;

/// How a vendor's secrets look, and how long they live.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenProfile {
    pub(crate) code_prefix: &'static str,
    pub(crate) access_prefix: &'static str,
    pub(crate) refresh_prefix: &'static str,
    pub(crate) code_lifetime: i64,
    pub(crate) access_lifetime: i64,
    pub(crate) pending_lifetime: i64,
}

/// The random source failed; the caller answers 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomUnavailable;

/// `prefix` + base64url (no padding) of 32 random bytes.
pub(crate) fn random_token(
    rng: &dyn SecureRandom,
    prefix: &str,
) -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes).map_err(|_| RandomUnavailable)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A validated authorization request waiting for the user's decision.
#[derive(Clone, Debug)]
pub(crate) struct PendingAuthorization {
    pub(crate) client_id: String,
    /// Exactly as given, for the comparison at the token endpoint.
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) expires_at: UnixTime,
}

struct AuthorizationCode {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    code_challenge: String,
    expires_at: UnixTime,
    /// Set once redeemed: the grant the code produced.
    redeemed: Option<GrantId>,
}

type GrantId = u64;

struct Grant {
    client_id: String,
    scopes: Vec<String>,
    revoked: bool,
}

struct AccessToken {
    grant: GrantId,
    expires_at: UnixTime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    /// Exchanged for a newer one; presenting it again means it leaked.
    RotatedOut,
}

struct RefreshToken {
    grant: GrantId,
    state: RefreshState,
}

/// What a successful token request returns.
#[derive(Debug)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) expires_in: i64,
}

/// Why a token request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// `invalid_grant`, with a description that names no secret.
    InvalidGrant(&'static str),
    Random,
}

impl From<RandomUnavailable> for TokenError {
    fn from(_: RandomUnavailable) -> Self {
        TokenError::Random
    }
}

/// What a live access token grants.
#[derive(Debug, Clone)]
pub(crate) struct Authorized {
    pub(crate) scopes: Vec<String>,
}

/// Keep redeemed codes this long past their expiry, to detect a replay.
const CODE_MEMORY: i64 = 24 * 3600;
/// Forget expired access tokens this long past their expiry.
const ACCESS_MEMORY: i64 = 24 * 3600;
/// Sweep expired entries at most this often.
const SWEEP_EVERY: i64 = 60;

pub(crate) struct OAuthStore {
    profile: TokenProfile,
    pending: HashMap<String, PendingAuthorization>,
    codes: HashMap<String, AuthorizationCode>,
    grants: HashMap<GrantId, Grant>,
    next_grant: GrantId,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    reuse_detections: usize,
    last_sweep: UnixTime,
}

impl OAuthStore {
    pub(crate) fn new(profile: TokenProfile) -> Self {
        Self {
            profile,
            pending: HashMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            next_grant: 1,
            access: HashMap::new(),
            refresh: HashMap::new(),
            reuse_detections: 0,
            last_sweep: UnixTime::MIN,
        }
    }

    /// How many times a rotated-out refresh token was presented.
    pub(crate) fn reuse_detections(&self) -> usize {
        self.reuse_detections
    }

    /// Remembers a validated authorization request under a fresh random id.
    pub(crate) fn add_pending(
        &mut self,
        rng: &dyn SecureRandom,
        pending: PendingAuthorization,
        now: UnixTime,
    ) -> Result<String, RandomUnavailable> {
        self.sweep(now);
        let id = random_token(rng, "")?;
        self.pending.insert(id.clone(), pending);
        Ok(id)
    }

    /// Takes a pending request (single use); `None` if unknown, used or expired.
    pub(crate) fn take_pending(&mut self, id: &str, now: UnixTime) -> Option<PendingAuthorization> {
        let pending = self.pending.remove(id)?;
        (pending.expires_at > now).then_some(pending)
    }

    /// Issues an authorization code bound to the request's client, redirect URI, scopes and
    /// challenge.
    pub(crate) fn issue_code(
        &mut self,
        rng: &dyn SecureRandom,
        pending: &PendingAuthorization,
        now: UnixTime,
    ) -> Result<String, RandomUnavailable> {
        self.sweep(now);
        let code = random_token(rng, self.profile.code_prefix)?;
        self.codes.insert(
            code.clone(),
            AuthorizationCode {
                client_id: pending.client_id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                scopes: pending.scopes.clone(),
                code_challenge: pending.code_challenge.clone(),
                expires_at: now + self.profile.code_lifetime,
                redeemed: None,
            },
        );
        Ok(code)
    }

    /// `grant_type=authorization_code`. A code presented a second time fails and revokes
    /// every token issued from it (RFC 6749 §4.1.2).
    pub(crate) fn redeem_code(
        &mut self,
        rng: &dyn SecureRandom,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: UnixTime,
    ) -> Result<IssuedTokens, TokenError> {
        let Some(record) = self.codes.get(code) else {
            return Err(TokenError::InvalidGrant("unknown authorization code"));
        };
        if let Some(grant) = record.redeemed {
            self.revoke_grant(grant);
            return Err(TokenError::InvalidGrant(
                "authorization code already used; the tokens issued from it are revoked",
            ));
        }
        if record.expires_at <= now {
            return Err(TokenError::InvalidGrant("authorization code expired"));
        }
        if record.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "authorization code was issued to another client",
            ));
        }
        match redirect_uri {
            None => return Err(TokenError::InvalidGrant("redirect_uri is required")),
            Some(uri) if uri != record.redirect_uri => {
                return Err(TokenError::InvalidGrant(
                    "redirect_uri does not match the authorization request",
                ))
            }
            Some(_) => {}
        }
        let Some(verifier) = code_verifier else {
            return Err(TokenError::InvalidGrant("code_verifier is required"));
        };
        if !pkce::is_valid_verifier(verifier) {
            return Err(TokenError::InvalidGrant(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        if !pkce::verify_s256(verifier, &record.code_challenge) {
            return Err(TokenError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }

        let scopes = record.scopes.clone();
        let grant = self.next_grant;
        let issued = self.issue_tokens(rng, grant, now)?;
        self.next_grant += 1;
        self.grants.insert(
            grant,
            Grant {
                client_id: client_id.to_owned(),
                scopes,
                revoked: false,
            },
        );
        if let Some(record) = self.codes.get_mut(code) {
            record.redeemed = Some(grant);
        }
        Ok(issued)
    }

    /// `grant_type=refresh_token`, with rotation: the presented token dies and a new pair is
    /// issued. Presenting a rotated-out token revokes the whole grant (reuse detection).
    pub(crate) fn refresh(
        &mut self,
        rng: &dyn SecureRandom,
        refresh_token: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<IssuedTokens, TokenError> {
        self.sweep(now);
        let Some(record) = self.refresh.get(refresh_token) else {
            return Err(TokenError::InvalidGrant("unknown refresh token"));
        };
        let grant_id = record.grant;
        if record.state == RefreshState::RotatedOut {
            self.reuse_detections += 1;
            self.revoke_grant(grant_id);
            return Err(TokenError::InvalidGrant(
                "refresh token was already used; the grant is revoked",
            ));
        }
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(TokenError::InvalidGrant("unknown grant"));
        };
        if grant.revoked {
            return Err(TokenError::InvalidGrant("the grant was revoked"));
        }
        if grant.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "refresh token was issued to another client",
            ));
        }
        let issued = self.issue_tokens(rng, grant_id, now)?;
        if let Some(record) = self.refresh.get_mut(refresh_token) {
            record.state = RefreshState::RotatedOut;
        }
        Ok(issued)
    }

    /// RFC 7009: revokes the whole grant of an access or refresh token issued to
    /// `client_id`. Returns whether anything was revoked; unknown tokens are not an error.
    pub(crate) fn revoke(&mut self, token: &str, client_id: &str) -> bool {
        let grant = self
            .access
            .get(token)
            .map(|a| a.grant)
            .or_else(|| self.refresh.get(token).map(|r| r.grant));
        let Some(grant) = grant else { return false };
        let owned = self
            .grants
            .get(&grant)
            .is_some_and(|g| g.client_id == client_id);
        if owned {
            self.revoke_grant(grant);
        }
        owned
    }

    /// What a live (known, unexpired, unrevoked) access token grants.
    pub(crate) fn authorize(&self, access_token: &str, now: UnixTime) -> Option<Authorized> {
        let token = self.access.get(access_token)?;
        if token.expires_at <= now {
            return None;
        }
        let grant = self.grants.get(&token.grant)?;
        (!grant.revoked).then(|| Authorized {
            scopes: grant.scopes.clone(),
        })
    }

    fn revoke_grant(&mut self, grant: GrantId) {
        if let Some(grant) = self.grants.get_mut(&grant) {
            grant.revoked = true;
        }
    }

    fn issue_tokens(
        &mut self,
        rng: &dyn SecureRandom,
        grant: GrantId,
        now: UnixTime,
    ) -> Result<IssuedTokens, RandomUnavailable> {
        let access_token = random_token(rng, self.profile.access_prefix)?;
        let refresh_token = random_token(rng, self.profile.refresh_prefix)?;
        self.access.insert(
            access_token.clone(),
            AccessToken {
                grant,
                expires_at: now + self.profile.access_lifetime,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                grant,
                state: RefreshState::Live,
            },
        );
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.profile.access_lifetime,
        })
    }

    /// Forgets what can no longer matter: expired pending requests, long-expired codes and
    /// access tokens. Refresh tokens (and rotated-out ones, for reuse detection) stay.
    fn sweep(&mut self, now: UnixTime) {
        if now.saturating_sub(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.pending.retain(|_, p| p.expires_at > now);
        self.codes
            .retain(|_, c| c.expires_at.saturating_add(CODE_MEMORY) > now);
        self.access
            .retain(|_, a| a.expires_at.saturating_add(ACCESS_MEMORY) > now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    const PROFILE: TokenProfile = TokenProfile {
        code_prefix: "t_ac_",
        access_prefix: "t_at_",
        refresh_prefix: "t_rt_",
        code_lifetime: 60,
        access_lifetime: 3600,
        pending_lifetime: 600,
    };
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REDIRECT: &str = "http://127.0.0.1:8080/connections/yappointment/callback";
    const NOW: UnixTime = 1_700_000_000;

    fn pending() -> PendingAuthorization {
        PendingAuthorization {
            client_id: "client".into(),
            redirect_uri: REDIRECT.into(),
            scopes: vec!["bookings:read".into()],
            state: Some("st".into()),
            code_challenge: CHALLENGE.into(),
            expires_at: NOW + 600,
        }
    }

    /// A store with one redeemed code: (store, code, tokens).
    fn connected() -> (OAuthStore, String, IssuedTokens) {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(PROFILE);
        let code = store.issue_code(&rng, &pending(), NOW).unwrap();
        let tokens = store
            .redeem_code(
                &rng,
                &code,
                "client",
                Some(REDIRECT),
                Some(VERIFIER),
                NOW + 1,
            )
            .unwrap();
        (store, code, tokens)
    }

    #[test]
    fn tokens_look_like_the_vendors() {
        let (_, code, tokens) = connected();
        assert!(code.starts_with("t_ac_") && code.len() == 5 + 43);
        assert!(tokens.access_token.starts_with("t_at_"));
        assert!(tokens.refresh_token.starts_with("t_rt_"));
        assert_eq!(tokens.expires_in, 3600);
    }

    #[test]
    fn access_tokens_expire_by_the_clock() {
        let (store, _, tokens) = connected();
        let auth = store.authorize(&tokens.access_token, NOW + 3600).unwrap();
        assert_eq!(auth.scopes, vec!["bookings:read".to_owned()]);
        assert!(store.authorize(&tokens.access_token, NOW + 3601).is_none());
        assert!(store.authorize("t_at_unknown", NOW).is_none());
    }

    #[test]
    fn refresh_rotates_and_detects_reuse() {
        let rng = SystemRandom::new();
        let (mut store, _, first) = connected();

        let second = store
            .refresh(&rng, &first.refresh_token, "client", NOW + 10)
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert!(store.authorize(&second.access_token, NOW + 10).is_some());
        assert_eq!(store.reuse_detections(), 0);

        let third = store
            .refresh(&rng, &second.refresh_token, "client", NOW + 20)
            .unwrap();
        assert!(store.authorize(&third.access_token, NOW + 20).is_some());

        // The rotated-out first refresh token comes back: the whole grant dies.
        let err = store
            .refresh(&rng, &first.refresh_token, "client", NOW + 30)
            .unwrap_err();
        assert!(matches!(err, TokenError::InvalidGrant(_)));
        assert_eq!(store.reuse_detections(), 1);
        for access in [
            &first.access_token,
            &second.access_token,
            &third.access_token,
        ] {
            assert!(store.authorize(access, NOW + 30).is_none());
        }
        // The newest refresh token died with the grant, and is not itself a reuse.
        assert!(store
            .refresh(&rng, &third.refresh_token, "client", NOW + 40)
            .is_err());
        assert_eq!(store.reuse_detections(), 1);
        // Every further presentation of a rotated-out token counts again.
        assert!(store
            .refresh(&rng, &second.refresh_token, "client", NOW + 50)
            .is_err());
        assert_eq!(store.reuse_detections(), 2);
    }

    #[test]
    fn refresh_refuses_unknown_tokens_and_other_clients() {
        let rng = SystemRandom::new();
        let (mut store, _, first) = connected();
        assert_eq!(
            store.refresh(&rng, "t_rt_nope", "client", NOW).unwrap_err(),
            TokenError::InvalidGrant("unknown refresh token")
        );
        assert!(store
            .refresh(&rng, &first.refresh_token, "other", NOW)
            .is_err());
        // A refused attempt does not rotate the token out.
        assert!(store
            .refresh(&rng, &first.refresh_token, "client", NOW)
            .is_ok());
        assert_eq!(store.reuse_detections(), 0);
    }

    #[test]
    fn code_replay_revokes_its_tokens() {
        let rng = SystemRandom::new();
        let (mut store, code, first) = connected();
        let refreshed = store
            .refresh(&rng, &first.refresh_token, "client", NOW + 5)
            .unwrap();
        let err = store
            .redeem_code(
                &rng,
                &code,
                "client",
                Some(REDIRECT),
                Some(VERIFIER),
                NOW + 6,
            )
            .unwrap_err();
        assert!(matches!(err, TokenError::InvalidGrant(_)));
        assert!(store.authorize(&first.access_token, NOW + 6).is_none());
        assert!(store.authorize(&refreshed.access_token, NOW + 6).is_none());
        assert!(store
            .refresh(&rng, &refreshed.refresh_token, "client", NOW + 7)
            .is_err());
        assert_eq!(store.reuse_detections(), 0);
    }

    #[test]
    fn code_checks_binding_expiry_and_pkce() {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(PROFILE);
        let code = store.issue_code(&rng, &pending(), NOW).unwrap();
        let redeem = |store: &mut OAuthStore, client, uri, verifier, at| {
            store.redeem_code(&rng, &code, client, uri, verifier, at)
        };
        assert!(redeem(&mut store, "other", Some(REDIRECT), Some(VERIFIER), NOW).is_err());
        assert!(redeem(&mut store, "client", None, Some(VERIFIER), NOW).is_err());
        assert!(redeem(
            &mut store,
            "client",
            Some("http://127.0.0.1:8080/other"),
            Some(VERIFIER),
            NOW
        )
        .is_err());
        assert!(redeem(&mut store, "client", Some(REDIRECT), None, NOW).is_err());
        assert!(redeem(&mut store, "client", Some(REDIRECT), Some(CHALLENGE), NOW).is_err());
        assert!(redeem(
            &mut store,
            "client",
            Some(REDIRECT),
            Some(VERIFIER),
            NOW + 60
        )
        .is_err());
        // None of the refusals consumed the code; it is simply expired now.
        assert!(redeem(
            &mut store,
            "client",
            Some(REDIRECT),
            Some(VERIFIER),
            NOW + 59
        )
        .is_ok());
        assert!(store
            .redeem_code(
                &rng,
                "t_ac_unknown",
                "client",
                Some(REDIRECT),
                Some(VERIFIER),
                NOW
            )
            .is_err());
    }

    #[test]
    fn revoke_kills_the_grant_from_either_token() {
        let rng = SystemRandom::new();
        let (mut store, _, first) = connected();
        assert!(!store.revoke(&first.access_token, "other"));
        assert!(store.authorize(&first.access_token, NOW).is_some());
        assert!(store.revoke(&first.access_token, "client"));
        assert!(store.authorize(&first.access_token, NOW).is_none());
        assert!(store
            .refresh(&rng, &first.refresh_token, "client", NOW)
            .is_err());
        assert!(!store.revoke("t_at_unknown", "client"));

        let (mut store, _, first) = connected();
        assert!(store.revoke(&first.refresh_token, "client"));
        assert!(store.authorize(&first.access_token, NOW).is_none());
    }

    #[test]
    fn pending_requests_are_single_use_and_expire() {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(PROFILE);
        let id = store.add_pending(&rng, pending(), NOW).unwrap();
        assert!(store.take_pending(&id, NOW).is_some());
        assert!(store.take_pending(&id, NOW).is_none());
        let id = store.add_pending(&rng, pending(), NOW).unwrap();
        assert!(store.take_pending(&id, NOW + 600).is_none());
    }
}
