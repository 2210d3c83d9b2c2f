//! The Zocdoc calls patients' pages need: the anonymous-user token, provider search and the
//! patient's appointments. Answers are parsed leniently and capped; nothing is logged but outcomes.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::vendors::http::{parse_token_response, TokenSet, VendorClient, VendorError};

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub specialty: String,
    pub location: String,
    pub next_availability: String,
}

#[derive(Debug, Clone)]
pub struct Appointment {
    pub provider: String,
    pub start: String,
    pub status: String,
}

/// A GET of a Zocdoc API path with a bearer token; the body on success.
async fn get(http: &VendorClient, url: Url, token: &SecretString) -> Result<Vec<u8>, VendorError> {
    let request = http
        .http()
        .get(url)
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
    call(http, request).await
}

async fn call(http: &VendorClient, request: reqwest::RequestBuilder) -> Result<Vec<u8>, VendorError> {
    let answer = http.timed("zocdoc", "api", request).await?;
    if !answer.status.is_success() {
        return Err(VendorError::Refused {
            status: answer.status.as_u16(),
            error: None,
            retry_after: answer.retry_after,
        });
    }
    Ok(answer.body)
}

/// `POST /v1/token/anonymous-user` with the app's backend token.
pub async fn anonymous_token(
    http: &VendorClient,
    api_base: &Url,
    backend_token: &SecretString,
    app_client_id: &str,
) -> Result<TokenSet, VendorError> {
    let url = api_base.join("v1/token/anonymous-user").map_err(|_| VendorError::Malformed("URL".into()))?;
    let request = http
        .http()
        .post(url)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", backend_token.expose_secret()))
        .body(serde_json::json!({ "app_client_id": app_client_id }).to_string());
    parse_token_response(&call(http, request).await?)
}

#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct Listing<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct RawProvider {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    specialty: String,
    #[serde(default)]
    location: Option<serde_json::Value>,
    #[serde(default)]
    next_availability: Option<String>,
}

pub async fn providers(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
    query: &str,
    specialty: &str,
) -> Result<Vec<Provider>, VendorError> {
    let mut url = api_base.join("v1/providers").map_err(|_| VendorError::Malformed("URL".into()))?;
    url.query_pairs_mut().append_pair("q", query).append_pair("specialty", specialty);
    let body = get(http, url, token).await?;
    let listing: Listing<RawProvider> =
        serde_json::from_slice(&body).map_err(|_| VendorError::Malformed("provider search".into()))?;
    Ok(listing
        .data
        .into_iter()
        .take(50)
        .map(|p| Provider {
            name: p.full_name,
            specialty: p.specialty,
            location: p
                .location
                .map(|l| {
                    let field = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                    [field("city"), field("state")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ")
                })
                .unwrap_or_default(),
            next_availability: p.next_availability.as_deref().map(readable_time).unwrap_or_else(|| "—".into()),
        })
        .collect())
}

pub async fn appointments(
    http: &VendorClient,
    api_base: &Url,
    token: &SecretString,
) -> Result<Vec<Appointment>, VendorError> {
    let url = api_base.join("v1/appointments").map_err(|_| VendorError::Malformed("URL".into()))?;
    let body = get(http, url, token).await?;
    let listing: Listing<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|_| VendorError::Malformed("appointments".into()))?;
    let text = |v: &serde_json::Value, keys: &[&str]| -> String {
        keys.iter().find_map(|k| v.pointer(k).and_then(|x| x.as_str())).unwrap_or("—").chars().take(200).collect()
    };
    Ok(listing
        .data
        .iter()
        .take(100)
        .map(|a| Appointment {
            provider: text(a, &["/provider/full_name", "/provider/name", "/provider_name"]),
            start: readable_time(&text(a, &["/start_time", "/start", "/starts_at"])),
            status: text(a, &["/status"]),
        })
        .collect())
}

/// `2026-11-22T12:00:00Z` → `2026-11-22 12:00 UTC`; anything else is shown as it came.
fn readable_time(value: &str) -> String {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| crate::clock::format_utc(t.unix_timestamp()))
        .unwrap_or_else(|_| value.chars().take(64).collect())
}
