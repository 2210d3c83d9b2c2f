//! Every POST route refuses a form without its CSRF token. The routes are read from the source
//! (`post_only(…)`, `.route("…", web::post()…)`, `web::resource("…")….route(web::post()…)`), so a
//! route added tomorrow is tried too; a POST registration the reader cannot place fails the test.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;

use crate::helpers::spawn_app;

/// A POST route as registered: its path pattern, and where.
#[derive(Debug, Clone)]
struct Registration {
    pattern: String,
    at: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The index just past the parenthesis that closes the one at `open`, skipping string literals.
fn closing(text: &[u8], open: usize) -> usize {
    let (mut depth, mut i, mut in_string) = (0usize, open, false);
    while i < text.len() {
        match (in_string, text[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    text.len()
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Every POST registration in the app's source (the sandbox is a separate server, the vendors'
/// simulator, and is left out). Panics on a POST marker it cannot attribute to a route.
fn post_registrations() -> Vec<Registration> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let literal = regex::Regex::new(r#"^\s*"([^"]*)""#).unwrap();
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]*)"\s*,\s*web::post\(\)"#).unwrap();
    let resource = regex::Regex::new(r#"web::resource\(\s*"([^"]*)"\s*\)"#).unwrap();
    let next = regex::Regex::new(r#"web::resource\(|post_only\(|\.route\(\s*"|web::scope\("#).unwrap();
    let attribute = regex::Regex::new(r#"#\[post\(\s*"([^"]*)""#).unwrap();
    let mut found = Vec::new();
    let mut unexplained = Vec::new();
    for file in files.into_iter().filter(|f| !f.starts_with(src.join("sandbox"))) {
        let text = std::fs::read_to_string(&file).unwrap();
        let bytes = text.as_bytes();
        let name = file.strip_prefix(&src).unwrap().display().to_string();
        let mut explained: Vec<(usize, usize)> = Vec::new();
        let mut add = |pattern: &str, start: usize, end: usize, found: &mut Vec<Registration>| {
            found.push(Registration {
                pattern: pattern.to_owned(),
                at: format!("src/{name}:{}", line_of(&text, start)),
            });
            explained.push((start, end));
        };
        // post_only("…", …)
        for (start, _) in text.match_indices("post_only(") {
            if text[..start].ends_with("fn ") {
                continue;
            }
            let open = start + "post_only".len();
            match literal.captures(&text[open + 1..]) {
                Some(c) => add(&c[1], start, closing(bytes, open), &mut found),
                None => {
                    unexplained.push(format!("src/{name}:{} post_only without a literal path", line_of(&text, start)))
                }
            }
        }
        // .route("…", web::post()…)
        for c in route.captures_iter(&text) {
            let start = c.get(0).unwrap().start();
            add(&c[1], start, closing(bytes, start + ".route".len()), &mut found);
        }
        // web::resource("…") … .route(web::post()…), up to the next registration.
        for c in resource.captures_iter(&text) {
            let m = c.get(0).unwrap();
            let end = next.find_at(&text, m.end()).map_or(text.len(), |n| n.start());
            if text[m.end()..end].contains("web::post()") {
                add(&c[1], m.start(), end, &mut found);
            }
        }
        // #[post("…")]
        for c in attribute.captures_iter(&text) {
            let m = c.get(0).unwrap();
            add(&c[1], m.start(), m.end(), &mut found);
        }
        for marker in ["web::post()", "guard::Post", "#[post("] {
            for (at, _) in text.match_indices(marker) {
                if !explained.iter().any(|(s, e)| (*s..*e).contains(&at)) {
                    unexplained
                        .push(format!("src/{name}:{} {marker} outside a route this test can read", line_of(&text, at)));
                }
            }
        }
    }
    assert!(unexplained.is_empty(), "POST registrations this test cannot place (teach it): {unexplained:#?}");
    found
}

/// Path parameters replaced by values that reach the handler (a vendor that exists).
fn concrete(pattern: &str) -> String {
    let param = regex::Regex::new(r"\{([^}:]+)(:[^}]*)?\}").unwrap();
    param
        .replace_all(pattern, |c: &regex::Captures| match &c[1] {
            "vendor" => "yappointment".to_owned(),
            "tail" => "x".to_owned(),
            _ => "1".to_owned(),
        })
        .into_owned()
}

fn scopes() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let scope = regex::Regex::new(r#"web::scope\(\s*"([^"]*)"\s*\)"#).unwrap();
    let mut scopes = vec![String::new()];
    for file in files.into_iter().filter(|f| !f.starts_with(src.join("sandbox"))) {
        let text = std::fs::read_to_string(&file).unwrap();
        for c in scope.captures_iter(&text) {
            if !scopes.contains(&c[1].to_owned()) {
                scopes.push(c[1].to_owned());
            }
        }
    }
    scopes
}

#[tokio::test]
async fn every_post_route_refuses_a_form_without_its_csrf_token() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    // A patient session too, so /care's forms are refused for the token, not for want of a session.
    assert_eq!(app.browser.get("/care").await.status(), StatusCode::OK);

    let registrations = post_registrations();
    let scopes = scopes();
    let mut tried = Vec::new();
    for registration in &registrations {
        let path = concrete(&registration.pattern);
        // Where it is mounted is not in the pattern (a scope may add a prefix): each of the
        // app's scopes is tried, and 404 means "not here". A route found nowhere fails.
        let mut mounted = false;
        for scope in &scopes {
            let full = format!("{scope}{path}");
            for form in [&[("email", "admin@clinic-a.test")][..], &[("csrf", "forged-token-0123456789")][..], &[][..]] {
                let status = app.browser.post_form(&full, form).await.status();
                if status == StatusCode::NOT_FOUND {
                    continue;
                }
                mounted = true;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "POST {full} ({}) with {form:?} was not refused for its CSRF token",
                    registration.at
                );
                if !tried.contains(&full) {
                    tried.push(full.clone());
                }
            }
        }
        assert!(mounted, "{registration:?} answered 404 under every scope {scopes:?}");
    }
    // The reader found the routes we know of (it reads, it does not guess).
    for known in [
        "/login",
        "/logout",
        "/connections/yappointment/connect",
        "/connections/yappointment/disconnect",
        "/connections/yappointment/refresh",
        "/api-keys",
        "/api-keys/1/revoke",
        "/care/login",
        "/care/logout",
        "/admins/invite",
        "/admins/invitations/cancel",
        "/admins/1/remove",
        "/account/sessions/end",
        "/account/sessions/end-others",
        "/account/password",
        "/invitation",
    ] {
        assert!(tried.iter().any(|t| t == known), "{known} not among {tried:?}");
    }
    // Nothing the refused forms asked for happened.
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK, "still signed in");
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "connected");
    assert!(app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
}
