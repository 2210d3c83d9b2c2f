//! Connecting, viewing and disconnecting a clinic's account at a vendor. Routes call these;
//! these call the vendor, the vault and the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use secrecy::SecretString;
use url::Url;

use crate::clock::UnixTime;
use crate::db::admins::AdminRow;
use crate::db::connections::{ConnectionRow, NewEvent, SealedGrant};
use crate::db::flows::NewFlow;
use crate::db::revocations::NewRevocation;
use crate::db::Db;
use crate::errors::AppError;
use crate::notice::Notice;
use crate::oauth::{self, CallbackError, CallbackOutcome, CallbackQuery};
use crate::startup::AppState;
use crate::vault::Binding;
use crate::vendors::http::{ClientCredentials, Endpoints, TokenSet, VendorError};
use crate::vendors::{FieldKind, Grant, Parameters, Vendor};

pub use crate::connection_view::{view, ConnectionView, FieldOption, FieldView};

pub const STATUS_CONNECTED: &str = "connected";
pub const STATUS_DISCONNECTED: &str = "disconnected";

/// Who did something, in a connection's history: the background worker, the command line, the
/// clinic's own systems through the API, or an admin (`admin_actor`).
pub const WORKER: &str = "worker";
pub const CLI: &str = "cli";
pub const API: &str = "api";

pub fn admin_actor(email: &str) -> String {
    format!("admin:{email}")
}

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

pub(crate) fn app_credentials<'a>(vendor: &'a Vendor, environment: &str) -> Result<ClientCredentials<'a>, AppError> {
    let registration = vendor.registration(environment).ok_or_else(|| {
        AppError::BadRequest(format!(
            "The operator has not registered this app at {} ({environment}) yet.",
            vendor.profile.name
        ))
    })?;
    Ok(ClientCredentials {
        client_id: &registration.client_id,
        client_secret: registration.client_secret.as_ref(),
        auth: None,
    })
}

pub fn redirect_uri(public_url: &Url, vendor: &str) -> Result<Url, AppError> {
    public_url
        .join(&format!("connections/{vendor}/callback"))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("redirect URI: {e}")))
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("{e}"))
}

/// The fields of a submitted connect form, in order; a field may repeat (multi-select).
#[derive(Default)]
pub struct ConnectInput(Vec<(String, String)>);

impl ConnectInput {
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

impl std::fmt::Debug for ConnectInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ConnectInput").field("fields", &names).finish()
    }
}

/// A connect form that has to be shown again, with what was typed (never the secret).
pub struct FormProblem {
    pub status: StatusCode,
    pub message: String,
    pub values: BTreeMap<String, String>,
}

pub enum ConnectError {
    App(AppError),
    Form(FormProblem),
}

impl From<AppError> for ConnectError {
    fn from(e: AppError) -> Self {
        ConnectError::App(e)
    }
}

impl From<sqlx::Error> for ConnectError {
    fn from(e: sqlx::Error) -> Self {
        ConnectError::App(e.into())
    }
}

impl From<crate::vault::VaultError> for ConnectError {
    fn from(e: crate::vault::VaultError) -> Self {
        ConnectError::App(e.into())
    }
}

pub enum Started {
    /// A code flow: send the browser to the vendor.
    Redirect(Url),
    /// Client credentials: checked with the vendor and stored; `note` says what the account
    /// lookup could not do.
    Connected { note: Option<String> },
}

/// "Connect" on the dashboard or the detail page.
pub async fn start(
    state: &AppState,
    admin: &AdminRow,
    session_binding: &str,
    vendor_id: &str,
    input: &ConnectInput,
) -> Result<Started, ConnectError> {
    let vendor = vendor(state, vendor_id)?;
    match vendor.profile.grant {
        Grant::AuthorizationCode => {
            Ok(Started::Redirect(start_authorization(state, admin, session_binding, vendor, input).await?))
        }
        Grant::ClientCredentials => {
            connect_with_credentials(state, admin.clinic_id, &admin_actor(&admin.email), vendor, input).await
        }
    }
}

