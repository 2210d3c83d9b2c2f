//! Settings come from the environment (DESIGN.md §5); an optional TOML file adds vendor overrides.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::client_addr::TrustedProxies;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

impl Mode {
    pub fn is_production(self) -> bool {
        self == Mode::Production
    }
}

/// The app's registration at one vendor.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub listen: String,
    pub public_url: Option<Url>,
    pub data_dir: PathBuf,
    /// `None` when the sandbox is off.
    pub sandbox_listen: Option<String>,
    /// Where the vendors are reached when they are simulated: every profile's hosts are replaced
    /// by this base (the sandbox's), with the vendor id as the path prefix.
    pub sandbox_url: Option<Url>,
    pub token_keys: Option<SecretString>,
    pub session_key: Option<SecretString>,
    /// Every `CLINIC_CONNECT_…_CLIENT_ID` / `_CLIENT_SECRET` variable, read when the vendor
    /// profiles (including ones added by the configuration file) are resolved.
    pub client_variables: HashMap<String, String>,
    pub config_path: Option<PathBuf>,
    /// Server worker threads; tests use one.
    pub workers: usize,
    /// How long a vendor call may take in all.
    pub vendor_timeout_seconds: u64,
    /// How often the background worker looks for tokens to refresh and revocations to retry.
    pub worker_interval_seconds: u64,
    /// How often each live connection's health is checked at its vendor (on average: each
    /// connection's next check is spread around it).
    pub health_interval_seconds: u64,
    /// The Zocdoc environment patients use at `/care`.
    pub care_environment: String,
    /// `sqlite://PATH` or `postgres://…`; none for the SQLite database in `data_dir`.
    pub database_url: Option<SecretString>,
    /// Connections in the database pool; none for the engine's default.
    pub database_max_connections: Option<u32>,
    /// How long a request waits for a database connection (or SQLite's write lock).
    pub database_timeout_seconds: u64,
    /// What `/metrics` asks for as `Authorization: Bearer …` in production; without it,
    /// production serves no metrics at all.
    pub metrics_token: Option<SecretString>,
    /// The proxies whose `X-Forwarded-For` names the client (`CLINIC_CONNECT_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// The clinic's name on the patients' pages and in their tab title.
    pub clinic_name: String,
}

/// The shortest metrics token accepted: a guessable one would open `/metrics` to anyone.
pub const MIN_METRICS_TOKEN_LEN: usize = 24;

/// What patients see when production runs without `CLINIC_CONNECT_CLINIC_NAME` (a warning
/// at start says so).
pub const DEFAULT_PRODUCTION_CLINIC_NAME: &str = "Our clinic";

/// The shortest and longest health-check intervals accepted: shorter would spend the vendors'
/// rate limits on checks, longer would leave a broken connection unnoticed for days.
pub const HEALTH_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 60 * 60;

fn health_interval(seconds: u64) -> anyhow::Result<u64> {
    if HEALTH_INTERVAL_RANGE.contains(&seconds) {
        Ok(seconds)
    } else {
        bail!(
            "CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS must be from {} to {} seconds",
            HEALTH_INTERVAL_RANGE.start(),
            HEALTH_INTERVAL_RANGE.end()
        )
    }
}

/// Whose registration: the app's own client at a vendor, or its backend (server-to-server) client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    App,
    Backend,
}

