//! Vendor profiles resolved for this deployment: which hosts (the vendor's or the sandbox's)
//! and which client registrations the app uses at each.

pub mod builtin;
pub mod config;
pub mod http;
pub mod profile;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::bail;
use secrecy::SecretString;
use url::Url;

pub use profile::{BodyFormat, ClientAuth, Environment, Field, FieldKind, Grant, Parameters, VendorProfile};

use self::http::Endpoints;
use crate::memo::Memo;
use crate::sandbox;
use crate::settings::{ClientRegistration, Role, Settings};

#[derive(Debug)]
pub struct Vendor {
    pub profile: VendorProfile,
    /// The app's registration per environment; missing when the operator has not registered.
    pub registrations: HashMap<String, ClientRegistration>,
    /// The app's backend (client-credentials) registration per environment, where it has one.
    pub backend: HashMap<String, ClientRegistration>,
    /// Endpoints already resolved, by environment and a connection's stored parameters.
    resolved: Memo<(String, String), Arc<Endpoints>>,
}

impl Vendor {
    pub fn new(
        profile: VendorProfile,
        registrations: HashMap<String, ClientRegistration>,
        backend: HashMap<String, ClientRegistration>,
    ) -> Self {
        Self { profile, registrations, backend, resolved: Memo::new(10_000) }
    }

    /// A connection's endpoints (its environment's templates filled with its stored parameters,
    /// a JSON object), resolved once and then shared.
    pub fn endpoints(&self, environment: &str, parameters: &str) -> anyhow::Result<Arc<Endpoints>> {
        let key = (environment.to_owned(), parameters.to_owned());
        if let Some(found) = self.resolved.get(&key) {
            return Ok(found);
        }
        let env = self
            .profile
            .environment(environment)
            .ok_or_else(|| anyhow::anyhow!("{} has no environment {environment}", self.profile.name))?;
        let endpoints = Arc::new(Endpoints::resolve(&self.profile, env, &profile::parse_parameters(parameters))?);
        self.resolved.insert(key, endpoints.clone());
        Ok(endpoints)
    }

    pub fn registration(&self, environment: &str) -> Option<&ClientRegistration> {
        self.registrations.get(environment)
    }

    /// Can an admin start connecting this vendor at all?
    pub fn connectable(&self) -> bool {
        match self.profile.grant {
            Grant::AuthorizationCode => !self.registrations.is_empty(),
            Grant::ClientCredentials => true,
        }
    }

    /// Environments the app is registered in (code flows), in profile order.
    pub fn usable_environments(&self) -> Vec<&Environment> {
        self.profile
            .environments
            .iter()
            .filter(|e| self.profile.grant == Grant::ClientCredentials || self.registrations.contains_key(&e.name))
            .collect()
    }
}

#[derive(Debug)]
pub struct Vendors {
    vendors: Vec<Arc<Vendor>>,
}

impl Vendors {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let mut profiles = builtin::all();
        if let Some(base) = &settings.sandbox_url {
            for profile in &mut profiles {
                rebase_to_sandbox(profile, base)?;
            }
        }
        let configured_ids = match &settings.config_path {
            Some(path) => config::apply(path, &config::load(path)?, &mut profiles)?,
            None => Default::default(),
        };
        let mut vendors = Vec::new();
        for profile in profiles {
            let mut registrations = HashMap::new();
            let mut backend = HashMap::new();
            for (i, env) in profile.environments.iter().enumerate() {
                let env_part = if i == 0 { None } else { Some(env.name.as_str()) };
                let sandbox_default =
                    settings.sandbox_url.as_ref().and_then(|_| sandbox_registration(&profile.id, &env.name, Role::App));
                let mut app = settings.registration(&profile.id, env_part, Role::App).or(sandbox_default);
                if let Some(client_id) = configured_ids.get(&(profile.id.clone(), env.name.clone())) {
                    let secret = settings
                        .client_secret(&profile.id, env_part, Role::App)
                        .or_else(|| app.as_ref().and_then(|r| r.client_secret.clone()));
                    app = Some(ClientRegistration { client_id: client_id.clone(), client_secret: secret });
                }
                if let Some(app) = app {
                    registrations.insert(env.name.clone(), app);
                }
                if profile.backend_auth.is_some() {
                    let sandbox_default = settings
                        .sandbox_url
                        .as_ref()
                        .and_then(|_| sandbox_registration(&profile.id, &env.name, Role::Backend));
                    if let Some(b) = settings.registration(&profile.id, env_part, Role::Backend).or(sandbox_default) {
                        backend.insert(env.name.clone(), b);
                    }
                }
            }
            vendors.push(Arc::new(Vendor::new(profile, registrations, backend)));
        }
        let this = Self { vendors };
        if settings.mode.is_production() {
            this.check_production()?;
        }
        Ok(this)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Vendor>> {
        self.vendors.iter().find(|v| v.profile.id == id)
    }

