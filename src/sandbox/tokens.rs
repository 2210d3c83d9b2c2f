//! The in-memory authorization server state of one simulated vendor: pending consent
//! requests, authorization codes, grants, access tokens and refresh tokens.
//!
//! A *grant* is what one consent (or one client-credentials / anonymous-user request)
//! produced; every token issued from it, and from its refreshes, belongs to it, and revoking
//! it kills them all. How refresh tokens are issued, rotated and expired is part of the
//! vendor's [`TokenProfile`].

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SecureRandom;

use super::pkce;
use crate::clock::UnixTime;

/// How a vendor's access tokens look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenStyle {
    /// `prefix` + base64url (no padding) of 32 random bytes.
    Base64Url,
    /// `prefix` + 40 lower-case hex digits (20 random bytes), as Docplanner's look.
    Hex40,
}

/// When the token endpoint hands out a refresh token with an authorization code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshIssue {
    Always,
    /// Only when this scope was granted (Zocdoc: `offline_access`).
    WithScope(&'static str),
}

/// What using a refresh token does to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rotation {
    /// A new refresh token each time; presenting a rotated-out one again means it leaked,
    /// and the whole grant is revoked (yAppointment).
    RotateDetectReuse,
    /// A new refresh token each time; a rotated-out one is simply dead (DrChrono).
    Rotate,
    /// The same refresh token stays valid (Zocdoc, Qmatic).
    Keep,
}

/// How a vendor's secrets look, and how long they live.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenProfile {
    pub(crate) code_prefix: &'static str,
    /// Of access tokens issued from a code or a refresh (direct grants name their own).
    pub(crate) access_prefix: &'static str,
    pub(crate) refresh_prefix: &'static str,
    pub(crate) access_style: TokenStyle,
    pub(crate) code_lifetime: i64,
    pub(crate) access_lifetime: i64,
    pub(crate) pending_lifetime: i64,
    pub(crate) refresh_issue: RefreshIssue,
    pub(crate) rotation: Rotation,
    /// A refresh token unused this long is dead.
    pub(crate) refresh_idle_lifetime: Option<i64>,
    /// A grant's refresh tokens die this long after the grant was made, used or not.
    pub(crate) refresh_max_lifetime: Option<i64>,
}

impl TokenProfile {
    /// A profile with the common defaults: 60 s codes, 1 h access tokens, 10 min consent,
    /// base64url tokens, a refresh token always, rotated with reuse detection, no refresh
    /// expiry.
    pub(crate) const fn new(
        code_prefix: &'static str,
        access_prefix: &'static str,
        refresh_prefix: &'static str,
    ) -> Self {
        Self {
            code_prefix,
            access_prefix,
            refresh_prefix,
            access_style: TokenStyle::Base64Url,
            code_lifetime: 60,
            access_lifetime: 3600,
            pending_lifetime: 600,
            refresh_issue: RefreshIssue::Always,
            rotation: Rotation::RotateDetectReuse,
            refresh_idle_lifetime: None,
            refresh_max_lifetime: None,
        }
    }
}

/// The random source failed; the caller answers 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomUnavailable;

/// `prefix` + base64url (no padding) of 32 random bytes.
pub(crate) fn random_token(rng: &dyn SecureRandom, prefix: &str) -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes).map_err(|_| RandomUnavailable)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// `prefix` + 40 lower-case hex digits.
fn random_hex_token(rng: &dyn SecureRandom, prefix: &str) -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 20];
    rng.fill(&mut bytes).map_err(|_| RandomUnavailable)?;
    let mut token = String::with_capacity(prefix.len() + 40);
    token.push_str(prefix);
    for b in bytes {
        let _ = write!(token, "{b:02x}");
    }
    Ok(token)
}

/// A validated authorization request waiting for the user's decision.
#[derive(Clone, Debug)]
pub(crate) struct PendingAuthorization {
    pub(crate) client_id: String,
    /// Exactly as given, for the comparison at the token endpoint.
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) state: Option<String>,
    /// `None` only where PKCE is optional and the client sent no challenge.
    pub(crate) code_challenge: Option<String>,
    /// Zocdoc: the anonymous session to link to the user who signs in.
    pub(crate) anonymous_token: Option<String>,
    /// Zocdoc: the email the sign-in form was pre-filled with.
    pub(crate) login_hint: Option<String>,
    pub(crate) expires_at: UnixTime,
}

