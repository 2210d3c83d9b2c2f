//! The vendors we know, as their own documentation describes them (`vendor-docs/`).
//!
//! No vendor's documentation says its authorization responses carry `iss` (RFC 9207), so no
//! environment declares an issuer here; an operator whose vendor sends one declares it in the
//! configuration file (`issuer = "…"`), and callbacks then require it.

use super::profile::{
    BodyFormat, ClientAuth, Environment, Field, FieldKind, Grant, HeaderSource, IdentityCall, UrlTemplate,
    VendorProfile,
};

fn t(s: &str) -> UrlTemplate {
    UrlTemplate::new(s)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn described(items: &[(&str, &str)]) -> (Vec<String>, Vec<(String, String)>) {
    (
        items.iter().map(|(s, _)| (*s).to_owned()).collect(),
        items.iter().map(|(s, d)| ((*s).to_owned(), (*d).to_owned())).collect(),
    )
}

fn client_fields() -> Vec<Field> {
    vec![
        Field { name: "client_id".into(), label: "Client ID".into(), help: String::new(), kind: FieldKind::Text },
        Field {
            name: "client_secret".into(),
            label: "Client secret".into(),
            help: "Stored encrypted and never shown again.".into(),
            kind: FieldKind::Secret,
        },
    ]
}

pub const ZOCDOC_ENVIRONMENTS: [&str; 2] = ["production", "sandbox"];

pub fn zocdoc() -> VendorProfile {
    let (scopes, scope_descriptions) = described(&[
        ("external.appointment.read", "view appointments"),
        ("external.appointment.write", "book and manage appointments"),
        ("offline_access", "stay connected (refresh token)"),
    ]);
    VendorProfile {
        id: "zocdoc".into(),
        name: "Zocdoc".into(),
        summary: "Providers sign in with Zocdoc (authorization code with PKCE, public client); sandbox or production."
            .into(),
        grant: Grant::AuthorizationCode,
        client_auth: ClientAuth::Public,
        body: BodyFormat::Json,
        pkce: true,
        scopes,
        scope_descriptions,
        extra_authorize_params: Vec::new(),
        login_hint: true,
        extra_token_headers: Vec::new(),
        environments: vec![
            Environment {
                name: "production".into(),
                label: "Production".into(),
                authorize_url: Some(t("https://auth.zocdoc.com/authorize")),
                token_url: t("https://auth.zocdoc.com/oauth/token"),
                revoke_url: None,
                api_base: t("https://api-developer.zocdoc.com/"),
                user_audience: Some("DeveloperApiPatient".into()),
                api_audience: Some("https://api-developer.zocdoc.com/".into()),
                issuer: None,
            },
            Environment {
                name: "sandbox".into(),
                label: "Sandbox".into(),
                authorize_url: Some(t("https://auth-api-developer-sandbox.zocdoc.com/authorize")),
                token_url: t("https://auth-api-developer-sandbox.zocdoc.com/oauth/token"),
                revoke_url: None,
                api_base: t("https://api-developer-sandbox.zocdoc.com/"),
                user_audience: Some("DeveloperApiPatient-Sandbox".into()),
                api_audience: Some("https://api-developer-sandbox.zocdoc.com/".into()),
                issuer: None,
            },
        ],
        fields: vec![Field {
            name: "environment".into(),
            label: "Zocdoc environment".into(),
            help: "Each environment has its own hosts and credentials.".into(),
            kind: FieldKind::Select(strings(&ZOCDOC_ENVIRONMENTS)),
        }],
        rotates_refresh_tokens: false,
        identity: None,
        refresh_margin_seconds: 5 * 60,
        backend_auth: Some(ClientAuth::SecretInBody),
    }
}

pub const DRCHRONO_SCOPES: [&str; 22] = [
    "labs:read",
    "labs:write",
    "messages:read",
    "messages:write",
    "patients:read",
    "patients:write",
    "patients:summary:read",
    "patients:summary:write",
    "settings:read",
    "settings:write",
    "tasks:read",
    "tasks:write",
    "user:read",
    "user:write",
    "billing:patient-payment:read",
    "billing:patient-payment:write",
    "billing:read",
    "billing:write",
    "calendar:read",
    "calendar:write",
    "clinical:read",
    "clinical:write",
];

pub fn drchrono() -> VendorProfile {
    VendorProfile {
        id: "drchrono".into(),
        name: "DrChrono".into(),
        summary: "Practice admins grant access on DrChrono's consent page (authorization code, confidential client)."
            .into(),
        grant: Grant::AuthorizationCode,
        client_auth: ClientAuth::SecretInBody,
        body: BodyFormat::Form,
        pkce: true,
        scopes: strings(&DRCHRONO_SCOPES),
        scope_descriptions: Vec::new(),
        extra_authorize_params: Vec::new(),
        login_hint: false,
        extra_token_headers: Vec::new(),
        environments: vec![Environment {
            name: "production".into(),
            label: "Production".into(),
            authorize_url: Some(t("https://drchrono.com/o/authorize/")),
            token_url: t("https://drchrono.com/o/token/"),
            revoke_url: Some(t("https://drchrono.com/o/revoke_token/")),
            api_base: t("https://drchrono.com/"),
            user_audience: None,
            api_audience: None,
            issuer: None,
        }],
        fields: Vec::new(),
        rotates_refresh_tokens: true,
        identity: Some(IdentityCall {
            method: "GET".into(),
            path: "api/users/current".into(),
            name_pointer: "/username".into(),
            required_scope: Some("user:read".into()),
        }),
        refresh_margin_seconds: 10 * 60,
        backend_auth: None,
    }
}

pub const DOCPLANNER_DOMAINS: [&str; 10] = [
    "znanylekarz.pl",
    "doctoralia.es",
    "doctoralia.com.br",
    "doctoralia.com.mx",
    "miodottore.it",
    "jameda.de",
    "doktortakvimi.com",
    "doctoralia.pt",
    "doctoralia.cl",
    "doctoralia.co",
];

pub fn docplanner() -> VendorProfile {
    let mut fields = client_fields();
    fields.push(Field {
        name: "domain".into(),
        label: "Country domain".into(),
        help: "The Docplanner site your credentials were issued for.".into(),
        kind: FieldKind::Select(strings(&DOCPLANNER_DOMAINS)),
    });
    VendorProfile {
        id: "docplanner".into(),
        name: "Docplanner".into(),
        summary: "Enter the clinic's Docplanner client ID and secret and pick its country domain (client credentials)."
            .into(),
        grant: Grant::ClientCredentials,
        client_auth: ClientAuth::BasicRaw,
        body: BodyFormat::Form,
        pkce: false,
        scopes: strings(&["integration"]),
        scope_descriptions: vec![("integration".into(), "the integration API".into())],
        extra_authorize_params: Vec::new(),
        login_hint: false,
        extra_token_headers: Vec::new(),
        environments: vec![Environment {
            name: "production".into(),
            label: "Production".into(),
            authorize_url: None,
            token_url: t("https://www.{domain}/oauth/v2/token"),
            revoke_url: None,
            api_base: t("https://www.{domain}/"),
            user_audience: None,
            api_audience: None,
            issuer: None,
        }],
        fields,
        rotates_refresh_tokens: false,
        identity: Some(IdentityCall {
            method: "GET".into(),
            path: "api/v3/integration/facilities".into(),
            name_pointer: "/_items/0/name".into(),
            required_scope: None,
        }),
        refresh_margin_seconds: 5 * 60,
        backend_auth: None,
    }
}

pub fn yappointment() -> VendorProfile {
    let (scopes, scope_descriptions) = described(&[
        ("bookings:read", "view customer bookings"),
        ("services:read", "view services and pricing"),
        ("calendars:read", "view availability and time slots"),
        ("customers:read", "view customer list"),
    ]);
    VendorProfile {
        id: "yappointment".into(),
        name: "yAppointment".into(),
        summary: "Company admins grant access through yAppointment's consent page (authorization code with PKCE)."
            .into(),
        grant: Grant::AuthorizationCode,
        client_auth: ClientAuth::SecretInBody,
        body: BodyFormat::Json,
        pkce: true,
        scopes,
        scope_descriptions,
        extra_authorize_params: Vec::new(),
        login_hint: false,
        extra_token_headers: Vec::new(),
        environments: vec![Environment {
            name: "production".into(),
            label: "Production".into(),
            authorize_url: Some(t("https://yappointment.com/oauth/authorize")),
            token_url: t("https://api.yappointment.com/oauth/token"),
            revoke_url: Some(t("https://api.yappointment.com/oauth/revoke")),
            api_base: t("https://api.yappointment.com/"),
            user_audience: None,
            api_audience: None,
            issuer: None,
        }],
        fields: Vec::new(),
        rotates_refresh_tokens: true,
        identity: Some(IdentityCall {
            method: "POST".into(),
            path: "api/v1/me".into(),
            name_pointer: "/name".into(),
            required_scope: None,
        }),
        refresh_margin_seconds: 5 * 60,
        backend_auth: None,
    }
}

pub const QMATIC_REGIONS: [&str; 4] = ["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"];

pub fn qmatic() -> VendorProfile {
    let (scopes, scope_descriptions) = described(&[
        ("com.qmatic.saas.appointments/external.appointment.book", "book an appointment"),
        ("com.qmatic.saas.appointments/external.appointment.reschedule", "reschedule an appointment"),
        ("com.qmatic.saas.appointments/external.appointment.cancel", "cancel an appointment"),
    ]);
    let mut fields = client_fields();
    fields.extend([
        Field {
            name: "account_name".into(),
            label: "Account name".into(),
            help: "Your Qmatic account's name, as Qmatic gave it to you.".into(),
            kind: FieldKind::Text,
        },
        Field {
            name: "region".into(),
            label: "Region".into(),
            help: String::new(),
            kind: FieldKind::Select(strings(&QMATIC_REGIONS)),
        },
        Field {
            name: "scopes".into(),
            label: "Permissions".into(),
            help: "What clinic-connect may do at Qmatic.".into(),
            kind: FieldKind::MultiSelect(scopes.clone()),
        },
    ]);
    VendorProfile {
        id: "qmatic".into(),
        name: "Qmatic Cloud Appointments".into(),
        summary: "Enter the clinic's Qmatic client ID, secret, account name and region (client credentials).".into(),
        grant: Grant::ClientCredentials,
        client_auth: ClientAuth::BasicRaw,
        body: BodyFormat::Form,
        pkce: false,
        scopes,
        scope_descriptions,
        extra_authorize_params: Vec::new(),
        login_hint: false,
        extra_token_headers: vec![("X-ACCOUNT".into(), HeaderSource::NormalizedAccountName)],
        environments: vec![Environment {
            name: "production".into(),
            label: "Production".into(),
            authorize_url: None,
            token_url: t("https://api.{region}.qmatic.io/oauth2/token"),
            revoke_url: None,
            api_base: t("https://api.{region}.qmatic.io/"),
            user_audience: None,
            api_audience: None,
            issuer: None,
        }],
        fields,
        rotates_refresh_tokens: false,
        identity: None,
        refresh_margin_seconds: 5 * 60,
        backend_auth: None,
    }
}

pub fn all() -> Vec<VendorProfile> {
    vec![zocdoc(), drchrono(), docplanner(), yappointment(), qmatic()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vendors::profile::Parameters;

    #[test]
    fn every_builtin_url_is_https_and_resolves() {
        for p in all() {
            for e in &p.environments {
                let params: Parameters =
                    [("domain".to_owned(), "doctoralia.es".to_owned()), ("region".to_owned(), "eu-west-1".to_owned())]
                        .into();
                for u in [Some(&e.token_url), e.authorize_url.as_ref(), e.revoke_url.as_ref(), Some(&e.api_base)]
                    .into_iter()
                    .flatten()
                {
                    assert_eq!(u.resolve(&params).unwrap().scheme(), "https", "{} {}", p.id, u);
                }
            }
        }
    }

    #[test]
    fn code_flows_have_authorize_urls_and_client_credentials_have_fields() {
        for p in all() {
            match p.grant {
                Grant::AuthorizationCode => {
                    assert!(p.pkce, "{}", p.id);
                    assert!(p.environments.iter().all(|e| e.authorize_url.is_some()), "{}", p.id);
                }
                Grant::ClientCredentials => {
                    assert!(p.field("client_id").is_some() && p.field("client_secret").is_some(), "{}", p.id);
                }
            }
        }
    }
}
