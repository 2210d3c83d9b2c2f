//! Vendor profiles resolved for this deployment: which hosts (the vendor's or the sandbox's)
//! and which client registration the app uses at each.

pub mod builtin;
pub mod http;
pub mod profile;

use std::sync::Arc;

use anyhow::bail;
use secrecy::SecretString;
use url::Url;

pub use profile::{BodyFormat, ClientAuth, Environment, Grant, VendorProfile};

use crate::sandbox;
use crate::settings::{ClientRegistration, Settings};

#[derive(Debug)]
pub struct Vendor {
    pub profile: VendorProfile,
    /// `None` when the operator has not registered the app at this vendor.
    pub registration: Option<ClientRegistration>,
}

#[derive(Debug)]
pub struct Vendors {
    vendors: Vec<Arc<Vendor>>,
    planned: Vec<(String, String)>,
}

impl Vendors {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let mut vendors = Vec::new();
        for mut profile in builtin::all()? {
            if let Some(base) = &settings.sandbox_url {
                for env in &mut profile.environments {
                    rebase_environment(env, base, &profile.id)?;
                }
            }
            let registration = settings
                .registrations
                .get(&profile.id)
                .cloned()
                .or_else(|| {
                    settings
                        .sandbox_url
                        .as_ref()
                        .and_then(|_| sandbox_registration(&profile.id))
                });
            vendors.push(Arc::new(Vendor {
                profile,
                registration,
            }));
        }
        let this = Self {
            vendors,
            planned: builtin::planned(),
        };
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

    pub fn planned(&self) -> &[(String, String)] {
        &self.planned
    }

    /// Production talks to vendors over https only.
    pub fn check_production(&self) -> anyhow::Result<()> {
        for v in &self.vendors {
            for env in &v.profile.environments {
                let urls = [
                    Some(&env.token_url),
                    env.authorize_url.as_ref(),
                    env.revoke_url.as_ref(),
                    Some(&env.api_base),
                ];
                for u in urls.into_iter().flatten() {
                    if u.scheme() != "https" {
                        bail!(
                            "production refuses the http:// URL {u} of vendor `{}`",
                            v.profile.id
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// Points an environment at the sandbox, keeping each URL's path under the vendor's prefix.
fn rebase_environment(env: &mut Environment, base: &Url, vendor: &str) -> anyhow::Result<()> {
    let rebase =
        |u: &Url| -> anyhow::Result<Url> { Ok(base.join(&format!("{vendor}{}", u.path()))?) };
    env.token_url = rebase(&env.token_url)?;
    env.api_base = rebase(&env.api_base)?;
    env.authorize_url = env.authorize_url.as_ref().map(rebase).transpose()?;
    env.revoke_url = env.revoke_url.as_ref().map(rebase).transpose()?;
    Ok(())
}

fn sandbox_registration(vendor: &str) -> Option<ClientRegistration> {
    match vendor {
        "yappointment" => Some(ClientRegistration {
            client_id: sandbox::YAPPOINTMENT_CLIENT_ID.to_owned(),
            client_secret: Some(SecretString::from(sandbox::YAPPOINTMENT_CLIENT_SECRET)),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_rebases_every_url_under_the_vendor_prefix() {
        let mut settings = Settings::from_lookup(|_| None).unwrap();
        settings.sandbox_url = Some(Url::parse("http://127.0.0.1:9999/").unwrap());
        let vendors = Vendors::build(&settings).unwrap();
        let y = vendors.get("yappointment").unwrap();
        let env = y.profile.default_environment().unwrap();
        assert_eq!(
            env.token_url.as_str(),
            "http://127.0.0.1:9999/yappointment/oauth/token"
        );
        assert_eq!(
            env.authorize_url.as_ref().unwrap().as_str(),
            "http://127.0.0.1:9999/yappointment/oauth/authorize"
        );
        assert_eq!(env.api_base.as_str(), "http://127.0.0.1:9999/yappointment/");
        assert!(y.registration.is_some());
        assert!(vendors.check_production().is_err());
    }

    #[test]
    fn without_sandbox_the_vendor_hosts_are_https() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        let vendors = Vendors::build(&settings).unwrap();
        vendors.check_production().unwrap();
        assert!(vendors.get("yappointment").unwrap().registration.is_none());
    }
}