async fn start_authorization(
    state: &AppState,
    admin: &AdminRow,
    session_binding: &str,
    vendor: &Vendor,
    input: &ConnectInput,
) -> Result<Url, AppError> {
    let profile = &vendor.profile;
    let env = match input.get("environment").filter(|e| !e.is_empty()) {
        Some(name) => profile
            .environment(name)
            .ok_or_else(|| AppError::BadRequest(format!("{} has no environment called that.", profile.name)))?,
        None => profile.default_environment().ok_or_else(|| internal("vendor without environments"))?,
    };
    let client = app_credentials(vendor, &env.name)?;
    let endpoints = Endpoints::resolve(profile, env, &Parameters::new())?;
    let authorize = endpoints.authorize.ok_or_else(|| internal("code-flow vendor without an authorize URL"))?;
    let redirect = redirect_uri(&state.public_url, &profile.id)?;
    let mut extra = Vec::new();
    if let Some(audience) = &env.user_audience {
        extra.push(("audience".to_owned(), audience.clone()));
    }
    if profile.login_hint {
        extra.push(("login_hint".to_owned(), admin.email.clone()));
    }
    let now = state.clock.now();
    let request =
        oauth::authorization_request(profile, &authorize, client.client_id, &redirect, &profile.scopes, &extra, now)?;
    let state_hash = oauth::state_hash(&request.state);
    let verifier = state.vault.seal_str(&request.verifier, &flow_binding(&state_hash))?;
    state
        .db
        .insert_flow(&NewFlow {
            state_hash: &state_hash,
            session_binding,
            clinic_id: Some(admin.clinic_id),
            return_to: None,
            vendor: &profile.id,
            environment: &env.name,
            verifier: &verifier,
            redirect_uri: redirect.as_str(),
            scopes: &profile.scopes.join(" "),
            expires_at: request.expires_at,
        })
        .await?;
    tracing::info!(vendor = %profile.id, environment = %env.name, clinic_id = admin.clinic_id, "authorization started");
    Ok(request.url)
}

pub enum CallbackResult {
    Connected { note: Option<String> },
    Denied { message: String },
}

/// Completes a flow: checks the state, exchanges the code once, stores the tokens sealed.
pub async fn complete_authorization(
    state: &AppState,
    admin: &AdminRow,
    session_binding: &str,
    vendor_id: &str,
    query: CallbackQuery,
) -> Result<CallbackResult, AppError> {
    let clinic_id = admin.clinic_id;
    let actor = admin_actor(&admin.email);
    let vendor = vendor(state, vendor_id)?;
    let profile = &vendor.profile;
    let outcome = query.into_outcome().map_err(|e| refuse_callback(vendor_id, e))?;
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
    oauth::check_flow(flow.clinic_id, flow.expires_at, Some(clinic_id), now)
        .map_err(|e| refuse_callback(vendor_id, e))?;
    // RFC 9207: before anything is asked of the vendor (the flow is used up either way).
    if let Err(e) = oauth::check_callback_issuer(profile, &flow.environment, &outcome) {
        let presented: Option<String> = outcome.issuer().map(|i| i.chars().take(200).collect());
        tracing::warn!(vendor = vendor_id, clinic_id, environment = %flow.environment, ?presented, "callback issuer refused");
        return Err(refuse_callback(vendor_id, e));
    }

    let code = match outcome {
        CallbackOutcome::Denied { error, description, .. } => {
            let detail = match &description {
                Some(d) => format!("{error}: {d}"),
                None => error.clone(),
            };
            let event = NewEvent { kind: "consent_denied", detail: &detail, actor: &actor };
            state.db.add_event(clinic_id, vendor_id, &event, now).await?;
            tracing::info!(vendor = vendor_id, clinic_id, %error, "authorization denied at the vendor");
            let message = if error == "access_denied" {
                format!("Access was not granted at {}. Nothing was changed.", profile.name)
            } else {
                format!(
                    "{} did not grant access ({error}{}). Nothing was changed.",
                    profile.name,
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                )
            };
            return Ok(CallbackResult::Denied { message });
        }
        CallbackOutcome::Code { code, .. } => code,
    };

    let env = profile
        .environment(&flow.environment)
        .ok_or_else(|| internal(format!("flow environment `{}` is gone", flow.environment)))?;
    let client = app_credentials(vendor, &env.name)?;
    let endpoints = Endpoints::resolve(profile, env, &Parameters::new())?;
    let verifier = state.vault.open_str(&flow.verifier, &flow_binding(&state_hash))?;
    let tokens =
        match state.http.exchange_code(profile, &endpoints, &client, &code, &verifier, &flow.redirect_uri).await {
            Ok(tokens) => tokens,
            Err(e) => return Err(vendor_failure(&state.db, clinic_id, &actor, vendor, "connect_failed", e, now).await),
        };
    let identity = lookup_identity(state, vendor, &endpoints, &tokens.access_token).await;
    let note = identity.note.clone();
    store(
        state,
        Store {
            clinic_id,
            actor: &actor,
            vendor,
            environment: &env.name,
            tokens: &tokens,
            requested_scopes: &flow.scopes,
            identity,
            client_id: None,
            client_secret: None,
            parameters: &Parameters::new(),
            now,
        },
    )
    .await?;
    Ok(CallbackResult::Connected { note })
}

