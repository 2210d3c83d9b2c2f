//! The operator's optional TOML file: override any profile's URLs, client id and scopes, or add a
//! vendor of an existing shape, without recompiling.
//!
//! ```toml
//! [vendors.drchrono]
//! scopes = ["calendar:read", "user:read"]
//!
//! [vendors.acme]                 # a new vendor, shaped like yAppointment
//! like = "yappointment"
//! name = "Acme Booking"
//! client_id = "clinic-connect"   # its secret comes from CLINIC_CONNECT_ACME_CLIENT_SECRET
//! [vendors.acme.environments.production]
//! authorize_url = "https://acme.example/oauth/authorize"
//! token_url = "https://acme.example/oauth/token"
//! revoke_url = "https://acme.example/oauth/revoke"
//! api_base = "https://acme.example/"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::profile::{Parameters, UrlTemplate, VendorProfile};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub vendors: BTreeMap<String, VendorOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorOverride {
    /// For a new vendor: the built-in vendor whose shape it has.
    pub like: Option<String>,
    pub name: Option<String>,
    pub summary: Option<String>,
    /// The app's client id at this vendor's first environment.
    pub client_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentOverride {
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub api_base: Option<String>,
    pub user_audience: Option<String>,
    pub api_audience: Option<String>,
    /// The authorization server's issuer identifier (RFC 9207): callbacks must then carry it
    /// as `iss`.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
}

pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Client ids set in the file, by (vendor, environment).
pub type ConfiguredClientIds = BTreeMap<(String, String), String>;

/// Applies the file to the profiles. Errors name the file, the key and what is wrong.
pub fn apply(
    file: &Path,
    config: &ConfigFile,
    profiles: &mut Vec<VendorProfile>,
) -> anyhow::Result<ConfiguredClientIds> {
    let mut client_ids = ConfiguredClientIds::new();
    let at = |key: &str| format!("{}: {key}", file.display());
    for (id, o) in &config.vendors {
        let key = format!("vendors.{id}");
        if !valid_vendor_id(id) {
            bail!("{}: a vendor id is 1–32 characters of a–z, 0–9 and -", at(&key));
        }
        let existing = profiles.iter().position(|p| &p.id == id);
        let index = match (existing, &o.like) {
            (Some(_), Some(_)) => {
                bail!("{}: `like` is only for new vendors; `{id}` already exists", at(&format!("{key}.like")))
            }
            (Some(i), None) => i,
            (None, None) => bail!("{}: unknown vendor `{id}`; a new vendor needs `like = \"<vendor>\"`", at(&key)),
            (None, Some(like)) => {
                let Some(template) = profiles.iter().find(|p| &p.id == like) else {
                    bail!("{}: unknown vendor `{like}`", at(&format!("{key}.like")));
                };
                let mut new = template.clone();
                new.id = id.clone();
                new.name = id.clone();
                for env in &mut new.environments {
                    let token_url = o.environments.get(&env.name).and_then(|g| g.token_url.as_deref());
                    if token_url.is_none_or(str::is_empty) {
                        bail!(
                            "{}: a new vendor needs its own token_url (and every other URL) for environment `{}`",
                            at(&format!("{key}.environments.{}", env.name)),
                            env.name
                        );
                    }
                }
                profiles.push(new);
                profiles.len() - 1
            }
        };
        let profile = &mut profiles[index];
        if let Some(name) = &o.name {
            if name.trim().is_empty() {
                bail!("{}: must not be empty", at(&format!("{key}.name")));
            }
            profile.name = name.trim().to_owned();
        }
        if let Some(summary) = &o.summary {
            profile.summary = summary.clone();
        }
        if let Some(scopes) = &o.scopes {
            if scopes.is_empty() || scopes.iter().any(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
                bail!("{}: a non-empty list of scopes without spaces", at(&format!("{key}.scopes")));
            }
            profile.scopes = scopes.clone();
        }
        if let (Some(client_id), Some(first)) = (&o.client_id, profile.environments.first()) {
            client_ids.insert((id.clone(), first.name.clone()), client_id.clone());
        }
        for (env_name, e) in &o.environments {
            let env_key = format!("{key}.environments.{env_name}");
            let Some(env) = profile.environments.iter_mut().find(|env| &env.name == env_name) else {
                let known: Vec<&str> = profile.environments.iter().map(|e| e.name.as_str()).collect();
                bail!("{}: `{id}` has no environment `{env_name}` (it has: {})", at(&env_key), known.join(", "));
            };
            let url = |field: &str, value: &Option<String>| -> anyhow::Result<Option<UrlTemplate>> {
                value
                    .as_ref()
                    .map(|v| parse_url(v).map_err(|e| anyhow::anyhow!("{}: {e}", at(&format!("{env_key}.{field}")))))
                    .transpose()
            };
            if let Some(u) = url("authorize_url", &e.authorize_url)? {
                env.authorize_url = Some(u);
            }
            if let Some(u) = url("token_url", &e.token_url)? {
                env.token_url = u;
            }
            if let Some(u) = url("revoke_url", &e.revoke_url)? {
                env.revoke_url = Some(u);
            }
            if let Some(u) = url("api_base", &e.api_base)? {
                env.api_base = u;
            }
            if let Some(a) = &e.user_audience {
                env.user_audience = Some(a.clone());
            }
            if let Some(a) = &e.api_audience {
                env.api_audience = Some(a.clone());
            }
            if let Some(issuer) = &e.issuer {
                let issuer =
                    parse_issuer(issuer).map_err(|e| anyhow::anyhow!("{}: {e}", at(&format!("{env_key}.issuer"))))?;
                env.issuer = Some(issuer);
            }
            if let Some(client_id) = &e.client_id {
                client_ids.insert((id.clone(), env_name.clone()), client_id.clone());
            }
        }
    }
    Ok(client_ids)
}

