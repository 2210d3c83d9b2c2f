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
        ("external.appointment.read", "see the clinic's Zocdoc appointments"),
        ("external.appointment.write", "book, change and cancel appointments on Zocdoc"),
        ("offline_access", "stay connected without anyone signing in to Zocdoc again"),
    ]);
    VendorProfile {
        id: "zocdoc".into(),
        name: "Zocdoc".into(),
        summary: "The clinic's systems see its Zocdoc appointments and book, change or cancel them. You sign in \
                  to Zocdoc as one of the clinic's providers to allow it."
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

/// Every scope DrChrono documents, in words. An operator who needs more than the default asks
/// for any of these in the configuration file (`[vendors.drchrono] scopes = [...]`).
pub const DRCHRONO_SCOPES: [(&str, &str); 22] = [
    ("labs:read", "see lab orders and results"),
    ("labs:write", "create and update lab orders and results"),
    ("messages:read", "read the practice's messages"),
    ("messages:write", "send messages"),
    ("patients:read", "see patients' names and contact details"),
    ("patients:write", "add and update patients"),
    ("patients:summary:read", "see patient summaries"),
    ("patients:summary:write", "update patient summaries"),
    ("settings:read", "see the practice's settings"),
    ("settings:write", "change the practice's settings"),
    ("tasks:read", "see tasks"),
    ("tasks:write", "create and update tasks"),
    ("user:read", "see who the connected DrChrono user is"),
    ("user:write", "update the connected user's profile"),
    ("billing:patient-payment:read", "see patient payments"),
    ("billing:patient-payment:write", "record patient payments"),
    ("billing:read", "see billing"),
    ("billing:write", "update billing"),
    ("calendar:read", "see the calendar and its appointments"),
    ("calendar:write", "book, move and cancel appointments"),
    ("clinical:read", "see clinical notes"),
    ("clinical:write", "write clinical notes"),
];

/// What DrChrono is asked for by default: the least an appointment integration needs, not the
/// 22 scopes of DrChrono's Postman example (`vendor-docs/drchrono.txt`), which include clinical
/// notes, billing, labs and messages this app never touches. Appointments live in the calendar
/// (`/api/appointments`: read to list them, write to book, move and cancel); each names its
/// patient, whom the clinic's systems look up (`/api/patients`, read only); and `user:read`
/// is the account lookup (`/api/users/current`) that names the connection. DrChrono grants a
/// subset as asked (the sandbox does too).
pub const DRCHRONO_DEFAULT_SCOPES: [&str; 4] = ["calendar:read", "calendar:write", "patients:read", "user:read"];

pub fn drchrono() -> VendorProfile {
    VendorProfile {
        id: "drchrono".into(),
        name: "DrChrono".into(),
        summary: "The clinic's systems see the appointments in its DrChrono calendar, book, move and cancel \
                  them, and look up the patients they are for. You sign in to DrChrono to allow it."
            .into(),
        grant: Grant::AuthorizationCode,
        client_auth: ClientAuth::SecretInBody,
        body: BodyFormat::Form,
        pkce: true,
        scopes: strings(&DRCHRONO_DEFAULT_SCOPES),
        scope_descriptions: DRCHRONO_SCOPES.iter().map(|(s, d)| ((*s).to_owned(), (*d).to_owned())).collect(),
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
        summary: "The clinic's systems manage its Docplanner calendars: the slots patients can book and the \
                  bookings they make. You enter the API credentials Docplanner gave the clinic."
            .into(),
        grant: Grant::ClientCredentials,
        client_auth: ClientAuth::BasicRaw,
        body: BodyFormat::Form,
        pkce: false,
        scopes: strings(&["integration"]),
        scope_descriptions: vec![(
            "integration".into(),
            "manage the clinic's calendars, slots and bookings through Docplanner's integration API".into(),
        )],
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
        ("bookings:read", "see the bookings customers made"),
        ("services:read", "see the services offered and their prices"),
        ("calendars:read", "see availability and open time slots"),
        ("customers:read", "see the list of customers"),
    ]);
    VendorProfile {
        id: "yappointment".into(),
        name: "yAppointment".into(),
        summary: "The clinic's systems see its yAppointment bookings, services, open times and customers (read \
                  only). You sign in to yAppointment as the company's admin to allow it."
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
        ("com.qmatic.saas.appointments/external.appointment.book", "book appointments"),
        ("com.qmatic.saas.appointments/external.appointment.reschedule", "move appointments to another time"),
        ("com.qmatic.saas.appointments/external.appointment.cancel", "cancel appointments"),
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
            help: "What the clinic's systems may do in Qmatic through clinic-connect.".into(),
            kind: FieldKind::MultiSelect(scopes.clone()),
        },
    ]);
    VendorProfile {
        id: "qmatic".into(),
        name: "Qmatic Cloud Appointments".into(),
        summary: "The clinic's systems book, move and cancel appointments in its Qmatic Cloud Appointments \
                  account. You enter the API credentials, account name and region Qmatic gave the clinic."
            .into(),
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
    fn every_requested_scope_is_described_in_words() {
        for p in all() {
            for scope in &p.scopes {
                assert!(!p.describe_scope(scope).is_empty(), "{} {scope}", p.id);
            }
        }
        let drchrono = drchrono();
        for (scope, _) in DRCHRONO_SCOPES {
            assert!(!drchrono.describe_scope(scope).is_empty(), "{scope}");
        }
    }

    #[test]
    fn drchrono_asks_for_appointments_patients_and_the_user_only() {
        assert_eq!(drchrono().scopes, ["calendar:read", "calendar:write", "patients:read", "user:read"]);
        let known: Vec<&str> = DRCHRONO_SCOPES.iter().map(|(s, _)| *s).collect();
        assert!(DRCHRONO_DEFAULT_SCOPES.iter().all(|s| known.contains(s)));
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