fn refuse_callback(vendor: &str, e: CallbackError) -> AppError {
    tracing::warn!(vendor, cause = %e, "callback refused");
    AppError::BadRequest(match e {
        CallbackError::MissingState | CallbackError::MissingCode => {
            "This return from the vendor is incomplete. Start the connection again from the dashboard.".to_owned()
        }
        CallbackError::UnknownState | CallbackError::WrongClinic => "This return from the vendor does not match a connection you started in this browser, or it was already used. Start the connection again from the dashboard.".to_owned(),
        CallbackError::Expired => "This connection attempt took longer than 10 minutes and expired. Start it again from the dashboard.".to_owned(),
        CallbackError::MissingIssuer | CallbackError::WrongIssuer => "This return did not come from the vendor's authorization server as configured: it did not name the expected issuer. Nothing was requested from the vendor and nothing was changed. Start the connection again from the dashboard; if this keeps happening, tell the operator.".to_owned(),
    })
}

async fn record_failure(
    db: &Db,
    clinic_id: i64,
    actor: &str,
    vendor: &Vendor,
    kind: &str,
    e: &VendorError,
    now: UnixTime,
) {
    let detail = e.to_string();
    let event = NewEvent { kind, detail: &detail, actor };
    if let Err(db_error) = db.add_event(clinic_id, &vendor.profile.id, &event, now).await {
        tracing::error!(cause = %db_error, "could not record a connection event");
    }
}

async fn vendor_failure(
    db: &Db,
    clinic_id: i64,
    actor: &str,
    vendor: &Vendor,
    kind: &str,
    e: VendorError,
    now: UnixTime,
) -> AppError {
    record_failure(db, clinic_id, actor, vendor, kind, &e, now).await;
    AppError::Vendor { message: e.user_message(&vendor.profile.name), cause: anyhow::Error::new(e) }
}

/// Validates a client-credentials form, fetches a token with the typed credentials (so wrong
/// ones are caught at once), and stores everything sealed.
async fn connect_with_credentials(
    state: &AppState,
    clinic_id: i64,
    actor: &str,
    vendor: &Vendor,
    input: &ConnectInput,
) -> Result<Started, ConnectError> {
    let profile = &vendor.profile;
    let typed = validate_fields(vendor, input)?;
    let env = profile.default_environment().ok_or_else(|| internal("vendor without environments"))?;
    let client_id = typed.values.get("client_id").cloned().unwrap_or_default();
    let client_secret = typed.secret;
    let mut parameters = typed.values.clone();
    parameters.remove("client_id");
    let scopes = parameters.get("scopes").cloned().unwrap_or_else(|| profile.scopes.join(" "));
    let endpoints = Endpoints::resolve(profile, env, &parameters)
        .map_err(|e| form_problem(&typed.values, StatusCode::BAD_REQUEST, e.to_string()))?;
    let now = state.clock.now();
    let client = ClientCredentials { client_id: &client_id, client_secret: client_secret.as_ref(), auth: None };
    let tokens =
        match state.http.client_credentials(profile, &endpoints, &client, &scopes, env.api_audience.as_deref()).await {
            Ok(tokens) => tokens,
            Err(e) => {
                record_failure(&state.db, clinic_id, actor, vendor, "connect_failed", &e, now).await;
                tracing::warn!(vendor = %profile.id, cause = %e, "credentials check failed");
                let status = match &e {
                    VendorError::Refused { status, .. } if *status < 500 => StatusCode::BAD_REQUEST,
                    _ => StatusCode::BAD_GATEWAY,
                };
                return Err(form_problem(&typed.values, status, e.user_message(&profile.name)));
            }
        };
    let identity = lookup_identity(state, vendor, &endpoints, &tokens.access_token).await;
    let secret = client_secret
        .as_ref()
        .map(|s| state.vault.seal_str(s, &connection_binding(clinic_id, &profile.id, "client_secret")))
        .transpose()?;
    let note = identity.note.clone();
    store(
        state,
        Store {
            clinic_id,
            actor,
            vendor,
            environment: &env.name,
            tokens: &tokens,
            requested_scopes: &scopes,
            identity,
            client_id: Some(&client_id),
            client_secret: secret.as_deref(),
            parameters: &parameters,
            now,
        },
    )
    .await?;
    Ok(Started::Connected { note })
}

