//! Connecting, viewing and disconnecting a clinic's account at a vendor. Routes call these;
//! these call the vendor, the vault and the database.

use std::sync::Arc;

use secrecy::SecretString;
use url::Url;

use crate::clock::{format_utc, UnixTime};
use crate::db::connections::{ConnectionRow, SealedGrant};
use crate::db::flows::NewFlow;
use crate::db::Db;
use crate::errors::AppError;
use crate::oauth::{self, CallbackError, CallbackOutcome, CallbackQuery};
use crate::startup::AppState;
use crate::vault::Binding;
use crate::vendors::http::{ClientCredentials, VendorError};
use crate::vendors::{Grant, Vendor};

pub const STATUS_CONNECTED: &str = "connected";
pub const STATUS_DISCONNECTED: &str = "disconnected";

/// The vault binding of a connection's secret column: the row is (clinic, vendor).
pub fn connection_binding(clinic_id: i64, vendor: &str, column: &str) -> Binding {
    Binding::new("connections", &format!("{clinic_id}/{vendor}"), column)
}

fn flow_binding(state_hash: &str) -> Binding {
    Binding::new("oauth_flows", state_hash, "verifier")
}

pub fn vendor<'a>(state: &'a AppState, id: &str) -> Result<&'a Arc<Vendor>, AppError> {
    state.vendors.get(id).ok_or(AppError::NotFound)
}

fn credentials(vendor: &Vendor) -> Result<ClientCredentials<'_>, AppError> {
    let registration = vendor.registration.as_ref().ok_or_else(|| {
        AppError::BadRequest(format!(
            "The operator has not registered this app at {} yet.",
            vendor.profile.name
        ))
    })?;
    Ok(ClientCredentials {
        client_id: &registration.client_id,
        client_secret: registration.client_secret.as_ref(),
    })
}

pub fn redirect_uri(public_url: &Url, vendor: &str) -> Result<Url, AppError> {
    public_url
        .join(&format!("connections/{vendor}/callback"))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("redirect URI: {e}")))
}

/// Starts an authorization-code flow; returns where to send the browser.
pub async fn start_authorization(
    state: &AppState,
    clinic_id: i64,
    session_binding: &str,
    vendor_id: &str,
) -> Result<Url, AppError> {
    let vendor = vendor(state, vendor_id)?;
    let profile = &vendor.profile;
    if profile.grant != Grant::AuthorizationCode {
        return Err(AppError::BadRequest(format!(
            "{} is connected by entering credentials.",
            profile.name
        )));
    }
    let client = credentials(vendor)?;
    let env = profile.default_environment().ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("vendor `{vendor_id}` has no environment"))
    })?;
    let redirect = redirect_uri(&state.public_url, vendor_id)?;
    let now = state.clock.now();
    let request = oauth::authorization_request(
        profile,
        env,
        client.client_id,
        &redirect,
        &profile.scopes,
        &[],
        now,
    )?;
    let state_hash = oauth::state_hash(&request.state);
    let verifier = state
        .vault
        .seal_str(&request.verifier, &flow_binding(&state_hash))?;
    state
        .db
        .insert_flow(&NewFlow {
            state_hash: &state_hash,
            session_binding,
            clinic_id,
            vendor: vendor_id,
            environment: &env.name,
            verifier: &verifier,
            redirect_uri: redirect.as_str(),
            scopes: &profile.scopes.join(" "),
            expires_at: request.expires_at,
        })
        .await?;
    tracing::info!(vendor = vendor_id, clinic_id, "authorization started");
    Ok(request.url)
}

pub enum CallbackResult {
    Connected,
    Denied { message: String },
}