struct AuthorizationCode {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    code_challenge: Option<String>,
    subject: Option<String>,
    anonymous_token: Option<String>,
    expires_at: UnixTime,
    /// Set once redeemed: the grant the code produced.
    redeemed: Option<GrantId>,
}

type GrantId = u64;

/// Who a grant's tokens speak for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantKind {
    /// A signed-in user, through an authorization code.
    User,
    /// The client itself, through client credentials.
    Client,
    /// An anonymous end user (Zocdoc's anonymous-user tokens).
    Anonymous,
}

struct Grant {
    client_id: String,
    kind: GrantKind,
    scopes: Vec<String>,
    subject: Option<String>,
    audience: Option<String>,
    /// The anonymous token the user's sign-in was linked to.
    anonymous_token: Option<String>,
    access_prefix: &'static str,
    created_at: UnixTime,
    revoked: bool,
}

struct AccessToken {
    grant: GrantId,
    expires_at: UnixTime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    /// Exchanged for a newer one.
    RotatedOut,
}

struct RefreshToken {
    grant: GrantId,
    state: RefreshState,
    last_used: UnixTime,
}

/// What a successful token request returns.
#[derive(Debug)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    /// `None` when the vendor issues none for this grant.
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in: i64,
    /// What the grant covers.
    pub(crate) scopes: Vec<String>,
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
    pub(crate) kind: GrantKind,
    pub(crate) scopes: Vec<String>,
    /// The user (Zocdoc: the email they signed in with) or account the grant is for.
    pub(crate) subject: Option<String>,
    /// Where the grant is valid (Docplanner: the domain; Qmatic: the region).
    pub(crate) audience: Option<String>,
    /// Whether the user's sign-in was linked to an anonymous session.
    pub(crate) linked_anonymous: bool,
}