struct Typed {
    values: BTreeMap<String, String>,
    secret: Option<SecretString>,
}

fn form_problem(values: &BTreeMap<String, String>, status: StatusCode, message: String) -> ConnectError {
    ConnectError::Form(FormProblem { status, message, values: values.clone() })
}

fn validate_fields(vendor: &Vendor, input: &ConnectInput) -> Result<Typed, ConnectError> {
    let mut values = BTreeMap::new();
    let mut secret = None;
    let mut problems = Vec::new();
    for field in &vendor.profile.fields {
        match &field.kind {
            FieldKind::Text => {
                let v = input.get(&field.name).unwrap_or_default().trim().to_owned();
                if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                    problems.push(format!("{} is required (at most 200 characters).", field.label));
                }
                values.insert(field.name.clone(), v.chars().take(200).collect());
            }
            FieldKind::Secret => {
                let v = input.get(&field.name).unwrap_or_default().trim().to_owned();
                if v.is_empty() || v.len() > 1000 {
                    problems.push(format!("{} is required.", field.label));
                } else {
                    secret = Some(SecretString::from(v));
                }
            }
            FieldKind::Select(options) => {
                let v = input.get(&field.name).unwrap_or_default();
                if options.iter().any(|o| o == v) {
                    values.insert(field.name.clone(), v.to_owned());
                } else {
                    problems.push(format!("Choose a {} from the list.", field.label.to_lowercase()));
                }
            }
            FieldKind::MultiSelect(options) => {
                let chosen = input.all(&field.name);
                if chosen.is_empty() || chosen.iter().any(|c| !options.iter().any(|o| o == c)) {
                    problems.push(format!("Choose at least one of the {}.", field.label.to_lowercase()));
                }
                let ordered: Vec<&str> =
                    options.iter().filter(|o| chosen.contains(&o.as_str())).map(String::as_str).collect();
                values.insert(field.name.clone(), ordered.join(" "));
            }
        }
    }
    if problems.is_empty() {
        Ok(Typed { values, secret })
    } else {
        Err(form_problem(&values, StatusCode::BAD_REQUEST, problems.join(" ")))
    }
}

struct Identity {
    account: Option<String>,
    retry: bool,
    /// Something the admin should know, shown once and kept in the history.
    note: Option<String>,
}

/// Asks the vendor whose account this is. A 403 names the missing permission; a passing failure
/// (5xx, timeout) leaves the lookup to be tried again later. Neither stops the connection.
async fn lookup_identity(state: &AppState, vendor: &Vendor, endpoints: &Endpoints, token: &SecretString) -> Identity {
    let profile = &vendor.profile;
    match state.http.identity(profile, endpoints, token).await {
        Ok(account) => Identity { account, retry: false, note: None },
        Err(VendorError::Refused { status: 403, .. }) => {
            let missing = profile
                .identity
                .as_ref()
                .and_then(|c| c.required_scope.clone())
                .map(|s| format!(": the connection lacks the `{s}` permission"))
                .unwrap_or_else(|| ": the connection lacks a permission it needs".to_owned());
            Identity {
                account: None,
                retry: false,
                note: Some(format!("{} refused the account lookup (HTTP 403){missing}.", profile.name)),
            }
        }
        Err(e) => {
            tracing::warn!(vendor = %profile.id, cause = %e, "account lookup failed; will retry");
            Identity {
                account: None,
                retry: true,
                note: Some(format!(
                    "{} could not tell us the account name yet ({e}); it will be looked up again.",
                    profile.name
                )),
            }
        }
    }
}