    pub fn all(&self) -> &[Arc<Vendor>] {
        &self.vendors
    }

    /// Production talks to vendors over https only.
    pub fn check_production(&self) -> anyhow::Result<()> {
        for v in &self.vendors {
            for env in &v.profile.environments {
                let urls =
                    [Some(&env.token_url), env.authorize_url.as_ref(), env.revoke_url.as_ref(), Some(&env.api_base)];
                for u in urls.into_iter().flatten() {
                    if u.scheme() != "https" {
                        bail!("production refuses the non-https URL {u} of vendor `{}`", v.profile.id);
                    }
                }
                if let Some(issuer) = env.issuer.as_deref().filter(|i| !i.starts_with("https://")) {
                    bail!("production refuses the non-https issuer {issuer} of vendor `{}`", v.profile.id);
                }
            }
        }
        Ok(())
    }
}

/// Points every environment at the sandbox: the first under `/{vendor}`, the others under
/// `/{vendor}-{environment}`, with host parameters (domain, region) as path segments.
fn rebase_to_sandbox(profile: &mut VendorProfile, base: &Url) -> anyhow::Result<()> {
    for (i, env) in profile.environments.iter_mut().enumerate() {
        let prefix = if i == 0 { profile.id.clone() } else { format!("{}-{}", profile.id, env.name) };
        env.token_url = env.token_url.rebase(base, &prefix)?;
        env.api_base = env.api_base.rebase(base, &prefix)?;
        env.authorize_url = env.authorize_url.as_ref().map(|u| u.rebase(base, &prefix)).transpose()?;
        env.revoke_url = env.revoke_url.as_ref().map(|u| u.rebase(base, &prefix)).transpose()?;
    }
    Ok(())
}

