//! A vendor as data: everything about its OAuth dialect that differs from the next vendor's.

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

/// One of a vendor's environments (sandbox, production), with its own hosts.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub authorize_url: Option<Url>,
    pub token_url: Url,
    pub revoke_url: Option<Url>,
    pub api_base: Url,
    pub audience: Option<String>,
}

/// The call that tells us which account a token belongs to.
#[derive(Debug, Clone)]
pub struct IdentityCall {
    /// `POST` or `GET`.
    pub method: String,
    /// Relative to the environment's `api_base`.
    pub path: String,
    /// The top-level JSON field holding the account's display name.
    pub name_field: String,
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
    pub environments: Vec<Environment>,
    pub rotates_refresh_tokens: bool,
    pub identity: Option<IdentityCall>,
    /// Refresh this long before the access token expires.
    pub refresh_margin_seconds: i64,
}

impl VendorProfile {
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    pub fn default_environment(&self) -> Option<&Environment> {
        self.environments.first()
    }

    pub fn describe_scope(&self, scope: &str) -> String {
        self.scope_descriptions
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    }
}