struct Store<'a> {
    clinic_id: i64,
    actor: &'a str,
    vendor: &'a Vendor,
    environment: &'a str,
    tokens: &'a TokenSet,
    requested_scopes: &'a str,
    identity: Identity,
    client_id: Option<&'a str>,
    client_secret: Option<&'a [u8]>,
    parameters: &'a Parameters,
    now: UnixTime,
}

/// Seals the tokens and writes the connection and its history entry in one durable transaction.
async fn store(state: &AppState, s: Store<'_>) -> Result<(), AppError> {
    let vendor_id = &s.vendor.profile.id;
    // RFC 6749 §5.1: no `scope` in the answer means the requested scopes were granted.
    let scopes =
        s.tokens.scope.clone().filter(|sc| !sc.trim().is_empty()).unwrap_or_else(|| s.requested_scopes.to_owned());
    let access =
        state.vault.seal_str(&s.tokens.access_token, &connection_binding(s.clinic_id, vendor_id, "access_token"))?;
    let refresh = s
        .tokens
        .refresh_token
        .as_ref()
        .map(|t| state.vault.seal_str(t, &connection_binding(s.clinic_id, vendor_id, "refresh_token")))
        .transpose()?;
    let parameters = serde_json::to_string(s.parameters).map_err(internal)?;
    let mut detail = format!(
        "Connected{}{} with scopes: {scopes}",
        s.identity.account.as_deref().map(|a| format!(" to {a}")).unwrap_or_default(),
        if s.vendor.profile.environments.len() > 1 { format!(" ({})", s.environment) } else { String::new() },
    );
    if let Some(note) = &s.identity.note {
        detail.push_str(". ");
        detail.push_str(note);
    }
    let grant = SealedGrant {
        clinic_id: s.clinic_id,
        vendor: vendor_id,
        environment: s.environment,
        access_token: &access,
        refresh_token: refresh.as_deref(),
        token_type: &s.tokens.token_type,
        scopes: &scopes,
        expires_at: s.tokens.expires_in.map(|e| s.now.saturating_add(e)),
        account_name: s.identity.account.as_deref(),
        identity_retry: s.identity.retry,
        client_id: s.client_id,
        client_secret: s.client_secret,
        parameters: &parameters,
        next_health_at: Some(state.health.next_at(s.now)),
        now: s.now,
    };
    state.db.store_grant(&grant, &NewEvent { kind: "connected", detail: &detail, actor: s.actor }).await?;
    tracing::info!(vendor = %vendor_id, clinic_id = s.clinic_id, "connection stored");
    Ok(())
}

/// The stored choices of a connection (domain, region…).
pub fn parameters_of(row: &ConnectionRow) -> Parameters {
    crate::vendors::profile::parse_parameters(&row.parameters)
}

/// Tries the account lookup again for a connection whose earlier lookup failed in passing.
pub async fn retry_identity(
    state: &AppState,
    vendor: &Vendor,
    row: &ConnectionRow,
) -> Result<Option<String>, AppError> {
    let profile = &vendor.profile;
    let (Some(env), Some(sealed)) = (profile.environment(&row.environment), row.access_token.as_ref()) else {
        return Ok(None);
    };
    let token = state.vault.open_str(sealed, &connection_binding(row.clinic_id, &row.vendor, "access_token"))?;
    let endpoints = vendor.endpoints(&env.name, &row.parameters)?;
    let identity = lookup_identity(state, vendor, &endpoints, &token).await;
    let detail = identity.account.as_ref().map(|account| format!("Account: {account}"));
    let event = detail.as_deref().map(|detail| NewEvent { kind: "identified", detail, actor: WORKER });
    state
        .db
        .set_account(row.id, identity.account.as_deref(), identity.retry, event.as_ref(), state.clock.now())
        .await?;
    Ok(identity.account)
}

