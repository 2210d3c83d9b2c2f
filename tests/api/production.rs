//! The app as production runs it (keys from the environment, an https public URL, no sandbox):
//! HSTS on every response, `/metrics` behind its token, the session cookie's attributes.

use std::collections::BTreeMap;

use clinic_connect::auth::hash_password;
use clinic_connect::clock::{Clock, ManualClock};
use clinic_connect::db::Db;
use clinic_connect::settings::Mode;
use clinic_connect::startup::{Application, HSTS, PRODUCTION_COOKIE};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use tempfile::TempDir;

use crate::helpers::{hidden_field, location, spawn_app, test_settings, PASSWORD};

pub const METRICS_TOKEN: &str = "metrics-token-3f9a1c7e5b2d4068a1c3e5f7";

pub struct ProductionApp {
    pub address: String,
    pub db: Db,
    _data_dir: TempDir,
}

/// Production settings: keys from the environment (as `keys generate` prints them), an https
/// public URL, the sandbox off; every vendor at its real https address (never called here).
pub async fn spawn_production_app(metrics_token: Option<&str>) -> ProductionApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path(), "http://127.0.0.1:1");
    settings.mode = Mode::Production;
    settings.sandbox_url = None;
    settings.sandbox_listen = None;
    settings.public_url = Some("https://connect.example.org/".parse().unwrap());
    settings.metrics_token = metrics_token.map(SecretString::from);
    let app = Application::build(settings, ManualClock::starting_now()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.db().clone();
    tokio::spawn(app.run_until_stopped());
    ProductionApp { address, db, _data_dir: data_dir }
}

/// A client that keeps cookies itself: a cookie store would not send `Secure` cookies over the
/// test's plain http, while production's browsers reach the app over https.
#[derive(Default)]
pub struct Jar {
    cookies: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Jar {
    fn keep(&self, response: &Response) {
        let mut cookies = self.cookies.lock().unwrap();
        for set in response.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            cookies.insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }

    fn header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    pub async fn get(&self, url: &str) -> Response {
        let response = Self::client().get(url).header(COOKIE, self.header()).send().await.unwrap();
        self.keep(&response);
        response
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Response {
        let response = Self::client().post(url).header(COOKIE, self.header()).form(form).send().await.unwrap();
        self.keep(&response);
        response
    }
}

async fn create_admin(db: &Db) {
    let now = clinic_connect::clock::SystemClock.now();
    let clinic = db.ensure_clinic("Clinic P", now).await.unwrap();
    let hash = hash_password(&SecretString::from(PASSWORD)).unwrap();
    db.insert_admin(clinic, "admin@clinic-p.test", &hash, now).await.unwrap();
}

#[tokio::test]
async fn production_sends_hsts_on_every_response() {
    let app = spawn_production_app(Some(METRICS_TOKEN)).await;
    let client = Jar::client();
    let url = |path: &str| format!("{}{path}", app.address);
    let responses = vec![
        client.get(url("/login")).send().await.unwrap(),
        client.get(url("/healthz")).send().await.unwrap(),
        client.get(url("/readyz")).send().await.unwrap(),
        client.get(url("/connections")).send().await.unwrap(),
        client.get(url("/care")).send().await.unwrap(),
        client.get(url("/static/style.css")).send().await.unwrap(),
        client.get(url("/no/such/page")).send().await.unwrap(),
        client.get(url("/metrics")).send().await.unwrap(),
        client.get(url("/api/v1/connections")).send().await.unwrap(),
        client.post(url("/logout")).form(&[("csrf", "x")]).send().await.unwrap(),
        client.get(url("/logout")).send().await.unwrap(),
        client.post(url("/login")).body("not a form").send().await.unwrap(),
    ];
    let mut statuses = Vec::new();
    for response in &responses {
        statuses.push(response.status().as_u16());
        assert_eq!(
            response.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some(HSTS),
            "{} {}",
            response.url(),
            response.status()
        );
    }
    assert_eq!(HSTS, "max-age=31536000; includeSubDomains");
    // Pages, redirects, refusals and errors alike.
    for status in [200, 303, 401, 404, 405] {
        assert!(statuses.contains(&status), "{status} among {statuses:?}");
    }

    let development = spawn_app().await;
    let page = development.browser.get("/login").await;
    assert!(page.headers().get("strict-transport-security").is_none(), "development is plain http");
}

#[tokio::test]
async fn production_metrics_need_the_token_and_are_absent_without_one() {
    let app = spawn_production_app(Some(METRICS_TOKEN)).await;
    let metrics = |authorization: Option<String>| {
        let mut request = Jar::client().get(format!("{}/metrics", app.address));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let response = metrics(Some(format!("Bearer {METRICS_TOKEN}"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("# TYPE"));
    for wrong in [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {METRICS_TOKEN}x")),
        Some(format!("Bearer {}", &METRICS_TOKEN[..METRICS_TOKEN.len() - 1])),
        Some(format!("Basic {METRICS_TOKEN}")),
        Some(METRICS_TOKEN.to_owned()),
    ] {
        let response = metrics(wrong.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
        assert!(!response.text().await.unwrap().contains("# TYPE"));
    }

    let without = spawn_production_app(None).await;
    for authorization in [None, Some(format!("Bearer {METRICS_TOKEN}"))] {
        let mut request = Jar::client().get(format!("{}/metrics", without.address));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!response.text().await.unwrap().contains("# TYPE"));
    }

    // Development serves them to anyone.
    let development = spawn_app().await;
    let response = development.browser.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("# TYPE"));
}

#[tokio::test]
async fn a_production_sign_in_sets_a_host_prefixed_secure_http_only_lax_cookie() {
    let app = spawn_production_app(None).await;
    create_admin(&app.db).await;
    let jar = Jar::default();
    let page = jar.get(&format!("{}/login", app.address)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    let response = jar
        .post_form(
            &format!("{}/login", app.address),
            &[("email", "admin@clinic-p.test"), ("password", PASSWORD), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections");
    let session = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{PRODUCTION_COOKIE}=")))
        .expect("sign-in sets the session cookie")
        .to_owned();
    assert!(PRODUCTION_COOKIE.starts_with("__Host-"));
    let attributes: Vec<String> = session.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    for wanted in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{wanted} missing: {session}");
    }
    // `__Host-` cookies have no Domain: the browser keeps them to this exact host.
    assert!(!attributes.iter().any(|a| a.starts_with("domain")), "{session}");
    // And the cookie is the signed-in session.
    let dashboard = jar.get(&format!("{}/connections", app.address)).await;
    assert_eq!(dashboard.status(), StatusCode::OK);
}