/// A grant made without an authorization code: client credentials or an anonymous user.
pub(crate) struct DirectGrant<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) kind: GrantKind,
    pub(crate) scopes: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) access_prefix: &'static str,
    pub(crate) with_refresh: bool,
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

    /// How many times a rotated-out refresh token was presented (reuse detection only).
    pub(crate) fn refresh_token_is_live(&self, token: &str) -> bool {
        self.refresh
            .get(token)
            .is_some_and(|r| r.state == RefreshState::Live && self.grants.get(&r.grant).is_some_and(|g| !g.revoked))
    }

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

    /// Issues an authorization code bound to the request's client, redirect URI, scopes,
    /// challenge and anonymous token, and to the user who approved it (`subject`).
    pub(crate) fn issue_code(
        &mut self,
        rng: &dyn SecureRandom,
        pending: &PendingAuthorization,
        subject: Option<&str>,
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
                subject: subject.map(str::to_owned),
                anonymous_token: pending.anonymous_token.clone(),
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
            return Err(TokenError::InvalidGrant("authorization code was issued to another client"));
        }
        match redirect_uri {
            None => return Err(TokenError::InvalidGrant("redirect_uri is required")),
            Some(uri) if uri != record.redirect_uri => {
                return Err(TokenError::InvalidGrant("redirect_uri does not match the authorization request"))
            }
            Some(_) => {}
        }
        match (&record.code_challenge, code_verifier) {
            (Some(_), None) => return Err(TokenError::InvalidGrant("code_verifier is required")),
            (Some(challenge), Some(verifier)) => {
                if !pkce::is_valid_verifier(verifier) {
                    return Err(TokenError::InvalidGrant("code_verifier must be 43 to 128 unreserved characters"));
                }
                if !pkce::verify_s256(verifier, challenge) {
                    return Err(TokenError::InvalidGrant("code_verifier does not match the code_challenge"));
                }
            }
            (None, Some(_)) => {
                return Err(TokenError::InvalidGrant(
                    "code_verifier given, but the authorization request had no code_challenge",
                ))
            }
            (None, None) => {}
        }

        let with_refresh = match self.profile.refresh_issue {
            RefreshIssue::Always => true,
            RefreshIssue::WithScope(scope) => record.scopes.iter().any(|s| s == scope),
        };
        let grant = Grant {
            client_id: client_id.to_owned(),
            kind: GrantKind::User,
            scopes: record.scopes.clone(),
            subject: record.subject.clone(),
            audience: None,
            anonymous_token: record.anonymous_token.clone(),
            access_prefix: self.profile.access_prefix,
            created_at: now,
            revoked: false,
        };
        let (grant, issued) = self.add_grant(rng, grant, with_refresh, now)?;
        if let Some(record) = self.codes.get_mut(code) {
            record.redeemed = Some(grant);
        }
        Ok(issued)
    }

    /// A grant without a code: client credentials, or an anonymous user.
    pub(crate) fn issue_direct(
        &mut self,
        rng: &dyn SecureRandom,
        direct: DirectGrant<'_>,
        now: UnixTime,
    ) -> Result<IssuedTokens, RandomUnavailable> {
        self.sweep(now);
        let grant = Grant {
            client_id: direct.client_id.to_owned(),
            kind: direct.kind,
            scopes: direct.scopes,
            subject: direct.subject,
            audience: direct.audience,
            anonymous_token: None,
            access_prefix: direct.access_prefix,
            created_at: now,
            revoked: false,
        };
        self.add_grant(rng, grant, direct.with_refresh, now).map(|(_, issued)| issued)
    }

    fn add_grant(
        &mut self,
        rng: &dyn SecureRandom,
        grant: Grant,
        with_refresh: bool,
        now: UnixTime,
    ) -> Result<(GrantId, IssuedTokens), RandomUnavailable> {
        let id = self.next_grant;
        let access_prefix = grant.access_prefix;
        let scopes = grant.scopes.clone();
        // Generate before inserting anything, so a failing random source leaves no trace.
        let access_token = self.new_access_token(rng, access_prefix)?;
        let refresh_token = if with_refresh { Some(random_token(rng, self.profile.refresh_prefix)?) } else { None };
        self.next_grant += 1;
        self.grants.insert(id, grant);
        self.access
            .insert(access_token.clone(), AccessToken { grant: id, expires_at: now + self.profile.access_lifetime });
        if let Some(refresh) = &refresh_token {
            self.refresh.insert(refresh.clone(), RefreshToken { grant: id, state: RefreshState::Live, last_used: now });
        }
        Ok((id, IssuedTokens { access_token, refresh_token, expires_in: self.profile.access_lifetime, scopes }))
    }

    fn new_access_token(&self, rng: &dyn SecureRandom, prefix: &str) -> Result<String, RandomUnavailable> {
        match self.profile.access_style {
            TokenStyle::Base64Url => random_token(rng, prefix),
            TokenStyle::Hex40 => random_hex_token(rng, prefix),
        }
    }

    /// `grant_type=refresh_token`, following the profile's rotation and expiry rules.
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
        let last_used = record.last_used;
        if record.state == RefreshState::RotatedOut {
            if self.profile.rotation == Rotation::RotateDetectReuse {
                self.reuse_detections += 1;
                self.revoke_grant(grant_id);
                return Err(TokenError::InvalidGrant("refresh token was already used; the grant is revoked"));
            }
            return Err(TokenError::InvalidGrant("refresh token was already used"));
        }
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(TokenError::InvalidGrant("unknown grant"));
        };
        if grant.revoked {
            return Err(TokenError::InvalidGrant("the grant was revoked"));
        }
        if grant.client_id != client_id {
            return Err(TokenError::InvalidGrant("refresh token was issued to another client"));
        }
        if self.profile.refresh_idle_lifetime.is_some_and(|idle| last_used.saturating_add(idle) <= now) {
            return Err(TokenError::InvalidGrant("refresh token expired after a period of inactivity"));
        }
        if self.profile.refresh_max_lifetime.is_some_and(|max| grant.created_at.saturating_add(max) <= now) {
            return Err(TokenError::InvalidGrant("refresh token reached its maximum lifetime"));
        }
        let access_prefix = grant.access_prefix;
        let scopes = grant.scopes.clone();

        let access_token = self.new_access_token(rng, access_prefix)?;
        let refresh_out = match self.profile.rotation {
            Rotation::Keep => refresh_token.to_owned(),
            Rotation::Rotate | Rotation::RotateDetectReuse => random_token(rng, self.profile.refresh_prefix)?,
        };
        self.access.insert(
            access_token.clone(),
            AccessToken { grant: grant_id, expires_at: now + self.profile.access_lifetime },
        );
        if let Some(record) = self.refresh.get_mut(refresh_token) {
            match self.profile.rotation {
                Rotation::Keep => record.last_used = now,
                Rotation::Rotate | Rotation::RotateDetectReuse => record.state = RefreshState::RotatedOut,
            }
        }
        if refresh_out != refresh_token {
            self.refresh.insert(
                refresh_out.clone(),
                RefreshToken { grant: grant_id, state: RefreshState::Live, last_used: now },
            );
        }
        Ok(IssuedTokens {
            access_token,
            refresh_token: Some(refresh_out),
            expires_in: self.profile.access_lifetime,
            scopes,
        })
    }

    /// RFC 7009: revokes the whole grant of an access or refresh token issued to
    /// `client_id`. Returns whether anything was revoked; unknown tokens are not an error.
    pub(crate) fn revoke(&mut self, token: &str, client_id: &str) -> bool {
        let grant = self.access.get(token).map(|a| a.grant).or_else(|| self.refresh.get(token).map(|r| r.grant));
        let Some(grant) = grant else { return false };
        let owned = self.grants.get(&grant).is_some_and(|g| g.client_id == client_id);
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
            kind: grant.kind,
            scopes: grant.scopes.clone(),
            subject: grant.subject.clone(),
            audience: grant.audience.clone(),
            linked_anonymous: grant.anonymous_token.is_some(),
        })
    }

    /// Revokes every grant at once, as the vendor does when the app is uninstalled from an
    /// account or the vendor's data is reset: every access and refresh token issued so far is
    /// dead. Returns how many grants were live.
    pub(crate) fn revoke_all(&mut self) -> usize {
        let mut revoked = 0;
        for grant in self.grants.values_mut().filter(|g| !g.revoked) {
            grant.revoked = true;
            revoked += 1;
        }
        revoked
    }

    fn revoke_grant(&mut self, grant: GrantId) {
        if let Some(grant) = self.grants.get_mut(&grant) {
            grant.revoked = true;
        }
    }

    /// Forgets what can no longer matter: expired pending requests, long-expired codes and
    /// access tokens. Refresh tokens (and rotated-out ones, for reuse detection) stay.
    fn sweep(&mut self, now: UnixTime) {
        if now.saturating_sub(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.pending.retain(|_, p| p.expires_at > now);
        self.codes.retain(|_, c| c.expires_at.saturating_add(CODE_MEMORY) > now);
        self.access.retain(|_, a| a.expires_at.saturating_add(ACCESS_MEMORY) > now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    const PROFILE: TokenProfile = TokenProfile::new("t_ac_", "t_at_", "t_rt_");
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
            code_challenge: Some(CHALLENGE.into()),
            anonymous_token: None,
            login_hint: None,
            expires_at: NOW + 600,
        }
    }

    /// A store with one redeemed code: (store, code, tokens).
    fn connected() -> (OAuthStore, String, IssuedTokens) {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(PROFILE);
        let code = store.issue_code(&rng, &pending(), None, NOW).unwrap();
        let tokens = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW + 1).unwrap();
        (store, code, tokens)
    }

    #[test]
    fn tokens_look_like_the_vendors() {
        let (_, code, tokens) = connected();
        assert!(code.starts_with("t_ac_") && code.len() == 5 + 43);
        assert!(tokens.access_token.starts_with("t_at_"));
        assert!(tokens.refresh_token.as_ref().unwrap().starts_with("t_rt_"));
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

        let second = store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW + 10).unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert!(store.authorize(&second.access_token, NOW + 10).is_some());
        assert_eq!(store.reuse_detections(), 0);

        let third = store.refresh(&rng, second.refresh_token.as_deref().unwrap(), "client", NOW + 20).unwrap();
        assert!(store.authorize(&third.access_token, NOW + 20).is_some());

        // The rotated-out first refresh token comes back: the whole grant dies.
        let err = store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW + 30).unwrap_err();
        assert!(matches!(err, TokenError::InvalidGrant(_)));
        assert_eq!(store.reuse_detections(), 1);
        for access in [&first.access_token, &second.access_token, &third.access_token] {
            assert!(store.authorize(access, NOW + 30).is_none());
        }
        // The newest refresh token died with the grant, and is not itself a reuse.
        assert!(store.refresh(&rng, third.refresh_token.as_deref().unwrap(), "client", NOW + 40).is_err());
        assert_eq!(store.reuse_detections(), 1);
        // Every further presentation of a rotated-out token counts again.
        assert!(store.refresh(&rng, second.refresh_token.as_deref().unwrap(), "client", NOW + 50).is_err());
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
        assert!(store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "other", NOW).is_err());
        // A refused attempt does not rotate the token out.
        assert!(store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW).is_ok());
        assert_eq!(store.reuse_detections(), 0);
    }

    #[test]
    fn code_replay_revokes_its_tokens() {
        let rng = SystemRandom::new();
        let (mut store, code, first) = connected();
        let refreshed = store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW + 5).unwrap();
        let err = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW + 6).unwrap_err();
        assert!(matches!(err, TokenError::InvalidGrant(_)));
        assert!(store.authorize(&first.access_token, NOW + 6).is_none());
        assert!(store.authorize(&refreshed.access_token, NOW + 6).is_none());
        assert!(store.refresh(&rng, refreshed.refresh_token.as_deref().unwrap(), "client", NOW + 7).is_err());
        assert_eq!(store.reuse_detections(), 0);
    }

    #[test]
    fn code_checks_binding_expiry_and_pkce() {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(PROFILE);
        let code = store.issue_code(&rng, &pending(), None, NOW).unwrap();
        let redeem = |store: &mut OAuthStore, client, uri, verifier, at| {
            store.redeem_code(&rng, &code, client, uri, verifier, at)
        };
        assert!(redeem(&mut store, "other", Some(REDIRECT), Some(VERIFIER), NOW).is_err());
        assert!(redeem(&mut store, "client", None, Some(VERIFIER), NOW).is_err());
        assert!(redeem(&mut store, "client", Some("http://127.0.0.1:8080/other"), Some(VERIFIER), NOW).is_err());
        assert!(redeem(&mut store, "client", Some(REDIRECT), None, NOW).is_err());
        assert!(redeem(&mut store, "client", Some(REDIRECT), Some(CHALLENGE), NOW).is_err());
        assert!(redeem(&mut store, "client", Some(REDIRECT), Some(VERIFIER), NOW + 60).is_err());
        // None of the refusals consumed the code; it is simply expired now.
        assert!(redeem(&mut store, "client", Some(REDIRECT), Some(VERIFIER), NOW + 59).is_ok());
        assert!(store.redeem_code(&rng, "t_ac_unknown", "client", Some(REDIRECT), Some(VERIFIER), NOW).is_err());
    }

    #[test]
    fn revoke_kills_the_grant_from_either_token() {
        let rng = SystemRandom::new();
        let (mut store, _, first) = connected();
        assert!(!store.revoke(&first.access_token, "other"));
        assert!(store.authorize(&first.access_token, NOW).is_some());
        assert!(store.revoke(&first.access_token, "client"));
        assert!(store.authorize(&first.access_token, NOW).is_none());
        assert!(store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW).is_err());
        assert!(!store.revoke("t_at_unknown", "client"));

        let (mut store, _, first) = connected();
        assert!(store.revoke(first.refresh_token.as_deref().unwrap(), "client"));
        assert!(store.authorize(&first.access_token, NOW).is_none());
    }

    #[test]
    fn revoking_everything_kills_every_grant_but_not_later_ones() {
        let rng = SystemRandom::new();
        let (mut store, _, first) = connected();
        assert_eq!(store.revoke_all(), 1);
        assert!(store.authorize(&first.access_token, NOW).is_none());
        assert_eq!(
            store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW).unwrap_err(),
            TokenError::InvalidGrant("the grant was revoked")
        );
        assert_eq!(store.revoke_all(), 0, "nothing live is left");
        let direct = DirectGrant {
            client_id: "client",
            kind: GrantKind::Client,
            scopes: vec![],
            subject: None,
            audience: None,
            access_prefix: "t_cc_",
            with_refresh: false,
        };
        let later = store.issue_direct(&rng, direct, NOW).unwrap();
        assert!(store.authorize(&later.access_token, NOW).is_some());
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

    #[test]
    fn refresh_only_with_the_named_scope_and_kept_with_expiry() {
        let rng = SystemRandom::new();
        let profile = TokenProfile {
            refresh_issue: RefreshIssue::WithScope("offline_access"),
            rotation: Rotation::Keep,
            refresh_idle_lifetime: Some(100),
            refresh_max_lifetime: Some(250),
            ..PROFILE
        };
        let mut store = OAuthStore::new(profile);
        let code = store.issue_code(&rng, &pending(), Some("pat@example.com"), NOW).unwrap();
        let issued = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW).unwrap();
        assert!(issued.refresh_token.is_none());
        let auth = store.authorize(&issued.access_token, NOW).unwrap();
        assert_eq!(auth.kind, GrantKind::User);
        assert_eq!(auth.subject.as_deref(), Some("pat@example.com"));
        assert!(!auth.linked_anonymous);

        let mut offline = pending();
        offline.scopes.push("offline_access".into());
        offline.anonymous_token = Some("anon".into());
        let code = store.issue_code(&rng, &offline, Some("pat@example.com"), NOW).unwrap();
        let issued = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW).unwrap();
        assert!(store.authorize(&issued.access_token, NOW).unwrap().linked_anonymous);
        let refresh = issued.refresh_token.unwrap();
        // Kept, not rotated: the same token comes back and keeps working.
        let again = store.refresh(&rng, &refresh, "client", NOW + 99).unwrap();
        assert_eq!(again.refresh_token.as_deref(), Some(refresh.as_str()));
        assert_ne!(again.access_token, issued.access_token);
        assert!(store.refresh(&rng, &refresh, "client", NOW + 198).is_ok());
        // Idle for 100 s: dead.
        assert_eq!(
            store.refresh(&rng, &refresh, "client", NOW + 298).unwrap_err(),
            TokenError::InvalidGrant("refresh token expired after a period of inactivity")
        );

        let code = store.issue_code(&rng, &offline, None, NOW).unwrap();
        let issued = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW).unwrap();
        let refresh = issued.refresh_token.unwrap();
        for at in [90, 180] {
            assert!(store.refresh(&rng, &refresh, "client", NOW + at).is_ok());
        }
        // Used within every idle window, but past the maximum lifetime.
        assert_eq!(
            store.refresh(&rng, &refresh, "client", NOW + 250).unwrap_err(),
            TokenError::InvalidGrant("refresh token reached its maximum lifetime")
        );
        assert_eq!(store.reuse_detections(), 0);
    }

    #[test]
    fn plain_rotation_kills_the_old_token_but_not_the_grant() {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(TokenProfile { rotation: Rotation::Rotate, ..PROFILE });
        let code = store.issue_code(&rng, &pending(), None, NOW).unwrap();
        let first = store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW).unwrap();
        let second = store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW).unwrap();
        assert_ne!(first.refresh_token, second.refresh_token);
        assert!(store.refresh(&rng, first.refresh_token.as_deref().unwrap(), "client", NOW).is_err());
        assert_eq!(store.reuse_detections(), 0);
        assert!(store.authorize(&second.access_token, NOW).is_some());
        assert!(store.refresh(&rng, second.refresh_token.as_deref().unwrap(), "client", NOW).is_ok());
    }

    #[test]
    fn optional_pkce_and_direct_grants() {
        let rng = SystemRandom::new();
        let mut store = OAuthStore::new(TokenProfile { access_style: TokenStyle::Hex40, ..PROFILE });
        let no_pkce = PendingAuthorization { code_challenge: None, ..pending() };
        let code = store.issue_code(&rng, &no_pkce, None, NOW).unwrap();
        assert!(store.redeem_code(&rng, &code, "client", Some(REDIRECT), Some(VERIFIER), NOW).is_err());
        assert!(store.redeem_code(&rng, &code, "client", Some(REDIRECT), None, NOW).is_ok());

        let issued = store
            .issue_direct(
                &rng,
                DirectGrant {
                    client_id: "backend",
                    kind: GrantKind::Client,
                    scopes: vec!["integration".into()],
                    subject: None,
                    audience: Some("znanylekarz.pl".into()),
                    access_prefix: "dp_at_",
                    with_refresh: false,
                },
                NOW,
            )
            .unwrap();
        let hex = issued.access_token.strip_prefix("dp_at_").unwrap();
        assert_eq!(hex.len(), 40);
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(issued.refresh_token.is_none());
        let auth = store.authorize(&issued.access_token, NOW).unwrap();
        assert_eq!(auth.kind, GrantKind::Client);
        assert_eq!(auth.audience.as_deref(), Some("znanylekarz.pl"));
        assert!(store.authorize(&issued.access_token, NOW + 3600).is_none());
    }
}
