//! A fresh database of N connections, made fast but legitimately: clinics and admins through the
//! `Db` API (as the tests do, with one password hash for all), and for each clinic a real grant
//! from the sandbox — its authorize, consent and token endpoints driven directly over HTTP with
//! PKCE — stored sealed exactly as `connections::store` stores a grant.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clinic_connect::connections::connection_binding;
use clinic_connect::db::connections::{NewEvent, SealedGrant};
use clinic_connect::db::Db;
use clinic_connect::sandbox::{YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_CLIENT_SECRET, YAPPOINTMENT_COMPANY_NAME};
use clinic_connect::vault::random_token;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::harness::AppHandle;
use crate::loadgen;

pub const VENDOR: &str = "yappointment";
/// yAppointment's scopes, as the app requests them (`vendors/builtin.rs`).
pub const SCOPES: &str = "bookings:read services:read calendars:read customers:read";
pub const PASSWORD: &str = "bench password, not a secret";
/// Grants fetched from the sandbox at once during setup.
const SETUP_CONCURRENCY: usize = 16;
/// Grants stored per transaction: setup is not measured, so it need not pay one fsync each.
const STORE_BATCH: usize = 500;

pub fn clinic_name(i: usize) -> String {
    format!("Bench Clinic {i:05}")
}

pub fn admin_email(i: usize) -> String {
    format!("admin-{i:05}@bench.clinic.test")
}

/// Creates clinics `1..=count` (ids in that order).
pub async fn clinics(db: &Db, count: usize, now: i64) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(count);
    for i in 1..=count {
        ids.push(db.ensure_clinic(&clinic_name(i), now).await?);
    }
    Ok(ids)
}

/// An admin for each of these clinics (by 1-based clinic number), all with the same password hash.
pub async fn admins(db: &Db, clinics: &[(usize, i64)], hash: &str, now: i64) -> anyhow::Result<()> {
    for (i, clinic_id) in clinics {
        db.insert_admin(*clinic_id, &admin_email(*i), hash, now).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<i64>,
}

/// Consent at the sandbox for one clinic, as its admin's browser would give it, then the code
/// exchange as the app would make it.
pub async fn obtain_grant(client: &reqwest::Client, sandbox_url: &str, redirect_uri: &str) -> anyhow::Result<Grant> {
    let verifier = random_token(32)?;
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    let mut authorize = Url::parse(&format!("{sandbox_url}/{VENDOR}/oauth/authorize"))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", YAPPOINTMENT_CLIENT_ID)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", &random_token(16)?)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let callback = consent(client, &authorize).await?;
    let code = query_value(&callback, "code")?;
    let token = client
        .post(format!("{sandbox_url}/{VENDOR}/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": YAPPOINTMENT_CLIENT_ID,
            "client_secret": YAPPOINTMENT_CLIENT_SECRET,
        }))
        .send()
        .await?;
    anyhow::ensure!(token.status() == StatusCode::OK, "token endpoint answered {}", token.status());
    Ok(token.json().await?)
}

/// Opens a sandbox consent page and approves it; returns where the vendor sends the browser back.
pub async fn consent(client: &reqwest::Client, authorize: &Url) -> anyhow::Result<Url> {
    let page = client.get(authorize.clone()).send().await?;
    anyhow::ensure!(page.status() == StatusCode::OK, "authorize answered {}", page.status());
    let html = page.text().await?;
    let request = hidden_field(&html, "request").ok_or_else(|| anyhow::anyhow!("no request field: {html}"))?;
    let action = attribute_after(&html, "<form", "action").ok_or_else(|| anyhow::anyhow!("no form action"))?;
    let answer =
        client.post(authorize.join(action)?).form(&[("request", request), ("decision", "approve")]).send().await?;
    anyhow::ensure!(answer.status().is_redirection(), "consent answered {}", answer.status());
    Ok(Url::parse(location(&answer)?)?)
}

pub fn location(response: &reqwest::Response) -> anyhow::Result<&str> {
    Ok(response.headers().get(LOCATION).ok_or_else(|| anyhow::anyhow!("no Location"))?.to_str()?)
}

pub fn query_value(url: &Url, name: &str) -> anyhow::Result<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no {name} in the redirect"))
}

/// `<input type="hidden" name="{name}" value="…">`; the values we read are base64url, which
/// HTML escaping leaves alone. Plain string search: this runs inside the measured flows.
pub fn hidden_field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next()
}

fn attribute_after<'a>(html: &'a str, element: &str, attribute: &str) -> Option<&'a str> {
    let rest = &html[html.find(element)?..];
    let marker = format!(r#"{attribute}=""#);
    let start = rest.find(&marker)? + marker.len();
    rest[start..].split('"').next()
}

/// What seeding cost, reported apart from the measurements.
pub struct Seeded {
    pub clinic_ids: Vec<i64>,
    pub took: Duration,
}

/// Clinics `1..=n`, each with a live yAppointment connection holding a real sandbox grant.
pub async fn connections(app: &AppHandle, sandbox_url: &str, n: usize) -> anyhow::Result<Seeded> {
    let started = std::time::Instant::now();
    let now = app.now();
    let clinic_ids = clinics(&app.db, n, now).await?;
    let client = loadgen::client(false)?;
    let redirect = app.public_url.join(&format!("connections/{VENDOR}/callback"))?.to_string();
    let grants: Vec<Grant> = stream::iter(0..n)
        .map(|_| obtain_grant(&client, sandbox_url, &redirect))
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let pairs: Vec<(i64, Grant)> = clinic_ids.iter().copied().zip(grants).collect();
    for batch in pairs.chunks(STORE_BATCH) {
        store(app, batch, now).await?;
    }
    Ok(Seeded { clinic_ids, took: started.elapsed() })
}

/// `connections::store`, for many grants per transaction: the same sealing, bindings, row and
/// history entry. The account name is what the sandbox's identity call answers.
async fn store(app: &AppHandle, grants: &[(i64, Grant)], now: i64) -> anyhow::Result<()> {
    let vault = &app.state.vault;
    let detail = format!("Connected to {YAPPOINTMENT_COMPANY_NAME} with scopes: {SCOPES}");
    let mut sealed_all = Vec::with_capacity(grants.len());
    for (clinic_id, grant) in grants {
        let binding = |column| connection_binding(*clinic_id, VENDOR, column);
        let access = vault.seal_str(&SecretString::from(grant.access_token.clone()), &binding("access_token"))?;
        let refresh = grant
            .refresh_token
            .as_ref()
            .map(|t| vault.seal_str(&SecretString::from(t.clone()), &binding("refresh_token")))
            .transpose()?;
        sealed_all.push((*clinic_id, grant, access, refresh));
    }
    let mut rows = Vec::with_capacity(sealed_all.len());
    for (clinic_id, grant, access, refresh) in &sealed_all {
        let sealed = SealedGrant {
            clinic_id: *clinic_id,
            vendor: VENDOR,
            environment: "production",
            access_token: access,
            refresh_token: refresh.as_deref(),
            token_type: &grant.token_type,
            scopes: SCOPES,
            expires_at: grant.expires_in.map(|e| now + e),
            account_name: Some(YAPPOINTMENT_COMPANY_NAME),
            identity_retry: false,
            client_id: None,
            client_secret: None,
            parameters: "{}",
            // As `connections::store` does: the first health check at a random point of the
            // next interval, so the seeded connections are not all checked in one round.
            next_health_at: Some(app.state.health.next_at(now)),
            now,
        };
        rows.push((sealed, NewEvent { kind: "connected", detail: &detail, actor: "bench" }));
    }
    app.db.store_grants(&rows).await?;
    Ok(())
}
