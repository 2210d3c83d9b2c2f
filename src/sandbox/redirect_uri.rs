//! Which redirect URIs an authorization request may name.
//!
//! The sandbox does not know where the app runs, so instead of a registered list it
//! accepts what a careful vendor would register: absolute URLs without a fragment or
//! credentials, `https`, or `http` on a loopback host (RFC 8252 §7.3).

use url::{Host, Url};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirectUriError {
    Missing,
    NotAbsolute,
    HasFragment,
    HasCredentials,
    InsecureScheme,
    NoHost,
}

impl RedirectUriError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Missing => "The redirect_uri parameter is missing.",
            Self::NotAbsolute => "The redirect_uri is not an absolute URL.",
            Self::HasFragment => "The redirect_uri must not contain a fragment.",
            Self::HasCredentials => "The redirect_uri must not contain a user name or password.",
            Self::InsecureScheme => {
                "The redirect_uri must use https (http is allowed only on 127.0.0.1, localhost or [::1])."
            }
            Self::NoHost => "The redirect_uri has no host.",
        }
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.octets() == [127, 0, 0, 1],
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Parses and checks a redirect URI. The caller keeps the raw string for the exact
/// comparison at the token endpoint.
pub(crate) fn validate(raw: &str) -> Result<Url, RedirectUriError> {
    if raw.is_empty() {
        return Err(RedirectUriError::Missing);
    }
    let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
    if url.cannot_be_a_base() {
        return Err(RedirectUriError::NotAbsolute);
    }
    if url.fragment().is_some() || raw.contains('#') {
        return Err(RedirectUriError::HasFragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::HasCredentials);
    }
    let host = url.host().ok_or(RedirectUriError::NoHost)?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        _ => Err(RedirectUriError::InsecureScheme),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for ok in [
            "https://app.example.com/connections/yappointment/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1:8080/connections/yappointment/callback",
            "http://localhost:3000/cb",
            "http://LOCALHOST/cb",
            "http://[::1]:9000/cb",
        ] {
            assert!(validate(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let cases = [
            ("", RedirectUriError::Missing),
            ("/connections/yappointment/callback", RedirectUriError::NotAbsolute),
            ("app.example.com/cb", RedirectUriError::NotAbsolute),
            ("https://app.example.com/cb#frag", RedirectUriError::HasFragment),
            ("https://app.example.com/cb#", RedirectUriError::HasFragment),
            ("http://app.example.com/cb", RedirectUriError::InsecureScheme),
            ("http://127.0.0.2/cb", RedirectUriError::InsecureScheme),
            ("http://localhost.evil.com/cb", RedirectUriError::InsecureScheme),
            ("http://10.0.0.1/cb", RedirectUriError::InsecureScheme),
            ("ftp://app.example.com/cb", RedirectUriError::InsecureScheme),
            ("javascript:alert(1)", RedirectUriError::NotAbsolute),
            ("myapp://callback", RedirectUriError::InsecureScheme),
            ("https://user:pw@app.example.com/cb", RedirectUriError::HasCredentials),
            ("file:///etc/passwd", RedirectUriError::NoHost),
        ];
        for (raw, expected) in cases {
            assert_eq!(validate(raw).map(|_| ()), Err(expected), "{raw}");
        }
    }
}
