//! Outbound calls to vendors, each in its own dialect. rustls, timeouts, no redirects followed,
//! bodies capped. Errors describe what went wrong without ever carrying a secret.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::profile::{
    normalize_account_name, BodyFormat, ClientAuth, Environment, HeaderSource, Parameters, VendorProfile,
};

/// Larger answers than this from a vendor's token or identity endpoint are refused.
pub const BODY_CAP: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error("could not reach the vendor ({0})")]
    Unreachable(&'static str),
    #[error("the vendor answered with a redirect (HTTP {0}), which is not followed")]
    Redirect(u16),
    #[error("the vendor refused the request (HTTP {status}{})", error.as_deref().map(|e| format!(", {e}")).unwrap_or_default())]
    Refused { status: u16, error: Option<String>, retry_after: Option<i64> },
    #[error("the vendor's answer was malformed ({0})")]
    Malformed(String),
    #[error("the vendor's answer exceeded {BODY_CAP} bytes")]
    TooLarge,
    #[error("the app is not registered at this vendor")]
    NotRegistered,
}

impl VendorError {
    /// What the person is told; never contains anything the vendor sent verbatim beyond an
    /// OAuth error code.
    pub fn user_message(&self, vendor: &str) -> String {
        match self {
            VendorError::Unreachable(why) => format!("{vendor} could not be reached ({why}). Nothing was changed; try again in a moment."),
            VendorError::Redirect(_) | VendorError::Malformed(_) | VendorError::TooLarge => {
                format!("{vendor} sent an answer we could not use. Nothing was changed; try again later.")
            }
            VendorError::Refused { status, error, .. } if *status == 401 || error.as_deref() == Some("invalid_client") => format!(
                "{vendor} did not accept these credentials (HTTP {status}{}). Check them and try again; nothing was stored.",
                error.as_deref().map(|e| format!(", {e}")).unwrap_or_default()
            ),
            VendorError::Refused { status, error: Some(code), .. } if code == "invalid_grant" => format!(
                "{vendor} did not accept the authorization (HTTP {status}, invalid_grant): it was used already or has expired. Start the connection again."
            ),
            VendorError::Refused { status, error, .. } => format!(
                "{vendor} refused the request (HTTP {status}{}). Nothing was changed.",
                error.as_deref().map(|e| format!(", {e}")).unwrap_or_default()
            ),
            VendorError::NotRegistered => format!("The operator has not registered this app at {vendor}."),
        }
    }

    /// Whether trying again later may succeed: the vendor was down, slow, or asked us to wait.
    pub fn is_transient(&self) -> bool {
        match self {
            VendorError::Unreachable(_)
            | VendorError::Malformed(_)
            | VendorError::TooLarge
            | VendorError::Redirect(_) => true,
            VendorError::Refused { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            VendorError::NotRegistered => false,
        }
    }

    pub fn retry_after(&self) -> Option<i64> {
        match self {
            VendorError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, VendorError::Refused { error: Some(code), .. } if code == "invalid_grant")
    }

    /// Whose fault a refusal is: the clinic's grant is gone, the app's registration (or the
    /// vendor) refuses the app, or the vendor is having trouble and a later try may work.
    pub fn refusal_kind(&self) -> RefusalKind {
        match self {
            // Nothing the vendor said: it was down, slow, redirected us or answered nonsense.
            VendorError::Unreachable(_)
            | VendorError::Redirect(_)
            | VendorError::Malformed(_)
            | VendorError::TooLarge => RefusalKind::Transient,
            // The operator has not registered the app: the app's problem, not the clinic's.
            VendorError::NotRegistered => RefusalKind::AppRefused,
            VendorError::Refused { status, error, .. } => match *status {
                408 | 429 | 500..=599 => RefusalKind::Transient,
                400..=499 if error.as_deref().is_some_and(|code| GRANT_GONE_ERRORS.contains(&code)) => {
                    RefusalKind::GrantGone
                }
                // invalid_client, unauthorized_client, a 401/403/404 without invalid_grant, an
                // error code we do not know: the registration or the token URL is wrong, and
                // every clinic's grant is as good as it was.
                400..=499 => RefusalKind::AppRefused,
                // Not a refusal HTTP knows (1xx, 2xx, 3xx reaching here): an answer we cannot use.
                _ => RefusalKind::Transient,
            },
        }
    }
}

/// The error codes that say the clinic's grant is gone (a refresh token that is revoked,
/// expired or already used; RFC 6749 §5.2). None of the vendors' documentation
/// (`vendor-docs/`) names another code for these cases: all of them answer `invalid_grant`.
pub const GRANT_GONE_ERRORS: &[&str] = &["invalid_grant"];

/// What a failed vendor call means for a connection (see [`VendorError::refusal_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The clinic's grant is gone: only the clinic's admin can restore it, by reconnecting.
    GrantGone,
    /// The vendor refuses the app itself (its client id or secret, its registration, a wrong
    /// URL): the tokens are still good, and the operator must act.
    AppRefused,
    /// Trying again later may work.
    Transient,
}

