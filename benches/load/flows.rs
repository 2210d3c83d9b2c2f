//! A virtual clinic admin: its own cookie jar and session, connecting yAppointment again and
//! again through the whole flow, as a browser would.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use url::Url;

use crate::loadgen::{self, Op};
use crate::seed::{self, hidden_field, location, VENDOR};

pub struct Admin {
    client: reqwest::Client,
    base: String,
    csrf: String,
}

impl Admin {
    /// Signs in (argon2: setup, not measured) and keeps the session's CSRF token, which stays
    /// the same for the whole session.
    pub async fn sign_in(base: &str, email: &str, password: &str) -> anyhow::Result<Self> {
        let client = loadgen::client(true)?;
        let login = client.get(format!("{base}/login")).send().await?.text().await?;
        let csrf = hidden_field(&login, "csrf").ok_or_else(|| anyhow::anyhow!("no csrf on /login"))?;
        let answer = client
            .post(format!("{base}/login"))
            .form(&[("email", email), ("password", password), ("csrf", csrf)])
            .send()
            .await?;
        anyhow::ensure!(answer.status() == StatusCode::SEE_OTHER, "sign-in of {email} answered {}", answer.status());
        let dashboard = client.get(format!("{base}/connections")).send().await?.text().await?;
        let csrf = hidden_field(&dashboard, "csrf").ok_or_else(|| anyhow::anyhow!("no csrf on /connections"))?;
        Ok(Self { client, base: base.to_owned(), csrf: csrf.to_owned() })
    }

    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// POST a vendor's connect form; the answer's status and Location.
    pub async fn submit_connect(&self, vendor: &str, fields: &[(&str, &str)]) -> anyhow::Result<(StatusCode, String)> {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let answer = self.client.post(format!("{}/connections/{vendor}/connect", self.base)).form(&form).send().await?;
        let status = answer.status();
        let target = location(&answer).unwrap_or_default().to_owned();
        answer.bytes().await?;
        Ok((status, target))
    }

    /// The code-flow vendors: connect, approve at the sandbox, and the callback.
    pub async fn connect_code_flow(&self, vendor: &str, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let (status, authorize) = self.submit_connect(vendor, fields).await?;
        anyhow::ensure!(status == StatusCode::SEE_OTHER, "connect {vendor} answered {status}");
        let callback = seed::consent(&self.client, &Url::parse(&authorize)?).await?;
        let answer = self.client.get(callback).send().await?;
        anyhow::ensure!(answer.status() == StatusCode::SEE_OTHER, "callback of {vendor} answered {}", answer.status());
        Ok(())
    }

    /// Connects the four other vendors, each in its own way, so that the dashboard shows five
    /// live connections (setup, not measured).
    pub async fn connect_other_vendors(&self) -> anyhow::Result<()> {
        use clinic_connect::sandbox::{
            DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, QMATIC_ACCOUNT_NAME, QMATIC_CLIENT_ID,
            QMATIC_CLIENT_SECRET, QMATIC_REGION, QMATIC_SCOPES,
        };
        self.connect_code_flow("zocdoc", &[("environment", "sandbox")]).await?;
        self.connect_code_flow("drchrono", &[]).await?;
        let docplanner = [
            ("client_id", DOCPLANNER_CLIENT_ID),
            ("client_secret", DOCPLANNER_CLIENT_SECRET),
            ("domain", DOCPLANNER_DOMAIN),
        ];
        let mut qmatic = vec![
            ("client_id", QMATIC_CLIENT_ID),
            ("client_secret", QMATIC_CLIENT_SECRET),
            ("account_name", QMATIC_ACCOUNT_NAME),
            ("region", QMATIC_REGION),
        ];
        qmatic.extend(QMATIC_SCOPES.iter().map(|s| ("scopes", *s)));
        for (vendor, fields) in [("docplanner", &docplanner[..]), ("qmatic", &qmatic[..])] {
            let (status, target) = self.submit_connect(vendor, fields).await?;
            anyhow::ensure!(status == StatusCode::SEE_OTHER, "connect {vendor} answered {status}");
            anyhow::ensure!(target == format!("/connections/{vendor}"), "connect {vendor} went to {target}");
        }
        Ok(())
    }

    /// One full connect flow, timing only the app's three requests (the callback's includes its
    /// own calls to the vendor: the code exchange and the account lookup).
    async fn connect_flow(&self) -> anyhow::Result<FlowSample> {
        let started = Instant::now();
        let (status, authorize) = self.submit_connect(VENDOR, &[]).await?;
        let connect = started.elapsed();
        anyhow::ensure!(status == StatusCode::SEE_OTHER, "connect answered {status}");

        // The vendor's part: consent page and approval, not timed.
        let callback = seed::consent(&self.client, &Url::parse(&authorize)?).await?;

        let started = Instant::now();
        let answer = self.client.get(callback).send().await?;
        let status = answer.status();
        answer.bytes().await?;
        let callback = started.elapsed();
        anyhow::ensure!(status == StatusCode::SEE_OTHER, "callback answered {status}");

        let started = Instant::now();
        let page = self.client.get(format!("{}/connections/{VENDOR}", self.base)).send().await?;
        let status = page.status();
        page.bytes().await?;
        let detail = started.elapsed();
        anyhow::ensure!(status == StatusCode::OK, "detail page answered {status}");
        Ok(FlowSample { connect, callback, detail })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FlowSample {
    pub connect: Duration,
    pub callback: Duration,
    pub detail: Duration,
}

impl FlowSample {
    /// POST connect + GET callback + GET detail.
    pub fn app_part(&self) -> Duration {
        self.connect + self.callback + self.detail
    }
}

/// The connect flow as a load operation.
pub struct ConnectFlow {
    pub admin: Admin,
}

impl Op for ConnectFlow {
    type Sample = FlowSample;
    async fn run(&mut self) -> anyhow::Result<FlowSample> {
        self.admin.connect_flow().await
    }
}