/// The sandbox's own registrations, used in development when the operator set none.
fn sandbox_registration(vendor: &str, environment: &str, role: Role) -> Option<ClientRegistration> {
    let (id, secret): (&str, Option<&str>) = match (vendor, environment, role) {
        ("yappointment", _, Role::App) => (sandbox::YAPPOINTMENT_CLIENT_ID, Some(sandbox::YAPPOINTMENT_CLIENT_SECRET)),
        ("drchrono", _, Role::App) => (sandbox::DRCHRONO_CLIENT_ID, Some(sandbox::DRCHRONO_CLIENT_SECRET)),
        ("zocdoc", "production", Role::App) => (sandbox::ZOCDOC_SPA_CLIENT_ID, None),
        ("zocdoc", "sandbox", Role::App) => (sandbox::ZOCDOC_SANDBOX_SPA_CLIENT_ID, None),
        ("zocdoc", "production", Role::Backend) => {
            (sandbox::ZOCDOC_BACKEND_CLIENT_ID, Some(sandbox::ZOCDOC_BACKEND_CLIENT_SECRET))
        }
        ("zocdoc", "sandbox", Role::Backend) => {
            (sandbox::ZOCDOC_SANDBOX_BACKEND_CLIENT_ID, Some(sandbox::ZOCDOC_SANDBOX_BACKEND_CLIENT_SECRET))
        }
        _ => return None,
    };
    Some(ClientRegistration { client_id: id.to_owned(), client_secret: secret.map(SecretString::from) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn in_sandbox() -> Vendors {
        let mut settings = Settings::from_map(&Default::default()).unwrap();
        settings.sandbox_url = Some(Url::parse("http://127.0.0.1:9999/").unwrap());
        Vendors::build(&settings).unwrap()
    }

    #[test]
    fn sandbox_rebases_every_url_under_the_vendor_prefix() {
        let vendors = in_sandbox();
        let y = vendors.get("yappointment").unwrap();
        let env = y.profile.default_environment().unwrap();
        let none = Parameters::new();
        assert_eq!(env.token_url.resolve(&none).unwrap().as_str(), "http://127.0.0.1:9999/yappointment/oauth/token");
        assert_eq!(
            env.authorize_url.as_ref().unwrap().resolve(&none).unwrap().as_str(),
            "http://127.0.0.1:9999/yappointment/oauth/authorize"
        );
        assert!(y.registration("production").is_some());
        let z = vendors.get("zocdoc").unwrap();
        let sandbox_env = z.profile.environment("sandbox").unwrap();
        assert_eq!(
            sandbox_env.token_url.resolve(&none).unwrap().as_str(),
            "http://127.0.0.1:9999/zocdoc-sandbox/oauth/token"
        );
        assert_eq!(z.registration("sandbox").unwrap().client_id, sandbox::ZOCDOC_SANDBOX_SPA_CLIENT_ID);
        assert!(z.backend.contains_key("production") && z.backend.contains_key("sandbox"));
        let q = vendors.get("qmatic").unwrap();
        let params: Parameters = [("region".to_owned(), "eu-west-1".to_owned())].into();
        assert_eq!(
            q.profile.environments[0].token_url.resolve(&params).unwrap().as_str(),
            "http://127.0.0.1:9999/qmatic/eu-west-1/oauth2/token"
        );
        assert!(vendors.check_production().is_err());
    }

    #[test]
    fn without_sandbox_the_vendor_hosts_are_https_and_unregistered() {
        let settings = Settings::from_map(&Default::default()).unwrap();
        let vendors = Vendors::build(&settings).unwrap();
        vendors.check_production().unwrap();
        assert!(vendors.get("yappointment").unwrap().registrations.is_empty());
        assert!(!vendors.get("yappointment").unwrap().connectable());
        assert!(vendors.get("docplanner").unwrap().connectable());
    }

    #[test]
    fn production_refuses_a_plain_http_issuer() {
        let settings = Settings::from_map(&Default::default()).unwrap();
        let mut vendors = Vendors::build(&settings).unwrap();
        let mut profile = builtin::yappointment();
        profile.environments[0].issuer = Some("https://auth.yappointment.example".into());
        vendors.vendors = vec![Arc::new(Vendor::new(profile.clone(), HashMap::new(), HashMap::new()))];
        vendors.check_production().unwrap();
        profile.environments[0].issuer = Some("http://auth.yappointment.example".into());
        vendors.vendors = vec![Arc::new(Vendor::new(profile, HashMap::new(), HashMap::new()))];
        let err = vendors.check_production().unwrap_err().to_string();
        assert!(err.contains("issuer") && err.contains("yappointment"), "{err}");
    }

    #[test]
    fn a_connections_endpoints_are_resolved_once_per_environment_and_parameters() {
        let vendors = in_sandbox();
        let d = vendors.get("docplanner").unwrap();
        let env = d.profile.default_environment().unwrap().name.clone();
        let pl = d.endpoints(&env, r#"{"domain":"znanylekarz.pl"}"#).unwrap();
        let again = d.endpoints(&env, r#"{"domain":"znanylekarz.pl"}"#).unwrap();
        assert!(Arc::ptr_eq(&pl, &again), "the second lookup is the memo's");
        let es = d.endpoints(&env, r#"{"domain":"doctoralia.es"}"#).unwrap();
        assert!(pl.token.as_str().contains("znanylekarz.pl"), "{}", pl.token);
        assert!(es.token.as_str().contains("doctoralia.es"), "{}", es.token);
        assert!(d.endpoints("nowhere", "{}").is_err());
    }
}