impl Settings {
    /// Reads `CLINIC_CONNECT_*` from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_map(&std::env::vars().filter(|(k, _)| k.starts_with("CLINIC_CONNECT_")).collect())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let var = |name: &str| vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mode = match var("CLINIC_CONNECT_ENV").as_deref() {
            None | Some("development") => Mode::Development,
            Some("production") => Mode::Production,
            Some(other) => {
                bail!("CLINIC_CONNECT_ENV must be `development` or `production`, not `{other}`")
            }
        };
        let public_url = var("CLINIC_CONNECT_PUBLIC_URL")
            .map(|u| Url::parse(&u).context("CLINIC_CONNECT_PUBLIC_URL is not a URL"))
            .transpose()?;
        // A sandbox already running elsewhere (`clinic-connect sandbox`) instead of one in-process.
        let sandbox_url = var("CLINIC_CONNECT_SANDBOX_URL")
            .map(|u| Url::parse(&u).context("CLINIC_CONNECT_SANDBOX_URL is not a URL"))
            .transpose()?;
        let sandbox_listen = match var("CLINIC_CONNECT_SANDBOX_LISTEN").as_deref() {
            Some("off") => None,
            _ if sandbox_url.is_some() => None,
            Some(addr) => Some(addr.to_owned()),
            None if mode == Mode::Development => Some("127.0.0.1:8090".to_owned()),
            None => None,
        };
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            var(name)
                .map(|v| v.parse::<u64>().with_context(|| format!("{name} must be a number of seconds")))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let metrics_token = var("CLINIC_CONNECT_METRICS_TOKEN");
        if let Some(token) = &metrics_token {
            if token.len() < MIN_METRICS_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "CLINIC_CONNECT_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LEN} characters without spaces \
                     (for example the output of `openssl rand -hex 32`)"
                );
            }
        }
        let client_variables = vars
            .iter()
            .filter(|(k, v)| {
                k.starts_with("CLINIC_CONNECT_")
                    && (k.ends_with("_CLIENT_ID") || k.ends_with("_CLIENT_SECRET"))
                    && !v.trim().is_empty()
            })
            .map(|(k, v)| (k.clone(), v.trim().to_owned()))
            .collect();
        let trusted_proxies = match var("CLINIC_CONNECT_TRUSTED_PROXIES") {
            Some(raw) => TrustedProxies::parse(&raw).map_err(|why| {
                anyhow::anyhow!(
                    "CLINIC_CONNECT_TRUSTED_PROXIES must list IP addresses or CIDR networks separated by commas: {why}"
                )
            })?,
            None => TrustedProxies::default(),
        };
        let clinic_name = match var("CLINIC_CONNECT_CLINIC_NAME") {
            Some(name) if name.chars().count() > 100 || name.chars().any(char::is_control) => {
                bail!("CLINIC_CONNECT_CLINIC_NAME must be at most 100 characters, without control characters")
            }
            Some(name) => name,
            None if mode == Mode::Production => DEFAULT_PRODUCTION_CLINIC_NAME.to_owned(),
            None => "Demo Clinic".to_owned(),
        };
        Ok(Self {
            mode,
            listen: var("CLINIC_CONNECT_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            public_url,
            data_dir: PathBuf::from(var("CLINIC_CONNECT_DATA_DIR").unwrap_or_else(|| "./data".to_owned())),
            sandbox_listen,
            sandbox_url,
            token_keys: var("CLINIC_CONNECT_TOKEN_KEYS").map(SecretString::from),
            session_key: var("CLINIC_CONNECT_SESSION_KEY").map(SecretString::from),
            client_variables,
            config_path: var("CLINIC_CONNECT_CONFIG").map(PathBuf::from),
            workers: 2,
            vendor_timeout_seconds: number("CLINIC_CONNECT_VENDOR_TIMEOUT_SECONDS", 15)?,
            worker_interval_seconds: number("CLINIC_CONNECT_WORKER_INTERVAL_SECONDS", 30)?,
            health_interval_seconds: health_interval(number("CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS", 900)?)?,
            care_environment: var("CLINIC_CONNECT_CARE_ENVIRONMENT")
                .unwrap_or_else(|| if mode == Mode::Production { "production" } else { "sandbox" }.to_owned()),
            database_url: var("CLINIC_CONNECT_DATABASE_URL").map(SecretString::from),
            database_max_connections: var("CLINIC_CONNECT_DATABASE_MAX_CONNECTIONS")
                .map(|v| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .context("CLINIC_CONNECT_DATABASE_MAX_CONNECTIONS must be a number from 1 to 1000")
                })
                .transpose()?,
            database_timeout_seconds: number("CLINIC_CONNECT_DATABASE_TIMEOUT_SECONDS", 5)?.clamp(1, 600),
            metrics_token: metrics_token.map(SecretString::from),
            trusted_proxies,
            clinic_name,
        })
    }

    /// `CLINIC_CONNECT_<VENDOR>[_<ENVIRONMENT>][_BACKEND]_CLIENT_ID` and `_CLIENT_SECRET`; the
    /// environment part is left out for a vendor's first (production) environment.
    pub fn registration(&self, vendor: &str, environment: Option<&str>, role: Role) -> Option<ClientRegistration> {
        let prefix = registration_prefix(vendor, environment, role);
        let client_id = self.client_variables.get(&format!("{prefix}_CLIENT_ID"))?.clone();
        Some(ClientRegistration { client_id, client_secret: self.client_secret(vendor, environment, role) })
    }

    /// The secret alone, for a registration whose client id comes from the configuration file.
    pub fn client_secret(&self, vendor: &str, environment: Option<&str>, role: Role) -> Option<SecretString> {
        let prefix = registration_prefix(vendor, environment, role);
        self.client_variables.get(&format!("{prefix}_CLIENT_SECRET")).cloned().map(SecretString::from)
    }

    /// The SQLite database's file when no URL is set.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("clinic-connect.db")
    }

    /// Where the store lives: `CLINIC_CONNECT_DATABASE_URL`, or SQLite in the data folder.
    pub fn database(&self) -> crate::db::Config {
        let mut config = crate::db::Config::sqlite(&self.database_path());
        if let Some(url) = &self.database_url {
            config.url = url.clone();
        }
        config.max_connections = self.database_max_connections;
        config.timeout = std::time::Duration::from_secs(self.database_timeout_seconds);
        config
    }

    /// Whether the store is the SQLite file in the data folder (which then must exist).
    pub fn database_in_data_dir(&self) -> bool {
        self.database_url.is_none()
    }

    /// The refusals of DESIGN.md §3 that do not depend on the vendor profiles.
    pub fn check_production(&self) -> anyhow::Result<()> {
        if !self.mode.is_production() {
            return Ok(());
        }
        if self.token_keys.is_none() {
            bail!("production needs CLINIC_CONNECT_TOKEN_KEYS from the environment");
        }
        if self.session_key.is_none() {
            bail!("production needs CLINIC_CONNECT_SESSION_KEY from the environment");
        }
        if self.sandbox_listen.is_some() || self.sandbox_url.is_some() {
            bail!("production refuses to run with the sandbox on (set CLINIC_CONNECT_SANDBOX_LISTEN=off)");
        }
        match &self.public_url {
            Some(url) if url.scheme() == "https" => {}
            Some(_) => bail!("production needs an https:// CLINIC_CONNECT_PUBLIC_URL"),
            None => bail!("production needs CLINIC_CONNECT_PUBLIC_URL (the https:// address vendors redirect to)"),
        }
        if let Some(url) = &self.database_url {
            if !database_link_is_protected(url.expose_secret()) {
                tracing::warn!(
                    "CLINIC_CONNECT_DATABASE_URL reaches PostgreSQL over the network without TLS: add \
                     sslmode=verify-full (or sslmode=require) to the URL"
                );
            }
        }
        Ok(())
    }
}