/// Completes a flow: checks the state, exchanges the code once, stores the tokens sealed.
pub async fn complete_authorization(
    state: &AppState,
    clinic_id: i64,
    session_binding: &str,
    vendor_id: &str,
    query: CallbackQuery,
) -> Result<CallbackResult, AppError> {
    let vendor = vendor(state, vendor_id)?;
    let profile = &vendor.profile;
    let outcome = query
        .into_outcome()
        .map_err(|e| refuse_callback(vendor_id, e))?;
    let presented_state = match &outcome {
        CallbackOutcome::Code { state, .. } | CallbackOutcome::Denied { state, .. } => state,
    };
    let state_hash = oauth::state_hash(presented_state);
    let flow = state
        .db
        .take_flow(&state_hash, session_binding, vendor_id)
        .await?
        .ok_or_else(|| refuse_callback(vendor_id, CallbackError::UnknownState))?;
    let now = state.clock.now();
    oauth::check_flow(flow.clinic_id, flow.expires_at, clinic_id, now)
        .map_err(|e| refuse_callback(vendor_id, e))?;

    let code = match outcome {
        CallbackOutcome::Denied {
            error, description, ..
        } => {
            let detail = match &description {
                Some(d) => format!("{error}: {d}"),
                None => error.clone(),
            };
            state
                .db
                .add_event(clinic_id, vendor_id, "consent_denied", &detail, now)
                .await?;
            tracing::info!(vendor = vendor_id, clinic_id, %error, "authorization denied at the vendor");
            let message = if error == "access_denied" {
                format!(
                    "Access was not granted at {}. Nothing was changed.",
                    profile.name
                )
            } else {
                format!(
                    "{} did not grant access ({error}). Nothing was changed.",
                    profile.name
                )
            };
            return Ok(CallbackResult::Denied { message });
        }
        CallbackOutcome::Code { code, .. } => code,
    };

    let env = profile.environment(&flow.environment).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "flow environment `{}` is gone",
            flow.environment
        ))
    })?;
    let client = credentials(vendor)?;
    let verifier = state
        .vault
        .open_str(&flow.verifier, &flow_binding(&state_hash))?;
    let tokens = match state
        .http
        .exchange_code(profile, env, &client, &code, &verifier, &flow.redirect_uri)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            return Err(
                vendor_failure(&state.db, clinic_id, vendor, "connect_failed", e, now).await,
            )
        }
    };
    let account = match state
        .http
        .identity(profile, env, &tokens.access_token)
        .await
    {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(vendor = vendor_id, cause = %e, "identity call failed; connecting without an account name");
            None
        }
    };
    // RFC 6749 §5.1: no `scope` in the answer means the requested scopes were granted.
    let scopes = tokens.scope.clone().unwrap_or(flow.scopes);
    let access = state.vault.seal_str(
        &tokens.access_token,
        &connection_binding(clinic_id, vendor_id, "access_token"),
    )?;
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|t| {
            state.vault.seal_str(
                t,
                &connection_binding(clinic_id, vendor_id, "refresh_token"),
            )
        })
        .transpose()?;
    let mut tx = state.db.begin().await?;
    Db::store_grant(
        &mut tx,
        &SealedGrant {
            clinic_id,
            vendor: vendor_id,
            environment: &env.name,
            access_token: &access,
            refresh_token: refresh.as_deref(),
            token_type: &tokens.token_type,
            scopes: &scopes,
            expires_at: tokens.expires_in.map(|s| now + s),
            account_name: account.as_deref(),
            now,
        },
    )
    .await?;
    let detail = format!(
        "Connected{} with scopes: {scopes}",
        account
            .as_deref()
            .map(|a| format!(" to {a}"))
            .unwrap_or_default()
    );
    Db::add_event_in(&mut tx, clinic_id, vendor_id, "connected", &detail, now).await?;
    tx.commit().await?;
    tracing::info!(vendor = vendor_id, clinic_id, "connection stored");
    Ok(CallbackResult::Connected)
}

fn refuse_callback(vendor: &str, e: CallbackError) -> AppError {
    tracing::warn!(vendor, cause = %e, "callback refused");
    AppError::BadRequest(match e {
        CallbackError::MissingState | CallbackError::MissingCode => {
            "This return from the vendor is incomplete. Start the connection again from the dashboard.".to_owned()
        }
        CallbackError::UnknownState | CallbackError::WrongClinic => "This return from the vendor does not match a connection you started in this browser, or it was already used. Start the connection again from the dashboard.".to_owned(),
        CallbackError::Expired => "This connection attempt took longer than 10 minutes and expired. Start it again from the dashboard.".to_owned(),
    })
}

async fn vendor_failure(
    db: &Db,
    clinic_id: i64,
    vendor: &Vendor,
    kind: &str,
    e: VendorError,
    now: UnixTime,
) -> AppError {
    let message = e.user_message(&vendor.profile.name);
    if let Err(db_error) = db
        .add_event(clinic_id, &vendor.profile.id, kind, &e.to_string(), now)
        .await
    {
        tracing::error!(cause = %db_error, "could not record a connection event");
    }
    AppError::Vendor {
        message,
        cause: anyhow::Error::new(e),
    }
}

