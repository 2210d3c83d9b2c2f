//! A vendor as data: everything about its OAuth dialect that differs from the next vendor's.

use std::collections::BTreeMap;

use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The admin is sent to the vendor to consent; we exchange the code (with PKCE when set).
    AuthorizationCode,
    /// The admin types the clinic's own client credentials; we fetch tokens with them.
    ClientCredentials,
}

/// How the client proves who it is at the token (and revocation) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)`, id and secret as they are (not form-encoded).
    BasicRaw,
    /// `client_id` and `client_secret` among the body's fields.
    SecretInBody,
    /// A public client: `client_id` in the body, no secret.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// A URL that may name connection parameters in its host, like `https://www.{domain}/oauth/v2/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(pub String);

/// The values an admin chose for a connection (domain, region, account name, scopes…).
pub type Parameters = BTreeMap<String, String>;

/// A connection's stored parameters (a JSON object); none when they do not read.
pub fn parse_parameters(json: &str) -> Parameters {
    serde_json::from_str(json).unwrap_or_default()
}

impl UrlTemplate {
    pub fn new(s: &str) -> Self {
        Self(s.to_owned())
    }

    pub fn placeholders(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            names.push(rest[start + 1..start + len].to_owned());
            rest = &rest[start + len + 1..];
        }
        names
    }

    /// Fills the placeholders. Values come from validated form fields (a fixed list of domains or
    /// regions), and are checked again here to be plain host labels.
    pub fn resolve(&self, params: &Parameters) -> anyhow::Result<Url> {
        let mut s = self.0.clone();
        for name in self.placeholders() {
            let value = params.get(&name).ok_or_else(|| anyhow::anyhow!("the connection has no `{name}`"))?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                anyhow::bail!("`{name}` is not a host label");
            }
            s = s.replace(&format!("{{{name}}}"), value);
        }
        Ok(Url::parse(&s)?)
    }

    /// The same endpoint in the sandbox: `{base}/{prefix}/{placeholders…}{path}`.
    pub fn rebase(&self, base: &Url, prefix: &str) -> anyhow::Result<Self> {
        let placeholders = self.placeholders();
        // Parse with the placeholders filled by harmless labels, to find the path.
        let probe: Parameters = placeholders.iter().map(|p| (p.clone(), "x".to_owned())).collect();
        let path = self.resolve(&probe)?.path().to_owned();
        let mut out = base.as_str().trim_end_matches('/').to_owned();
        out.push('/');
        out.push_str(prefix);
        for p in &placeholders {
            out.push_str(&format!("/{{{p}}}"));
        }
        out.push_str(&path);
        Ok(Self(out))
    }

    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }
}

impl std::fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of a vendor's environments (sandbox, production), with its own hosts and audiences.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub label: String,
    pub authorize_url: Option<UrlTemplate>,
    pub token_url: UrlTemplate,
    pub revoke_url: Option<UrlTemplate>,
    pub api_base: UrlTemplate,
    /// Sent as `audience` on the authorize request (Zocdoc's user audience).
    pub user_audience: Option<String>,
    /// Sent as `audience` with client-credentials grants (Zocdoc's API audience).
    pub api_audience: Option<String>,
    /// The authorization server's issuer identifier (RFC 9207). When set, a callback must carry
    /// `iss` equal to it, or it is refused before any token request (a mix-up defence).
    pub issuer: Option<String>,
}

/// The call that tells us which account a token belongs to.
#[derive(Debug, Clone)]
pub struct IdentityCall {
    /// `POST` or `GET`.
    pub method: String,
    /// Relative to the environment's `api_base`.
    pub path: String,
    /// JSON pointer to the account's display name, e.g. `/name` or `/_items/0/name`.
    pub name_pointer: String,
    /// The scope the call needs, named when the vendor answers 403.
    pub required_scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    /// Never shown again once stored; the form only says one is set.
    Secret,
    Select(Vec<String>),
    /// Several of a fixed list; stored space-separated.
    MultiSelect(Vec<String>),
}

/// Something the admin fills in to connect.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub help: String,
    pub kind: FieldKind,
}

/// A header the token endpoint wants besides authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSource {
    Literal(String),
    /// The `account_name` parameter lower-cased with spaces removed (Qmatic's `X-ACCOUNT`).
    NormalizedAccountName,
}

#[derive(Debug, Clone)]
pub struct VendorProfile {
    pub id: String,
    pub name: String,
    pub summary: String,
    pub grant: Grant,
    pub client_auth: ClientAuth,
    pub body: BodyFormat,
    pub pkce: bool,
    pub scopes: Vec<String>,
    pub scope_descriptions: Vec<(String, String)>,
    pub extra_authorize_params: Vec<(String, String)>,
    /// Send the admin's email as `login_hint` on the authorize request.
    pub login_hint: bool,
    pub extra_token_headers: Vec<(String, HeaderSource)>,
    pub environments: Vec<Environment>,
    /// What the admin fills in: the clinic's own credentials for client-credentials vendors.
    pub fields: Vec<Field>,
    pub rotates_refresh_tokens: bool,
    pub identity: Option<IdentityCall>,
    /// Refresh this long before the access token expires.
    pub refresh_margin_seconds: i64,
    /// The app also holds a client-credentials token of its own at this vendor (Zocdoc's
    /// backend), authenticating this way.
    pub backend_auth: Option<ClientAuth>,
}

impl VendorProfile {
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    pub fn default_environment(&self) -> Option<&Environment> {
        self.environments.first()
    }

    pub fn describe_scope(&self, scope: &str) -> String {
        self.scope_descriptions.iter().find(|(s, _)| s == scope).map(|(_, d)| d.clone()).unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// `Northside Health` → `northsidehealth`.
pub fn normalize_account_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_and_rebase() {
        let t = UrlTemplate::new("https://www.{domain}/oauth/v2/token");
        assert_eq!(t.placeholders(), vec!["domain"]);
        let params: Parameters = [("domain".to_owned(), "doctoralia.es".to_owned())].into();
        assert_eq!(t.resolve(&params).unwrap().as_str(), "https://www.doctoralia.es/oauth/v2/token");
        let sandbox = t.rebase(&Url::parse("http://127.0.0.1:9/").unwrap(), "docplanner").unwrap();
        assert_eq!(
            sandbox.resolve(&params).unwrap().as_str(),
            "http://127.0.0.1:9/docplanner/doctoralia.es/oauth/v2/token"
        );
        let q = UrlTemplate::new("https://api.{region}.qmatic.io/oauth2/token");
        let rebased = q.rebase(&Url::parse("http://127.0.0.1:9").unwrap(), "qmatic").unwrap();
        assert_eq!(rebased.0, "http://127.0.0.1:9/qmatic/{region}/oauth2/token");
    }

    #[test]
    fn placeholder_values_must_be_host_labels() {
        let t = UrlTemplate::new("https://www.{domain}/oauth/v2/token");
        for bad in ["evil.example/x", "a@b", "", "x:1"] {
            let params: Parameters = [("domain".to_owned(), bad.to_owned())].into();
            assert!(t.resolve(&params).is_err(), "{bad}");
        }
        assert!(t.resolve(&Parameters::new()).is_err());
    }

    #[test]
    fn account_names_normalize() {
        assert_eq!(normalize_account_name("Northside Health"), "northsidehealth");
        assert_eq!(normalize_account_name("  A B\tC "), "abc");
    }
}