/// Whether the way to the database is safe from the network: SQLite, a Unix socket, the loopback
/// address, or TLS asked for (`sslmode=require`, `verify-ca`, `verify-full`).
pub fn database_link_is_protected(url: &str) -> bool {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return true;
    }
    let Ok(parsed) = Url::parse(url) else { return false };
    let tls = parsed
        .query_pairs()
        .any(|(k, v)| (k == "sslmode" || k == "ssl-mode") && matches!(&*v, "require" | "verify-ca" | "verify-full"));
    let socket = parsed.query_pairs().any(|(k, v)| k == "host" && v.starts_with('/'));
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]") | None);
    tls || socket || local
}

/// One setting as `clinic-connect serve --help` and the README list it. Markdown: `code` in
/// backticks (the help shows it without them).
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// The environment variable (or, for the vendor registrations, its pattern and the other
    /// variable of the pair).
    pub names: &'static [&'static str],
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every setting, in the order an operator meets them: the one list that `serve --help` and the
/// README's table are made from. A test proves that every `CLINIC_CONNECT_…` variable this file
/// reads is here, and that the README's table is this one.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        names: &["CLINIC_CONNECT_ENV"],
        default: "`development`",
        meaning: "`production` refuses to start without keys from the environment, with the simulator on, or with \
                  `http://` URLs",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_LISTEN"],
        default: "`127.0.0.1:8080`",
        meaning: "where the app listens (port 0 = any free port, printed)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_PUBLIC_URL"],
        default: "`http://127.0.0.1:<port>`",
        meaning: "base of the redirect URIs registered at vendors (`https://` in production)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_DATA_DIR"],
        default: "`./data`",
        meaning: "the SQLite database, and development keys (created owner-only)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_DATABASE_URL"],
        default: "the SQLite file in the data folder",
        meaning: "`sqlite://PATH`, or `postgres://…` for instances on several hosts (`sslmode=require` in the URL \
                  for TLS)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_DATABASE_MAX_CONNECTIONS"],
        default: "`8` on SQLite, `10` on PostgreSQL",
        meaning: "connections in the database pool, 1 to 1000",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_DATABASE_TIMEOUT_SECONDS"],
        default: "`5`",
        meaning: "how long a request waits for a database connection (and SQLite for its write lock), 1 to 600",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_SANDBOX_LISTEN"],
        default: "`127.0.0.1:8090` in development",
        meaning: "where the simulator listens; `off` disables it",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_SANDBOX_URL"],
        default: "none",
        meaning: "use a simulator already running there (`clinic-connect sandbox`), development only",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_TOKEN_KEYS"],
        default: "generated in development",
        meaning: "token-encryption keyring `id:base64(32 bytes),…`, newest first",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_SESSION_KEY"],
        default: "generated in development",
        meaning: "session-cookie key (64 bytes, base64), a different key",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_<VENDOR>[_<ENV>][_BACKEND]_CLIENT_ID", "_CLIENT_SECRET"],
        default: "the simulator's in development",
        meaning: "the app's registration at each vendor; `_<ENV>` for a vendor's non-production environment (e.g. \
                  `ZOCDOC_SANDBOX_`), `_BACKEND` for Zocdoc's backend credential",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_CARE_ENVIRONMENT"],
        default: "`sandbox` in development, `production` otherwise",
        meaning: "the Zocdoc environment patients use",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_CLINIC_NAME"],
        default: "`Demo Clinic` in development, `Our clinic` in production (with a warning)",
        meaning: "the clinic's name on the patients' pages and in their tab title (at most 100 characters)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_TRUSTED_PROXIES"],
        default: "none",
        meaning: "comma-separated IP addresses or CIDR networks of your reverse proxies; a request from one of them \
                  is counted against the right-most address in `X-Forwarded-For` that is not one of them (entries \
                  further left are never believed). Without it the socket peer is the client. Sign-in \
                  throttling, the patients' search limit and the unknown-API-key log lines count per client \
                  address. A bad entry is refused at startup",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_VENDOR_TIMEOUT_SECONDS"],
        default: "`15`",
        meaning: "total time a vendor call may take",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_WORKER_INTERVAL_SECONDS"],
        default: "`30`",
        meaning: "how often idle connections are refreshed and failed revocations retried",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS"],
        default: "`900`",
        meaning: "how often, on average, each live connection is checked at its vendor (60 s to 7 days)",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_CONFIG"],
        default: "none",
        meaning: "a TOML file that overrides vendors' URLs, audiences, client ids and scopes, or adds vendors of an \
                  existing shape",
    },
    SettingDoc {
        names: &["CLINIC_CONNECT_METRICS_TOKEN"],
        default: "none",
        meaning: "the bearer token `/metrics` asks for in production (at least 24 characters, e.g. `openssl rand \
                  -hex 32`); unset, production answers `/metrics` with 404. Development serves `/metrics` to anyone",
    },
    SettingDoc {
        names: &["RUST_LOG"],
        default: "`info,sqlx=warn`",
        meaning: "log verbosity; logs go to standard error, coloured only when it is a terminal",
    },
];