/// Tokens as a vendor issued them. `Debug` shows only their shape.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A vendor environment's endpoints for one connection: templates filled with its parameters,
/// plus the extra headers the vendor wants.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: Option<url::Url>,
    pub token: url::Url,
    pub revoke: Option<url::Url>,
    pub api_base: url::Url,
    pub headers: Vec<(String, String)>,
}

impl Endpoints {
    pub fn resolve(profile: &VendorProfile, env: &Environment, params: &Parameters) -> anyhow::Result<Self> {
        let mut headers = Vec::new();
        for (name, source) in &profile.extra_token_headers {
            let value = match source {
                HeaderSource::Literal(v) => v.clone(),
                HeaderSource::NormalizedAccountName => normalize_account_name(
                    params.get("account_name").ok_or_else(|| anyhow::anyhow!("the connection has no account name"))?,
                ),
            };
            headers.push((name.clone(), value));
        }
        Ok(Self {
            authorize: env.authorize_url.as_ref().map(|u| u.resolve(params)).transpose()?,
            token: env.token_url.resolve(params)?,
            revoke: env.revoke_url.as_ref().map(|u| u.resolve(params)).transpose()?,
            api_base: env.api_base.resolve(params)?,
            headers,
        })
    }
}

/// Credentials at a vendor: the app's registration, or a clinic's own.
pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a SecretString>,
    /// How they are presented, when not the profile's usual way (Zocdoc's backend client is
    /// confidential while its user-facing client is public).
    pub auth: Option<ClientAuth>,
}

