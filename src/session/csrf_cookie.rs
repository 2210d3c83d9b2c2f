//! CSRF protection for forms shown before any session exists (the admin's sign-in form, a
//! patient's first Book or Log in): a signed double-submit cookie.
//!
//! The cookie holds `issued.token.mac`, the MAC an HMAC-SHA256 under a key derived from the
//! session key; the form carries the token. A POST is accepted when the cookie's MAC holds, it
//! is not too old, and the form's token equals the cookie's. Nothing is stored on the server,
//! so showing such a form costs no session row. The cookie is `HttpOnly`, `SameSite=Lax`,
//! `Path=/`, and `Secure` with a `__Host-` name in production (no subdomain can plant one).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{hkdf, hmac};

use crate::clock::UnixTime;
use crate::vault::{constant_time_eq, random_token, VaultError};

pub const PRODUCTION_CSRF_COOKIE: &str = "__Host-clinic-connect-csrf";
pub const DEVELOPMENT_CSRF_COOKIE: &str = "clinic-connect-csrf";

/// A token older than this is refused ("the form expired").
const LIFETIME_SECONDS: i64 = 24 * 60 * 60;
/// A page shown with a token older than this gets a fresh one, so its form does not expire soon.
const RENEW_AFTER_SECONDS: i64 = LIFETIME_SECONDS / 2;

pub struct CsrfCookie {
    key: hmac::Key,
    name: &'static str,
    secure: bool,
}

/// The token a page's forms carry, and the cookie to set when it is a new one.
pub struct FormToken {
    pub value: String,
    pub set_cookie: Option<Cookie<'static>>,
}

impl FormToken {
    /// The response, with the cookie set when the token is new.
    pub fn attach(&self, mut response: HttpResponse) -> HttpResponse {
        if let Some(cookie) = &self.set_cookie {
            if let Err(e) = response.add_cookie(cookie) {
                tracing::warn!(cause = %e, "could not set the form cookie");
            }
        }
        response
    }
}

