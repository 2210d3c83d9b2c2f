//! What the dashboard and a vendor's page show about one of a clinic's connections: its state's
//! badge, what is wrong and how it is fixed, its facts, and the connect form (pre-filled, on a
//! reconnect, with everything stored that is not secret).

use std::collections::BTreeMap;

use crate::clock::{format_utc, UnixTime};
use crate::connections::{parameters_of, STATUS_CONNECTED, STATUS_DISCONNECTED};
use crate::db::connections::ConnectionRow;
use crate::status::{Fix, Problem, Status};
use crate::vendors::{FieldKind, Grant, Vendor};

/// One input of a connect form, ready for the template.
pub struct FieldView {
    pub name: String,
    pub label: String,
    pub help: String,
    /// `text`, `secret`, `select` or `multi`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<FieldOption>,
}

/// One choice of a select or multi-select field.
pub struct FieldOption {
    pub value: String,
    /// What the admin reads: the environment's name, a permission in words, or the value.
    pub label: String,
    pub selected: bool,
}

/// What the dashboard and detail page show about one vendor for a clinic.
pub struct ConnectionView {
    pub vendor_id: String,
    pub vendor_name: String,
    pub summary: String,
    pub connectable: bool,
    /// The stored status (`connected`, `reconnect_needed`…, or `disconnected` for none).
    pub status: String,
    /// The state the badge shows.
    pub state: Status,
    pub status_label: String,
    /// What is wrong, when something is.
    pub problem: Option<Problem>,
    pub account_name: Option<String>,
    pub scopes: Vec<(String, String)>,
    pub expires_at: Option<String>,
    pub connected_at: Option<String>,
    pub environment: Option<String>,
    /// Facts about a connected client-credentials connection (client id, domain…; never a secret).
    pub details: Vec<(String, String)>,
    /// The connect form; empty for a plain "Connect" button.
    pub fields: Vec<FieldView>,
}

impl ConnectionView {
    /// A live connection (in trouble or not).
    pub fn is_connected(&self) -> bool {
        self.status == STATUS_CONNECTED
    }

    /// Whether something is wrong that an admin should know about.
    pub fn needs_attention(&self) -> bool {
        self.state.needs_attention()
    }

    /// "Connect", or "Reconnect" for a connection to be made again.
    pub fn action_label(&self) -> &'static str {
        if self.needs_reconnect() {
            "Reconnect"
        } else {
            "Connect"
        }
    }

    /// The element id prefix of that action.
    pub fn action_id(&self) -> &'static str {
        if self.needs_reconnect() {
            "reconnect"
        } else {
            "connect"
        }
    }

    /// What mends it is connecting again: the vendor stopped accepting the connection, its key
    /// is gone, or the clinic's own credentials are refused.
    pub fn needs_reconnect(&self) -> bool {
        self.problem.as_ref().is_some_and(|p| p.fix == Fix::Reconnect)
    }

    /// What mends it comes by itself (or from the operator): the admin may check again now.
    pub fn offers_check(&self) -> bool {
        self.problem.as_ref().is_some_and(|p| p.fix == Fix::CheckAgain)
    }

    /// The connect form is shown: nothing is connected, or a reconnect is what fixes it.
    pub fn shows_connect_form(&self) -> bool {
        self.connectable && (!self.is_connected() || self.needs_reconnect())
    }

    /// There is a connection to disconnect: a live one, or one the vendor stopped accepting.
    pub fn can_disconnect(&self) -> bool {
        self.status != STATUS_DISCONNECTED
    }

    /// Whether connecting needs the form on the detail page rather than one button.
    pub fn needs_form(&self) -> bool {
        !self.fields.is_empty()
    }
}

/// The stored choices of a connection that a reconnect form starts from: everything but the
/// secret (client id, account name, region, domain, chosen permissions, environment).
fn stored_choices(vendor: &Vendor, row: &ConnectionRow) -> BTreeMap<String, String> {
    let mut stored: BTreeMap<String, String> = parameters_of(row).into_iter().collect();
    if let Some(id) = &row.client_id {
        stored.insert("client_id".to_owned(), id.clone());
    }
    if vendor.profile.field("environment").is_some() {
        stored.insert("environment".to_owned(), row.environment.clone());
    }
    stored
}

