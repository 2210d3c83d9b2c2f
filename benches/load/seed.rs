//! A fresh database of N connections, made fast but legitimately: clinics and admins through the
//! `Db` API (as the tests do, with one password hash for all), and for each clinic a real grant
//! issued by the sandbox, stored sealed exactly as `connections::store` stores a grant. Also the
//! sandbox's consent page, as a browser answers it (the connect flows use it).

use std::time::Duration;

use clinic_connect::connections::connection_binding;
use clinic_connect::db::connections::{NewEvent, SealedGrant};
use clinic_connect::db::Db;
use clinic_connect::sandbox::{SandboxControl, SandboxGrant, YAPPOINTMENT_COMPANY_NAME};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use secrecy::SecretString;
use url::Url;

use crate::harness::AppHandle;

pub const VENDOR: &str = "yappointment";
/// yAppointment's scopes, as the app requests them (`vendors/builtin.rs`).
pub const SCOPES: &str = "bookings:read services:read calendars:read customers:read";
pub const PASSWORD: &str = "bench password, not a secret";
/// Grants stored per transaction: setup is not measured, so it need not pay one fsync each.
const STORE_BATCH: usize = 1_000;

pub fn clinic_name(i: usize) -> String {
    format!("Bench Clinic {i:05}")
}

pub fn admin_email(i: usize) -> String {
    format!("admin-{i:05}@bench.clinic.test")
}

/// An admin for each of these clinics (by 1-based clinic number), all with the same password hash.
pub async fn admins(db: &Db, clinics: &[(usize, i64)], hash: &str, now: i64) -> anyhow::Result<()> {
    for (i, clinic_id) in clinics {
        db.insert_admin(*clinic_id, &admin_email(*i), hash, now).await?;
    }
    Ok(())
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

/// Clinics `1..=n`, each with a live yAppointment connection holding a real sandbox grant:
/// the sandbox issues the grants as its consent page and code exchange would
/// (`SandboxControl::yappointment_grants`, no HTTP round trips), and they are sealed and stored
/// as `connections::store` stores one, many per transaction (`Db::store_grants`), as
/// `tests/api/helpers.rs::seed_yappointment` does.
pub async fn connections(app: &AppHandle, sandbox: &SandboxControl, n: usize) -> anyhow::Result<Seeded> {
    let started = std::time::Instant::now();
    let now = app.now();
    let names: Vec<String> = (1..=n).map(clinic_name).collect();
    let clinic_ids = app.db.ensure_clinics(&names, now).await?;
    let grants = sandbox.yappointment_grants(n);
    anyhow::ensure!(grants.len() == n, "the sandbox issued {} grants, not {n}", grants.len());
    let pairs: Vec<(i64, SandboxGrant)> = clinic_ids.iter().copied().zip(grants).collect();
    for batch in pairs.chunks(STORE_BATCH) {
        store(app, batch, now).await?;
    }
    Ok(Seeded { clinic_ids, took: started.elapsed() })
}

/// `connections::store`, for many grants per transaction: the same sealing, bindings, row and
/// history entry. The account name is what the sandbox's identity call answers.
async fn store(app: &AppHandle, grants: &[(i64, SandboxGrant)], now: i64) -> anyhow::Result<()> {
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
            token_type: "Bearer",
            scopes: SCOPES,
            expires_at: Some(now + grant.expires_in),
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