impl CsrfCookie {
    /// The MAC key is derived from the session key (HKDF-SHA256 with its own label), so no key
    /// is reused for two purposes and no new setting is needed.
    pub fn new(session_key: &actix_web::cookie::Key, production: bool) -> anyhow::Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"clinic-connect").extract(session_key.master());
        let okm = prk
            .expand(&[b"csrf-cookie/v1"], hmac::HMAC_SHA256)
            .map_err(|_| anyhow::anyhow!("cannot derive the form cookie key"))?;
        Ok(Self {
            key: hmac::Key::from(okm),
            name: if production { PRODUCTION_CSRF_COOKIE } else { DEVELOPMENT_CSRF_COOKIE },
            secure: production,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn mac(&self, issued: UnixTime, token: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, format!("{issued}.{token}").as_bytes()).as_ref())
    }

    /// The cookie's (issued, token) when its MAC holds and it has not expired.
    fn open(&self, value: &str, now: UnixTime) -> Option<(UnixTime, String)> {
        let mut parts = value.splitn(3, '.');
        let (issued, token, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let issued: UnixTime = issued.parse().ok()?;
        let expected = self.mac(issued, token);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        // A token from the future (a clock moved back) is as suspect as an expired one.
        let age = now.checked_sub(issued)?;
        (0..LIFETIME_SECONDS).contains(&age).then(|| (issued, token.to_owned()))
    }

    fn cookie_value<'r>(&self, req: &'r HttpRequest) -> Option<Cookie<'r>> {
        req.cookie(self.name)
    }

    /// The token for a page's forms: the cookie's while it is valid and young, else a new one
    /// (with the cookie to set).
    pub fn issue(&self, req: &HttpRequest, now: UnixTime) -> Result<FormToken, VaultError> {
        if let Some((issued, token)) = self.cookie_value(req).and_then(|c| self.open(c.value(), now)) {
            if now - issued < RENEW_AFTER_SECONDS {
                return Ok(FormToken { value: token, set_cookie: None });
            }
        }
        let token = random_token(32)?;
        let value = format!("{now}.{token}.{}", self.mac(now, &token));
        let cookie = Cookie::build(self.name, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(CookieDuration::seconds(LIFETIME_SECONDS))
            .finish();
        Ok(FormToken { value: token, set_cookie: Some(cookie) })
    }

    /// Whether the submitted form token matches this request's valid cookie.
    pub fn verify(&self, req: &HttpRequest, submitted: &str, now: UnixTime) -> bool {
        match self.cookie_value(req).and_then(|c| self.open(c.value(), now)) {
            Some((_, token)) => !submitted.is_empty() && constant_time_eq(token.as_bytes(), submitted.as_bytes()),
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn cookie(production: bool) -> CsrfCookie {
        CsrfCookie::new(&actix_web::cookie::Key::generate(), production).unwrap()
    }

    fn request_with(c: &Cookie<'_>) -> HttpRequest {
        TestRequest::default().cookie(Cookie::new(c.name().to_owned(), c.value().to_owned())).to_http_request()
    }

    #[test]
    fn a_new_cookie_carries_the_form_token_and_verifies() {
        let csrf = cookie(false);
        let now = 1_800_000_000;
        let issued = csrf.issue(&TestRequest::default().to_http_request(), now).unwrap();
        let set = issued.set_cookie.clone().unwrap();
        assert_eq!(set.name(), DEVELOPMENT_CSRF_COOKIE);
        assert_eq!(set.http_only(), Some(true));
        assert_eq!(set.same_site(), Some(SameSite::Lax));
        assert_eq!(set.path(), Some("/"));
        assert_ne!(set.secure(), Some(true));
        assert!(set.value().contains(&issued.value));
        let req = request_with(&set);
        assert!(csrf.verify(&req, &issued.value, now + 60));
        // The same page again: the same token, no new cookie.
        let again = csrf.issue(&req, now + 60).unwrap();
        assert_eq!(again.value, issued.value);
        assert!(again.set_cookie.is_none());
    }

    #[test]
    fn wrong_missing_forged_foreign_or_old_tokens_are_refused() {
        let csrf = cookie(false);
        let now = 1_800_000_000;
        let issued = csrf.issue(&TestRequest::default().to_http_request(), now).unwrap();
        let set = issued.set_cookie.unwrap();
        let req = request_with(&set);
        assert!(!csrf.verify(&req, "", now));
        assert!(!csrf.verify(&req, "another-token", now));
        assert!(!csrf.verify(&TestRequest::default().to_http_request(), &issued.value, now), "no cookie");
        // A cookie whose token was swapped for one the attacker knows fails the MAC.
        let (stamp, rest) = set.value().split_once('.').unwrap();
        let mac = rest.rsplit_once('.').unwrap().1;
        let forged = Cookie::new(DEVELOPMENT_CSRF_COOKIE, format!("{stamp}.attacker-token.{mac}"));
        assert!(!csrf.verify(&request_with(&forged), "attacker-token", now));
        // Made under another key (another deployment).
        assert!(!cookie(false).verify(&req, &issued.value, now));
        // Too old, or from the future.
        assert!(!csrf.verify(&req, &issued.value, now + LIFETIME_SECONDS));
        assert!(!csrf.verify(&req, &issued.value, now - 1));
        // A page shown late in its life gets a fresh token.
        let late = csrf.issue(&req, now + RENEW_AFTER_SECONDS + 1).unwrap();
        assert_ne!(late.value, issued.value);
        assert!(late.set_cookie.is_some());
    }

    #[test]
    fn production_cookies_are_secure_and_host_only() {
        let csrf = cookie(true);
        let set = csrf.issue(&TestRequest::default().to_http_request(), 1).unwrap().set_cookie.unwrap();
        assert_eq!(set.name(), PRODUCTION_CSRF_COOKIE);
        assert!(set.name().starts_with("__Host-"));
        assert_eq!(set.secure(), Some(true));
        assert_eq!(set.domain(), None);
        assert_ne!(set.name(), crate::startup::PRODUCTION_COOKIE);
        assert_ne!(set.name(), crate::startup::PRODUCTION_PATIENT_COOKIE);
    }
}
