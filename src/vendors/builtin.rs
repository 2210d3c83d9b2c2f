//! The vendors we know, as their own documentation describes them (`vendor-docs/`).

use url::Url;

use super::profile::{BodyFormat, ClientAuth, Environment, Grant, IdentityCall, VendorProfile};

fn url(s: &str) -> anyhow::Result<Url> {
    Url::parse(s).map_err(|e| anyhow::anyhow!("built-in vendor URL `{s}`: {e}"))
}

pub fn yappointment() -> anyhow::Result<VendorProfile> {
    let scopes = [
        ("bookings:read", "view customer bookings"),
        ("services:read", "view services and pricing"),
        ("calendars:read", "view availability and time slots"),
        ("customers:read", "view customer list"),
    ];
    Ok(VendorProfile {
        id: "yappointment".into(),
        name: "yAppointment".into(),
        summary: "Company admins grant access through yAppointment's consent page (authorization code with PKCE).".into(),
        grant: Grant::AuthorizationCode,
        client_auth: ClientAuth::SecretInBody,
        body: BodyFormat::Json,
        pkce: true,
        scopes: scopes.iter().map(|(s, _)| (*s).to_owned()).collect(),
        scope_descriptions: scopes.iter().map(|(s, d)| ((*s).to_owned(), (*d).to_owned())).collect(),
        extra_authorize_params: Vec::new(),
        environments: vec![Environment {
            name: "production".into(),
            authorize_url: Some(url("https://yappointment.com/oauth/authorize")?),
            token_url: url("https://api.yappointment.com/oauth/token")?,
            revoke_url: Some(url("https://api.yappointment.com/oauth/revoke")?),
            api_base: url("https://api.yappointment.com/")?,
            audience: None,
        }],
        rotates_refresh_tokens: true,
        identity: Some(IdentityCall { method: "POST".into(), path: "api/v1/me".into(), name_field: "name".into() }),
        refresh_margin_seconds: 5 * 60,
    })
}

/// Vendors shown on the dashboard whose connection flows are not in this release yet.
pub fn planned() -> Vec<(String, String)> {
    vec![
        ("zocdoc".into(), "Zocdoc".into()),
        ("drchrono".into(), "DrChrono".into()),
        ("docplanner".into(), "Docplanner".into()),
        ("qmatic".into(), "Qmatic Cloud Appointments".into()),
    ]
}

pub fn all() -> anyhow::Result<Vec<VendorProfile>> {
    Ok(vec![yappointment()?])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_url_is_https_and_parses() {
        for p in all().unwrap() {
            for e in &p.environments {
                for u in [
                    Some(&e.token_url),
                    e.authorize_url.as_ref(),
                    e.revoke_url.as_ref(),
                    Some(&e.api_base),
                ]
                .into_iter()
                .flatten()
                {
                    assert_eq!(u.scheme(), "https", "{} {}", p.id, u);
                }
            }
        }
    }
}