/// Disconnects: the tokens and secrets are removed here at once, together with a queue of the
/// tokens to revoke at the vendor (where it offers revocation), in one transaction; then the
/// vendor is asked to revoke them. The row and its history stay. A vendor that cannot be reached
/// (or a process that stops before its answer is written down) leaves the revocations queued for
/// the background worker of any instance (see [`crate::revocation`]).
pub async fn disconnect(state: &AppState, clinic_id: i64, vendor_id: &str, actor: &str) -> Result<Notice, AppError> {
    let vendor = vendor(state, vendor_id)?;
    let profile = &vendor.profile;
    let row = state
        .db
        .connection(clinic_id, vendor_id)
        .await?
        .filter(|r| r.status != STATUS_DISCONNECTED)
        .ok_or_else(|| AppError::BadRequest(format!("{} is not connected.", profile.name)))?;
    let now = state.clock.now();
    let to_revoke = tokens_to_revoke(state, vendor, &row);
    let tokens = match &to_revoke {
        ToRevoke::NotOffered => &[][..],
        ToRevoke::Tokens(tokens) => &tokens[..],
    };
    let mut sealed = Vec::with_capacity(tokens.len());
    for token in tokens {
        let reference = crate::vault::random_token(16)?;
        let record = state.vault.seal_str(token, &crate::revocation::binding(&reference))?;
        sealed.push((reference, record));
    }
    let revocations: Vec<NewRevocation<'_>> = sealed
        .iter()
        .map(|(reference, token)| NewRevocation {
            reference,
            environment: &row.environment,
            parameters: &row.parameters,
            token,
        })
        .collect();
    let (detail, done) = match &to_revoke {
        ToRevoke::NotOffered => (
            "Disconnected; the vendor offers no revocation, so the stored tokens and secrets were deleted",
            Notice::success(format!("Disconnected from {}. The stored tokens and secrets were deleted.", profile.name)),
        ),
        ToRevoke::Tokens(tokens) if tokens.is_empty() => (
            "Disconnected; no token was held, so there was nothing to revoke",
            Notice::success(format!("Disconnected from {}.", profile.name)),
        ),
        ToRevoke::Tokens(_) => (
            "Disconnected; the stored tokens and secrets were deleted here, and access is revoked at the vendor",
            Notice::success(format!("Disconnected from {}. Access was revoked at {0}.", profile.name)),
        ),
    };
    let event = NewEvent { kind: "disconnected", detail, actor };
    let lease_until = now.saturating_add(state.tokens.lease_seconds());
    let owner = state.tokens.owner();
    let queued =
        state.db.disconnect(row.id, row.version, &revocations, owner, lease_until, &event, now).await?.ok_or_else(
            || {
                AppError::BadRequest(format!(
                    "The {} connection changed while disconnecting. Reload the page and try again.",
                    profile.name
                ))
            },
        )?;
    let notice = if queued.is_empty() {
        done
    } else {
        let pending = state.db.revocations(&queued).await?;
        match crate::revocation::attempt_queued(state, &pending, actor).await {
            Ok(crate::revocation::Outcome::Revoked) => done,
            Ok(crate::revocation::Outcome::Postponed(error)) => Notice::warning(format!(
                "Disconnected here. {} could not be reached to revoke access ({error}); it will be retried in the background.",
                profile.name
            )),
            Err(e) => {
                tracing::error!(cause = format!("{e:#}"), "revocation bookkeeping failed; the worker will retry");
                Notice::warning(format!(
                    "Disconnected here. Access will be revoked at {} in the background.",
                    profile.name
                ))
            }
        }
    };
    tracing::info!(vendor = vendor_id, clinic_id, "disconnected");
    Ok(notice)
}

/// What a disconnect asks the vendor to revoke.
enum ToRevoke {
    NotOffered,
    /// The tokens that are held and open, the refresh token first (revoking it ends the grant at
    /// vendors that tie the two together); empty when none is held.
    Tokens(Vec<SecretString>),
}

fn tokens_to_revoke(state: &AppState, vendor: &Vendor, row: &ConnectionRow) -> ToRevoke {
    let profile = &vendor.profile;
    let Some(env) = profile.environment(&row.environment) else { return ToRevoke::NotOffered };
    let Ok(endpoints) = vendor.endpoints(&env.name, &row.parameters) else { return ToRevoke::NotOffered };
    if endpoints.revoke.is_none() || app_credentials(vendor, &env.name).is_err() {
        return ToRevoke::NotOffered;
    }
    let open = |column: &str, record: &Option<Vec<u8>>| -> Option<SecretString> {
        let record = record.as_ref()?;
        match state.vault.open_str(record, &connection_binding(row.clinic_id, &row.vendor, column)) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::warn!(vendor = %row.vendor, column, cause = %e, "stored token does not open; not revoked");
                None
            }
        }
    };
    ToRevoke::Tokens(
        [open("refresh_token", &row.refresh_token), open("access_token", &row.access_token)]
            .into_iter()
            .flatten()
            .collect(),
    )
}