fn valid_vendor_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn parse_url(value: &str) -> anyhow::Result<UrlTemplate> {
    let template = UrlTemplate::new(value);
    let probe: Parameters = template.placeholders().into_iter().map(|p| (p, "x".to_owned())).collect();
    let url = template.resolve(&probe).map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("not an http(s) URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("must not have a query or fragment");
    }
    Ok(template)
}

/// An issuer identifier (RFC 8414 §2): an http(s) URL with a host and no query or fragment,
/// kept exactly as written, since RFC 9207 compares it as a plain string.
fn parse_issuer(value: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(value).map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("an issuer is an https:// URL (http:// only outside production)");
    }
    if url.query().is_some() || url.fragment().is_some() || value.contains(['?', '#']) {
        bail!("an issuer must not have a query or fragment");
    }
    Ok(value.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vendors::builtin;

    fn run(text: &str) -> anyhow::Result<Vec<VendorProfile>> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("f.toml: {e}"))?;
        let mut profiles = builtin::all();
        apply(Path::new("f.toml"), &config, &mut profiles)?;
        Ok(profiles)
    }

    #[test]
    fn overrides_scopes_and_urls() {
        let p = run(r#"
            [vendors.drchrono]
            scopes = ["calendar:read"]
            [vendors.drchrono.environments.production]
            token_url = "https://drchrono.example/o/token/"
        "#)
        .unwrap();
        let d = p.iter().find(|p| p.id == "drchrono").unwrap();
        assert_eq!(d.scopes, vec!["calendar:read"]);
        assert_eq!(d.environments[0].token_url.0, "https://drchrono.example/o/token/");
    }

    #[test]
    fn declares_an_issuer_kept_exactly_as_written() {
        let p = run(r#"
            [vendors.yappointment.environments.production]
            issuer = "https://auth.yappointment.com"
        "#)
        .unwrap();
        let y = p.iter().find(|p| p.id == "yappointment").unwrap();
        assert_eq!(y.environments[0].issuer.as_deref(), Some("https://auth.yappointment.com"));
        assert!(p.iter().filter(|p| p.id != "yappointment").all(|p| p.environments.iter().all(|e| e.issuer.is_none())));
    }

    #[test]
    fn adds_a_vendor_of_an_existing_shape() {
        let p = run(r#"
            [vendors.acme]
            like = "yappointment"
            name = "Acme Booking"
            [vendors.acme.environments.production]
            authorize_url = "https://acme.example/authorize"
            token_url = "https://acme.example/token"
        "#)
        .unwrap();
        let acme = p.iter().find(|p| p.id == "acme").unwrap();
        assert_eq!(acme.name, "Acme Booking");
        assert_eq!(acme.environments[0].token_url.0, "https://acme.example/token");
    }

    #[test]
    fn bad_files_name_the_key_and_the_problem() {
        let cases = [
            (
                "[vendors.drchrono.environments.production]\ntoken_url = \"not a url\"",
                "vendors.drchrono.environments.production.token_url",
            ),
            ("[vendors.nope]\nname = \"x\"", "unknown vendor `nope`"),
            ("[vendors.acme]\nlike = \"nope\"", "vendors.acme.like"),
            ("[vendors.acme]\nlike = \"yappointment\"", "needs its own token_url"),
            ("[vendors.drchrono]\nscopes = []", "vendors.drchrono.scopes"),
            ("[vendors.drchrono.environments.staging]\ntoken_url = \"https://x\"", "no environment `staging`"),
            ("[vendors.drchrono]\ntoken_ur = \"x\"", "unknown field"),
            ("[vendors.Bad_Id]\nlike = \"yappointment\"", "vendors.Bad_Id"),
            (
                "[vendors.zocdoc.environments.sandbox]\nissuer = \"not a url\"",
                "vendors.zocdoc.environments.sandbox.issuer",
            ),
            (
                "[vendors.zocdoc.environments.sandbox]\nissuer = \"https://auth.zocdoc.com/?x=1\"",
                "must not have a query",
            ),
            ("[vendors.zocdoc.environments.sandbox]\nissuer = \"ftp://auth.zocdoc.com\"", "https:// URL"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", run(text).unwrap_err());
            assert!(err.contains("f.toml") && err.contains(expected), "{text}\n→ {err}");
        }
    }
}