/// The view of a vendor for a clinic. `typed` is what the admin typed into a form shown again;
/// without it a connection that is there is the form's starting point.
pub fn view(
    vendor: &Vendor,
    row: Option<&ConnectionRow>,
    typed: &BTreeMap<String, String>,
    now: UnixTime,
) -> ConnectionView {
    let profile = &vendor.profile;
    let status = row.map(|r| r.status.clone()).unwrap_or_else(|| STATUS_DISCONNECTED.to_owned());
    let state = Status::of_row(row, now);
    // Client-credentials vendors are connected with the clinic's own credentials.
    let own_credentials = profile.grant == Grant::ClientCredentials;
    let problem = crate::status::problem(state, &profile.name, row, own_credentials, now);
    let live = row.filter(|r| r.status == STATUS_CONNECTED);
    let mut details = Vec::new();
    if let Some(r) = live {
        if let Some(id) = &r.client_id {
            details.push(("Client ID".to_owned(), id.clone()));
        }
        if r.client_secret.is_some() {
            details.push(("Client secret".to_owned(), "Set (stored encrypted, never shown)".to_owned()));
        }
        for (name, value) in parameters_of(r) {
            if name == "scopes" {
                continue;
            }
            let label = profile.field(&name).map(|f| f.label.clone()).unwrap_or(name);
            details.push((label, value));
        }
    }
    let stored;
    let values = match row.filter(|r| typed.is_empty() && r.status != STATUS_DISCONNECTED) {
        Some(r) => {
            stored = stored_choices(vendor, r);
            &stored
        }
        None => typed,
    };
    let usable: Vec<String> = vendor.usable_environments().iter().map(|e| e.name.clone()).collect();
    let fields = profile
        .fields
        .iter()
        .map(|f| {
            let value = values.get(&f.name).cloned().unwrap_or_default();
            let (kind, options) = match &f.kind {
                FieldKind::Text => ("text", Vec::new()),
                FieldKind::Secret => ("secret", Vec::new()),
                FieldKind::Select(options) => (
                    "select",
                    options
                        .iter()
                        .filter(|o| f.name != "environment" || usable.contains(o))
                        .map(|o| {
                            let label = match profile.environment(o).filter(|_| f.name == "environment") {
                                Some(env) => env.label.clone(),
                                None => o.clone(),
                            };
                            FieldOption { value: o.clone(), label, selected: *o == value }
                        })
                        .collect(),
                ),
                FieldKind::MultiSelect(options) => (
                    "multi",
                    options
                        .iter()
                        .map(|o| {
                            let described = if f.name == "scopes" { profile.describe_scope(o) } else { String::new() };
                            FieldOption {
                                value: o.clone(),
                                label: if described.is_empty() { o.clone() } else { described },
                                selected: value.is_empty() || value.split(' ').any(|v| v == o),
                            }
                        })
                        .collect(),
                ),
            };
            FieldView {
                name: f.name.clone(),
                label: f.label.clone(),
                help: f.help.clone(),
                kind,
                value: if kind == "secret" { String::new() } else { value },
                options,
            }
        })
        .collect();
    ConnectionView {
        vendor_id: profile.id.clone(),
        vendor_name: profile.name.clone(),
        summary: profile.summary.clone(),
        connectable: vendor.connectable(),
        status,
        state,
        status_label: state.label().to_owned(),
        problem,
        account_name: live.and_then(|r| r.account_name.clone()),
        scopes: live
            .map(|r| r.scopes.split_whitespace().map(|s| (s.to_owned(), profile.describe_scope(s))).collect())
            .unwrap_or_default(),
        expires_at: live.and_then(|r| r.expires_at).map(format_utc),
        connected_at: live.and_then(|r| r.connected_at).map(format_utc),
        environment: live.filter(|_| profile.environments.len() > 1).map(|r| r.environment.clone()),
        details,
        fields,
    }
}

/// The dashboard's order: what needs attention first (the most urgent first), then by name.
pub fn sort_for_dashboard(cards: &mut [ConnectionView]) {
    cards.sort_by_key(|c| (c.state.rank(), c.vendor_name.to_lowercase()));
}