/// Revokes at the vendor and removes every token; the row and its history stay.
pub async fn disconnect(
    state: &AppState,
    clinic_id: i64,
    vendor_id: &str,
) -> Result<String, AppError> {
    let vendor = vendor(state, vendor_id)?;
    let profile = &vendor.profile;
    let row = state
        .db
        .connection(clinic_id, vendor_id)
        .await?
        .filter(|r| r.status != STATUS_DISCONNECTED)
        .ok_or_else(|| AppError::BadRequest(format!("{} is not connected.", profile.name)))?;
    let now = state.clock.now();
    let revocation = revoke_all(state, vendor, &row).await;
    let mut tx = state.db.begin().await?;
    if !Db::clear_grant(&mut tx, row.id, row.version, STATUS_DISCONNECTED, now).await? {
        return Err(AppError::BadRequest(format!(
            "The {} connection changed while disconnecting. Reload the page and try again.",
            profile.name
        )));
    }
    let (detail, message) = match &revocation {
        Ok(()) => ("Disconnected; access revoked at the vendor".to_owned(), format!("Disconnected from {}.", profile.name)),
        Err(e) => (
            format!("Disconnected here; revocation at the vendor failed: {e}"),
            format!("Disconnected here. {} could not be told to revoke access ({e}); the tokens were discarded.", profile.name),
        ),
    };
    Db::add_event_in(&mut tx, clinic_id, vendor_id, "disconnected", &detail, now).await?;
    tx.commit().await?;
    tracing::info!(
        vendor = vendor_id,
        clinic_id,
        revoked = revocation.is_ok(),
        "disconnected"
    );
    Ok(message)
}

async fn revoke_all(
    state: &AppState,
    vendor: &Vendor,
    row: &ConnectionRow,
) -> Result<(), VendorError> {
    let profile = &vendor.profile;
    let env = profile
        .environment(&row.environment)
        .ok_or(VendorError::NotRegistered)?;
    let client = match credentials(vendor) {
        Ok(c) => c,
        Err(_) => return Err(VendorError::NotRegistered),
    };
    let open = |column: &str, record: &Option<Vec<u8>>| -> Option<SecretString> {
        let record = record.as_ref()?;
        match state.vault.open_str(
            record,
            &connection_binding(row.clinic_id, &row.vendor, column),
        ) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::warn!(vendor = %row.vendor, column, cause = %e, "stored token does not open; not revoked");
                None
            }
        }
    };
    // The refresh token first: revoking it ends the grant at vendors that tie the two together.
    for token in [
        open("refresh_token", &row.refresh_token),
        open("access_token", &row.access_token),
    ]
    .into_iter()
    .flatten()
    {
        state.http.revoke(profile, env, &client, &token).await?;
    }
    Ok(())
}

/// What the dashboard and detail page show about one vendor for a clinic.
pub struct ConnectionView {
    pub vendor_id: String,
    pub vendor_name: String,
    pub summary: String,
    pub available: bool,
    pub registered: bool,
    pub status: String,
    pub status_label: String,
    pub account_name: Option<String>,
    pub scopes: Vec<(String, String)>,
    pub expires_at: Option<String>,
    pub connected_at: Option<String>,
    pub environment: Option<String>,
}

impl ConnectionView {
    pub fn is_connected(&self) -> bool {
        self.status == STATUS_CONNECTED
    }
}

pub fn view(vendor: &Vendor, row: Option<&ConnectionRow>) -> ConnectionView {
    let profile = &vendor.profile;
    let status = row
        .map(|r| r.status.clone())
        .unwrap_or_else(|| STATUS_DISCONNECTED.to_owned());
    let status_label = match status.as_str() {
        STATUS_CONNECTED => "Connected",
        _ => "Not connected",
    }
    .to_owned();
    let live = row.filter(|r| r.status == STATUS_CONNECTED);
    ConnectionView {
        vendor_id: profile.id.clone(),
        vendor_name: profile.name.clone(),
        summary: profile.summary.clone(),
        available: true,
        registered: vendor.registration.is_some(),
        status,
        status_label,
        account_name: live.and_then(|r| r.account_name.clone()),
        scopes: live
            .map(|r| {
                r.scopes
                    .split_whitespace()
                    .map(|s| (s.to_owned(), profile.describe_scope(s)))
                    .collect()
            })
            .unwrap_or_default(),
        expires_at: live.and_then(|r| r.expires_at).map(format_utc),
        connected_at: live.and_then(|r| r.connected_at).map(format_utc),
        environment: live.map(|r| r.environment.clone()),
    }
}

pub fn planned_view(id: &str, name: &str) -> ConnectionView {
    ConnectionView {
        vendor_id: id.to_owned(),
        vendor_name: name.to_owned(),
        summary: "Connecting this vendor is not available in this version yet.".to_owned(),
        available: false,
        registered: false,
        status: STATUS_DISCONNECTED.to_owned(),
        status_label: "Not available yet".to_owned(),
        account_name: None,
        scopes: Vec::new(),
        expires_at: None,
        connected_at: None,
        environment: None,
    }
}