/// How every call to a vendor is made: TLS through rustls, bounded connect and total time, no
/// redirect ever followed.
pub fn outbound_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("clinic-connect/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One server worker's own client for proxied calls. A pooled connection is driven by the
/// worker that opened it, so a call made from another worker would wake that one for every
/// answer; with a client per worker, each keeps its vendor connections to itself.
pub struct WorkerClient(pub reqwest::Client);

#[derive(Clone)]
pub struct VendorClient {
    http: reqwest::Client,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl VendorClient {
    pub fn new(timeout: Duration, metrics: std::sync::Arc<crate::metrics::Metrics>) -> anyhow::Result<Self> {
        Ok(Self { http: outbound_client(timeout)?, metrics })
    }

    /// A token-endpoint call: the grant's own fields plus the vendor's client authentication,
    /// in the vendor's body format.
    pub async fn token_request(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        client: &ClientCredentials<'_>,
        fields: &[(&str, &str)],
    ) -> Result<TokenSet, VendorError> {
        let request = self.authenticated_post(profile, endpoints, endpoints.token.clone(), client, fields);
        let Answer { status, body, retry_after, .. } = self.timed(&profile.id, "token", request).await?;
        if !status.is_success() {
            return Err(refusal(status, &body, retry_after));
        }
        parse_token_response(&body)
    }

    pub async fn exchange_code(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        client: &ClientCredentials<'_>,
        code: &SecretString,
        verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenSet, VendorError> {
        let mut fields =
            vec![("grant_type", "authorization_code"), ("code", code.expose_secret()), ("redirect_uri", redirect_uri)];
        if profile.pkce {
            fields.push(("code_verifier", verifier.expose_secret()));
        }
        self.token_request(profile, endpoints, client, &fields).await
    }

    /// A refresh-token grant in the vendor's dialect.
    pub async fn refresh(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        client: &ClientCredentials<'_>,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, VendorError> {
        let fields = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        self.token_request(profile, endpoints, client, &fields).await
    }

    /// The underlying HTTP client, for the API proxy.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends and reads the answer, recording the call's latency for `/metrics`.
    pub async fn timed(
        &self,
        vendor: &str,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Answer, VendorError> {
        let started = std::time::Instant::now();
        let answer = send(request).await;
        self.metrics.vendor_call(vendor, operation, started.elapsed());
        answer
    }

    /// A client-credentials grant: the clinic's own credentials, or the app's backend ones.
    pub async fn client_credentials(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        client: &ClientCredentials<'_>,
        scopes: &str,
        audience: Option<&str>,
    ) -> Result<TokenSet, VendorError> {
        let mut fields = vec![("grant_type", "client_credentials")];
        if !scopes.is_empty() {
            fields.push(("scope", scopes));
        }
        if let Some(audience) = audience {
            fields.push(("audience", audience));
        }
        self.token_request(profile, endpoints, client, &fields).await
    }

    /// RFC 7009 revocation, in the vendor's token-endpoint dialect.
    pub async fn revoke(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        client: &ClientCredentials<'_>,
        token: &SecretString,
    ) -> Result<(), VendorError> {
        let Some(url) = endpoints.revoke.clone() else { return Ok(()) };
        let request = self.authenticated_post(profile, endpoints, url, client, &[("token", token.expose_secret())]);
        let Answer { status, body, retry_after, .. } = self.timed(&profile.id, "revoke", request).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refusal(status, &body, retry_after))
        }
    }

    /// The account's display name, from the vendor's identity call.
    pub async fn identity(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        access_token: &SecretString,
    ) -> Result<Option<String>, VendorError> {
        let Some(call) = &profile.identity else { return Ok(None) };
        let url = endpoints.api_base.join(&call.path).map_err(|_| VendorError::Malformed("identity URL".into()))?;
        let request = match call.method.as_str() {
            "GET" => self.http.get(url),
            _ => self.http.post(url).header(CONTENT_TYPE, "application/json").body("{}"),
        };
        let mut request = request
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", access_token.expose_secret()));
        for (name, value) in &endpoints.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let Answer { status, body, retry_after, .. } = self.timed(&profile.id, "identity", request).await?;
        if !status.is_success() {
            return Err(refusal(status, &body, retry_after));
        }
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| malformed("identity", &e))?;
        Ok(value.pointer(&call.name_pointer).and_then(|v| v.as_str()).map(|s| s.chars().take(200).collect()))
    }

    fn authenticated_post(
        &self,
        profile: &VendorProfile,
        endpoints: &Endpoints,
        url: url::Url,
        client: &ClientCredentials<'_>,
        fields: &[(&str, &str)],
    ) -> RequestBuilder {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let mut request = self.http.post(url).header(ACCEPT, "application/json");
        for (name, value) in &endpoints.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match client.auth.unwrap_or(profile.client_auth) {
            ClientAuth::BasicRaw => {
                // Deliberately not `basic_auth`-style form-encoding: these vendors document plain
                // base64(id:secret).
                let secret = client.client_secret.map(|s| s.expose_secret()).unwrap_or_default();
                let raw = format!("{}:{}", client.client_id, secret);
                request = request.header(AUTHORIZATION, format!("Basic {}", STANDARD.encode(raw)));
            }
            ClientAuth::SecretInBody => {
                all.push(("client_id", client.client_id));
                if let Some(secret) = client.client_secret {
                    all.push(("client_secret", secret.expose_secret()));
                }
            }
            ClientAuth::Public => all.push(("client_id", client.client_id)),
        }
        match profile.body {
            BodyFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> =
                    all.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned()))).collect();
                request.header(CONTENT_TYPE, "application/json").body(serde_json::Value::Object(map).to_string())
            }
            BodyFormat::Form => request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(&all).unwrap_or_default()),
        }
    }
}

