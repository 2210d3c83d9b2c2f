//! The two keys: the token keyring (vault) and the session-cookie key. From the environment in
//! production; generated into the data folder, with a warning, in development.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;
use crate::vault::Vault;

const DEV_KEYS_FILE: &str = "development-keys.env";
const SESSION_KEY_LEN: usize = 64;

pub struct Keys {
    pub vault: Vault,
    pub session_key: actix_web::cookie::Key,
}

/// `CLINIC_CONNECT_TOKEN_KEYS=…` and `CLINIC_CONNECT_SESSION_KEY=…` lines for `keys generate`.
pub fn generate_env_lines() -> anyhow::Result<String> {
    Ok(format!(
        "CLINIC_CONNECT_TOKEN_KEYS={}\nCLINIC_CONNECT_SESSION_KEY={}\n",
        Vault::generate_key_entry()?,
        generate_session_key()?
    ))
}

fn generate_session_key() -> anyhow::Result<String> {
    let mut key = [0u8; SESSION_KEY_LEN];
    SystemRandom::new().fill(&mut key).map_err(|_| anyhow::anyhow!("system random source failed"))?;
    Ok(STANDARD.encode(key))
}

pub fn load(settings: &Settings) -> anyhow::Result<Keys> {
    let (token_keys, session_key) = match (&settings.token_keys, &settings.session_key) {
        (Some(t), Some(s)) => (t.clone(), s.clone()),
        _ if settings.mode.is_production() => {
            bail!("production needs CLINIC_CONNECT_TOKEN_KEYS and CLINIC_CONNECT_SESSION_KEY from the environment")
        }
        (t, s) => {
            let (file_t, file_s) = development_keys(&settings.data_dir)?;
            (t.clone().unwrap_or(file_t), s.clone().unwrap_or(file_s))
        }
    };
    let vault = Vault::from_keyring(&token_keys).context("CLINIC_CONNECT_TOKEN_KEYS")?;
    let raw =
        STANDARD.decode(session_key.expose_secret().trim()).context("CLINIC_CONNECT_SESSION_KEY is not base64")?;
    if raw.len() < SESSION_KEY_LEN {
        bail!("CLINIC_CONNECT_SESSION_KEY must be at least {SESSION_KEY_LEN} bytes");
    }
    let session_key =
        actix_web::cookie::Key::try_from(raw.as_slice()).context("CLINIC_CONNECT_SESSION_KEY is unusable")?;
    Ok(Keys { vault, session_key })
}

/// Reads the development keys from the data folder, writing fresh ones on first start.
fn development_keys(data_dir: &Path) -> anyhow::Result<(SecretString, SecretString)> {
    crate::files::create_data_dir(data_dir)?;
    let path = data_dir.join(DEV_KEYS_FILE);
    if !path.exists() {
        tracing::warn!(file = %path.display(), "no keys in the environment: generated development keys (never use these in production)");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(generate_env_lines()?.as_bytes())?;
        file.sync_all()?;
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(|v| SecretString::from(v.trim().to_owned()))
            .with_context(|| format!("{} has no {name}", path.display()))
    };
    Ok((value("CLINIC_CONNECT_TOKEN_KEYS")?, value("CLINIC_CONNECT_SESSION_KEY")?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn development_keys_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { data_dir: dir.path().to_owned(), ..Settings::from_map(&Default::default()).unwrap() };
        let first = load(&settings).unwrap();
        let second = load(&settings).unwrap();
        assert_eq!(first.vault.current_key_id(), second.vault.current_key_id());
        assert_eq!(first.session_key.master(), second.session_key.master());
    }

    #[test]
    fn production_never_generates() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::from_map(&Default::default()).unwrap();
        settings.data_dir = dir.path().to_owned();
        settings.mode = crate::settings::Mode::Production;
        assert!(load(&settings).is_err());
        assert!(!dir.path().join(DEV_KEYS_FILE).exists());
    }
}