/// The settings as a Markdown table (the README's).
pub fn settings_markdown() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let names: Vec<String> = s.names.iter().map(|n| format!("`{n}`")).collect();
        out.push_str(&format!("| {} | {} | {} |\n", names.join(" / "), s.default, s.meaning));
    }
    out
}

/// The settings as `serve --help` shows them: each variable, its default, and its meaning
/// wrapped under it.
pub fn settings_help() -> String {
    let plain = |s: &str| s.replace('`', "");
    let mut out = String::from("Settings, read from the environment:\n");
    for s in SETTINGS {
        out.push_str(&format!("\n  {}\n      default: {}\n", s.names.join(" / "), plain(s.default)));
        let mut line = String::from("     ");
        for word in plain(s.meaning).split_whitespace() {
            if line.len() + 1 + word.len() > 96 && !line.trim().is_empty() {
                out.push_str(&line);
                out.push('\n');
                line = String::from("     ");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn registration_prefix(vendor: &str, environment: Option<&str>, role: Role) -> String {
    let mut prefix = format!("CLINIC_CONNECT_{}", env_name(vendor));
    if let Some(environment) = environment {
        prefix.push('_');
        prefix.push_str(&env_name(environment));
    }
    if role == Role::Backend {
        prefix.push_str("_BACKEND");
    }
    prefix
}

fn env_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_map(&map)
    }

    #[test]
    fn development_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s.mode, Mode::Development);
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.sandbox_listen.as_deref(), Some("127.0.0.1:8090"));
        assert_eq!(s.health_interval_seconds, 900);
        s.check_production().unwrap();
    }

    #[test]
    fn health_interval_is_bounded() {
        let s = from(&[("CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS", "300")]).unwrap();
        assert_eq!(s.health_interval_seconds, 300);
        for bad in ["0", "59", "604801", "soon", "-5"] {
            let err = from(&[("CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS", bad)]).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS")), "{bad}");
        }
    }

    #[test]
    fn production_refusals() {
        let keys = [("CLINIC_CONNECT_ENV", "production"), ("CLINIC_CONNECT_SANDBOX_LISTEN", "off")];
        let err = from(&keys).unwrap().check_production().unwrap_err().to_string();
        assert!(err.contains("TOKEN_KEYS"), "{err}");

        let full = [
            ("CLINIC_CONNECT_ENV", "production"),
            ("CLINIC_CONNECT_TOKEN_KEYS", "k:AAAA"),
            ("CLINIC_CONNECT_SESSION_KEY", "AAAA"),
            ("CLINIC_CONNECT_PUBLIC_URL", "https://connect.example.org"),
        ];
        let mut with_sandbox = full.to_vec();
        with_sandbox.push(("CLINIC_CONNECT_SANDBOX_LISTEN", "127.0.0.1:8090"));
        let err = from(&with_sandbox).unwrap().check_production().unwrap_err().to_string();
        assert!(err.contains("sandbox"), "{err}");
        let mut with_sandbox_url = full.to_vec();
        with_sandbox_url.push(("CLINIC_CONNECT_SANDBOX_URL", "http://127.0.0.1:8090/"));
        assert!(from(&with_sandbox_url).unwrap().check_production().is_err());

        let mut ok = full.to_vec();
        ok.push(("CLINIC_CONNECT_SANDBOX_LISTEN", "off"));
        from(&ok).unwrap().check_production().unwrap();

        let mut plain = ok.clone();
        plain[3] = ("CLINIC_CONNECT_PUBLIC_URL", "http://connect.example.org");
        assert!(from(&plain).unwrap().check_production().is_err());
    }

    #[test]
    fn a_metrics_token_must_be_long_and_plain() {
        assert!(from(&[]).unwrap().metrics_token.is_none());
        let good = "0123456789abcdef0123456789abcdef";
        let s = from(&[("CLINIC_CONNECT_METRICS_TOKEN", good)]).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(s.metrics_token.as_ref().unwrap()), good);
        for bad in ["short", "0123456789abcdef 0123456789abcdef"] {
            let err = from(&[("CLINIC_CONNECT_METRICS_TOKEN", bad)]).unwrap_err().to_string();
            assert!(err.contains("CLINIC_CONNECT_METRICS_TOKEN") && !err.contains(bad), "{err}");
        }
    }

    #[test]
    fn trusted_proxies_are_parsed_and_bad_ones_refused_with_the_variable_named() {
        assert!(from(&[]).unwrap().trusted_proxies.is_empty());
        let s = from(&[("CLINIC_CONNECT_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")]).unwrap();
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("192.0.2.7".parse().unwrap()));
        for bad in ["proxy.internal", "10.0.0.0/40", "10.0.0.1,,10.0.0.2"] {
            let err = from(&[("CLINIC_CONNECT_TRUSTED_PROXIES", bad)]).unwrap_err().to_string();
            assert!(err.contains("CLINIC_CONNECT_TRUSTED_PROXIES"), "{err}");
        }
    }

    #[test]
    fn the_clinic_name_has_a_default_per_mode_and_is_checked() {
        assert_eq!(from(&[]).unwrap().clinic_name, "Demo Clinic");
        assert_eq!(from(&[("CLINIC_CONNECT_ENV", "production")]).unwrap().clinic_name, DEFAULT_PRODUCTION_CLINIC_NAME);
        assert_eq!(from(&[("CLINIC_CONNECT_CLINIC_NAME", " Maple Clinic ")]).unwrap().clinic_name, "Maple Clinic");
        assert!(from(&[("CLINIC_CONNECT_CLINIC_NAME", &"x".repeat(101))]).is_err());
        assert!(from(&[("CLINIC_CONNECT_CLINIC_NAME", "a\u{7}b")]).is_err());
    }

    /// Every `CLINIC_CONNECT_…` name in the code above the tests, the table left out.
    fn names_read_here() -> std::collections::BTreeSet<String> {
        let source = include_str!("settings.rs");
        let code = source.split("#[cfg(test)]").next().unwrap();
        let (before, rest) = code.split_once("pub const SETTINGS").unwrap();
        let after = rest.split_once("\n];\n").unwrap().1;
        let name = regex::Regex::new(r"CLINIC_CONNECT_[A-Z0-9_]*[A-Z0-9]").unwrap();
        [before, after].iter().flat_map(|part| name.find_iter(part).map(|m| m.as_str().to_owned())).collect()
    }

    #[test]
    fn every_variable_read_is_in_the_table_and_every_one_in_the_table_is_read() {
        let listed: Vec<&str> = SETTINGS.iter().flat_map(|s| s.names.iter().copied()).collect();
        let read = names_read_here();
        assert!(read.len() >= 18, "the scan finds the variables: {read:?}");
        for name in &read {
            assert!(listed.contains(&name.as_str()), "{name} is read but missing from SETTINGS");
        }
        for name in listed.iter().filter(|n| n.starts_with("CLINIC_CONNECT_") && !n.contains('<')) {
            assert!(read.contains(*name), "{name} is in SETTINGS but nothing here reads it");
        }
    }

    #[test]
    fn the_readme_lists_the_settings_as_the_table_says() {
        let readme = include_str!("../README.md");
        let table = settings_markdown();
        assert!(readme.contains(&table), "the README's settings table must read exactly:\n{table}");
    }

    #[test]
    fn the_help_names_every_variable_with_its_default() {
        let help = settings_help();
        for s in SETTINGS {
            assert!(help.contains(&format!(
                "\n  {}\n      default: {}\n",
                s.names.join(" / "),
                s.default.replace('`', "")
            )));
        }
        assert!(!help.contains('`'));
        assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
    }

    #[test]
    fn a_database_over_the_network_without_tls_is_told_apart() {
        for safe in [
            "sqlite://data/clinic-connect.db",
            "postgres://u:p@db.internal/cc?sslmode=verify-full",
            "postgres://u:p@db.internal/cc?sslmode=require",
            "postgres://u@localhost/cc",
            "postgres://postgres@localhost/postgres?host=/tmp/pg",
        ] {
            assert!(database_link_is_protected(safe), "{safe}");
        }
        for open in ["postgres://u:p@db.internal/cc", "postgresql://u:p@10.0.0.5/cc?sslmode=prefer"] {
            assert!(!database_link_is_protected(open), "{open}");
        }
    }

    #[test]
    fn unknown_mode_is_refused() {
        assert!(from(&[("CLINIC_CONNECT_ENV", "staging")]).is_err());
    }
}