/// A vendor's answer, read in full (up to the cap).
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when the vendor sent one.
    pub retry_after: Option<i64>,
    pub content_type: Option<String>,
}

pub async fn send(request: RequestBuilder) -> Result<Answer, VendorError> {
    let mut response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status();
    let headers = response.headers();
    let text = |name: reqwest::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after =
        text(reqwest::header::RETRY_AFTER).and_then(|value| parse_retry_after(value, text(reqwest::header::DATE)));
    let content_type: Option<String> = text(CONTENT_TYPE).map(|v| v.chars().take(200).collect());
    if status.is_redirection() {
        return Err(VendorError::Redirect(status.as_u16()));
    }
    if response.content_length().is_some_and(|len| len > BODY_CAP as u64) {
        return Err(VendorError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > BODY_CAP {
            return Err(VendorError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body, retry_after, content_type })
}

/// The longest wait a vendor's `Retry-After` is honoured for. An access token lives about an
/// hour: waiting longer would let it expire without a single attempt, whatever the vendor asked.
pub const MAX_RETRY_AFTER_SECONDS: i64 = 60 * 60;

/// `Retry-After` in seconds (RFC 9110 §10.2.3), capped at [`MAX_RETRY_AFTER_SECONDS`]: a
/// delay in seconds, or an HTTP-date measured against the answer's own `Date` header (this
/// layer has no clock; a date without a `Date` to measure it against is ignored). Anything
/// else is ignored.
pub fn parse_retry_after(value: &str, date: Option<&str>) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only too long a number fails to parse, and that is past the cap anyway.
        return Some(value.parse::<i64>().map_or(MAX_RETRY_AFTER_SECONDS, |s| s.min(MAX_RETRY_AFTER_SECONDS)));
    }
    let at = parse_http_date(value)?;
    let sent = parse_http_date(date?.trim())?;
    Some(at.saturating_sub(sent).clamp(0, MAX_RETRY_AFTER_SECONDS))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form RFC 9110 asks senders to
/// use, as Unix seconds.
fn parse_http_date(value: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value, &format).ok().map(|t| t.assume_utc().unix_timestamp())
}

fn transport(e: &reqwest::Error) -> VendorError {
    VendorError::Unreachable(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    })
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

fn refusal(status: StatusCode, body: &[u8], retry_after: Option<i64>) -> VendorError {
    let error = serde_json::from_slice::<OAuthError>(body).ok().map(|e| e.error).filter(|code| {
        // Only a well-formed OAuth error code is repeated; anything else the vendor wrote is not.
        !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    });
    VendorError::Refused { status: status.as_u16(), error, retry_after }
}

/// A serde error without the value that failed: serde_json quotes offending strings, and an
/// offending string here may be a token.
fn malformed(what: &str, e: &serde_json::Error) -> VendorError {
    VendorError::Malformed(format!("{what}: {:?} error at line {} column {}", e.classify(), e.line(), e.column()))
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
}

pub fn parse_token_response(body: &[u8]) -> Result<TokenSet, VendorError> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|e| malformed("token response", &e))?;
    let access_token = match raw.access_token {
        Some(serde_json::Value::String(t)) if !t.is_empty() => SecretString::from(t),
        _ => return Err(VendorError::Malformed("token response without an access_token".into())),
    };
    let token_type = match raw.token_type {
        // RFC 6749 §5.1: the type is case-insensitive; some vendors send `bearer`.
        Some(serde_json::Value::String(t)) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        Some(serde_json::Value::String(_)) => return Err(VendorError::Malformed("token_type is not Bearer".into())),
        _ => return Err(VendorError::Malformed("token response without a token_type".into())),
    };
    let expires_in = match raw.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(parse_expires_in(&value)?),
    };
    let refresh_token = match raw.refresh_token {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) if !t.is_empty() => Some(SecretString::from(t)),
        Some(_) => return Err(VendorError::Malformed("refresh_token is not a string".into())),
    };
    let scope = match raw.scope {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(TokenSet { access_token, refresh_token, token_type, expires_in, scope })
}

/// The longest token lifetime believed: a vendor's `expires_in` beyond this is a broken
/// answer, not a token to keep for decades (and a time computed from it could overflow).
pub const MAX_EXPIRES_IN_SECONDS: i64 = 365 * 24 * 60 * 60;

/// `expires_in` (RFC 6749 §5.1): a whole number of seconds from 1 to one year. A quoted number
/// of plain digits is taken too, as some servers send one; a float, a sign, zero or anything
/// longer than a year is a malformed answer.
fn parse_expires_in(value: &serde_json::Value) -> Result<i64, VendorError> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    seconds
        .filter(|s| (1..=MAX_EXPIRES_IN_SECONDS).contains(s))
        .ok_or_else(|| VendorError::Malformed("expires_in is not a whole number of seconds from 1 to one year".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shapes() {
        let t = parse_token_response(
            br#"{"access_token":"yapp_at_x","token_type":"Bearer","expires_in":3600,"refresh_token":"yapp_rt_y"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(3600));
        assert!(t.refresh_token.is_some());
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":3600,"token_type":"bearer","scope":null}"#)
            .unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert!(t.scope.is_none());
    }

    #[test]
    fn malformed_answers_are_refused_without_echoing_values() {
        for body in [
            &b"<html>oops"[..],
            br#"{"token_type":"Bearer"}"#,
            br#"{"access_token":"yapp_at_secret","token_type":"mac"}"#,
            br#"{"access_token":"yapp_at_secret","token_type":"Bearer","expires_in":"soon"}"#,
            br#"{"access_token":["yapp_at_secret"],"token_type":"Bearer"}"#,
            br#"{"access_token":"yapp_at_secret","token_type":"Bearer","refresh_token":7}"#,
        ] {
            let err = parse_token_response(body).unwrap_err();
            assert!(!err.to_string().contains("yapp_at_secret"), "{err}");
        }
    }

    #[test]
    fn refusals_keep_only_an_oauth_error_code() {
        let e = refusal(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant","error_description":"x"}"#, None);
        assert!(e.is_invalid_grant());
        let e = refusal(StatusCode::BAD_REQUEST, br#"{"error":"<script>yapp_at_leak</script>"}"#, None);
        assert!(!e.to_string().contains("leak"), "{e}");
    }

    fn refused(status: u16, error: Option<&str>) -> VendorError {
        VendorError::Refused { status, error: error.map(str::to_owned), retry_after: None }
    }

    #[test]
    fn only_invalid_grant_means_the_grant_is_gone() {
        use RefusalKind::*;
        let cases = [
            (refused(400, Some("invalid_grant")), GrantGone),
            (refused(401, Some("invalid_grant")), GrantGone),
            (refused(403, Some("invalid_grant")), GrantGone),
            (refused(401, Some("invalid_client")), AppRefused),
            (refused(400, Some("invalid_client")), AppRefused),
            (refused(400, Some("unauthorized_client")), AppRefused),
            (refused(400, Some("invalid_request")), AppRefused),
            (refused(400, Some("invalid_scope")), AppRefused),
            (refused(400, Some("unsupported_grant_type")), AppRefused),
            (refused(400, Some("something_new")), AppRefused),
            (refused(400, None), AppRefused),
            (refused(401, None), AppRefused),
            (refused(401, Some("invalid_token")), AppRefused),
            (refused(403, None), AppRefused),
            (refused(403, Some("access_denied")), AppRefused),
            (refused(404, None), AppRefused),
            (refused(404, Some("not_found")), AppRefused),
            (refused(405, None), AppRefused),
            (refused(410, None), AppRefused),
            (refused(499, None), AppRefused),
            (refused(408, None), Transient),
            (refused(429, None), Transient),
            (refused(429, Some("invalid_grant")), Transient),
            (refused(500, None), Transient),
            (refused(502, Some("invalid_grant")), Transient),
            (refused(503, Some("temporarily_unavailable")), Transient),
            (refused(599, None), Transient),
            (refused(101, None), Transient),
            (refused(200, None), Transient),
            (VendorError::Unreachable("timed out"), Transient),
            (VendorError::Unreachable("connection failed"), Transient),
            (VendorError::Redirect(301), Transient),
            (VendorError::Redirect(307), Transient),
            (VendorError::Malformed("x".into()), Transient),
            (VendorError::TooLarge, Transient),
            (VendorError::NotRegistered, AppRefused),
        ];
        for (error, kind) in cases {
            assert_eq!(error.refusal_kind(), kind, "{error}");
        }
    }

    #[test]
    fn the_classification_reads_the_vendors_own_answer() {
        let kind = |status: u16, body: &[u8]| refusal(StatusCode::from_u16(status).unwrap(), body, None).refusal_kind();
        assert_eq!(kind(400, br#"{"error":"invalid_grant","error_description":"revoked"}"#), RefusalKind::GrantGone);
        assert_eq!(kind(401, br#"{"error":"invalid_client"}"#), RefusalKind::AppRefused);
        assert_eq!(kind(400, br#"{"error":"unauthorized_client"}"#), RefusalKind::AppRefused);
        // A code that is not a well-formed OAuth code is not believed, whatever it says.
        assert_eq!(kind(400, br#"{"error":"invalid_grant "}"#), RefusalKind::AppRefused);
        assert_eq!(kind(400, br#"{"error":"INVALID_GRANT"}"#), RefusalKind::AppRefused);
        assert_eq!(kind(404, b"<html>Not Found</html>"), RefusalKind::AppRefused);
        assert_eq!(kind(503, b"<html>down</html>"), RefusalKind::Transient);
    }

    #[test]
    fn expires_in_must_be_one_second_to_one_year() {
        let parse = |value: &str| {
            let body = format!(r#"{{"access_token":"yapp_at_x","token_type":"Bearer","expires_in":{value}}}"#);
            parse_token_response(body.as_bytes()).map(|t| t.expires_in)
        };
        assert_eq!(parse("3600").unwrap(), Some(3600));
        assert_eq!(parse("1").unwrap(), Some(1));
        assert_eq!(parse(r#""3600""#).unwrap(), Some(3600));
        assert_eq!(parse("null").unwrap(), None);
        assert_eq!(parse(&MAX_EXPIRES_IN_SECONDS.to_string()).unwrap(), Some(MAX_EXPIRES_IN_SECONDS));
        for bad in [
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775808",
            "31536001",
            "0",
            "-1",
            "-3600",
            "3600.5",
            "3600.0",
            "1e300",
            "1.7976931348623157e308",
            "-1e300",
            r#""9223372036854775807""#,
            r#""0""#,
            r#""-5""#,
            r#""soon""#,
            r#"" 3600""#,
            r#""3600s""#,
            r#""1e9""#,
            r#""""#,
            "true",
            "[3600]",
            r#"{"s":3600}"#,
        ] {
            match parse(bad) {
                Err(VendorError::Malformed(why)) => assert!(why.contains("expires_in"), "{bad}: {why}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_against_the_answers_date_and_is_capped() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_retry_after("120", None), Some(120));
        assert_eq!(parse_retry_after(" 0 ", None), Some(0));
        assert_eq!(parse_retry_after("3600", None), Some(3600));
        assert_eq!(parse_retry_after("3601", None), Some(MAX_RETRY_AFTER_SECONDS));
        assert_eq!(parse_retry_after("9223372036854775807", None), Some(MAX_RETRY_AFTER_SECONDS));
        assert_eq!(parse_retry_after("99999999999999999999999999", None), Some(MAX_RETRY_AFTER_SECONDS));
        for bad in ["-1", "-9223372036854775808", "1.5", "1e9", "soon", "", "+5", "0x10"] {
            assert_eq!(parse_retry_after(bad, Some(date)), None, "{bad}");
        }
        // A date: measured against the vendor's own Date header, never our clock.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", Some(date)), Some(120));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:48:37 GMT", Some(date)), Some(0));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", Some(date)), Some(MAX_RETRY_AFTER_SECONDS));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", None), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", Some("yesterday")), None);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", Some(date)), None);
    }

    #[test]
    fn debug_redacts_tokens() {
        let t =
            parse_token_response(br#"{"access_token":"yapp_at_x","token_type":"Bearer","refresh_token":"yapp_rt_y"}"#)
                .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("yapp_"), "{shown}");
    }
}
