//! The sandbox's HTML pages (askama templates under `templates/sandbox/`).

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

/// One requested scope, as the consent page lists it.
pub(crate) struct ScopeLine {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
}

#[derive(Template)]
#[template(path = "sandbox/consent.html")]
pub(crate) struct ConsentPage<'a> {
    pub(crate) vendor_title: &'a str,
    pub(crate) app_name: &'a str,
    pub(crate) company: &'a str,
    pub(crate) scopes: Vec<ScopeLine>,
    /// Where the form posts.
    pub(crate) action: &'a str,
    /// The opaque id of the pending authorization request.
    pub(crate) request_id: &'a str,
}

#[derive(Template)]
#[template(path = "sandbox/error.html")]
pub(crate) struct ErrorPage<'a> {
    pub(crate) vendor_title: &'a str,
    pub(crate) heading: &'a str,
    pub(crate) message: &'a str,
}

/// Zocdoc's sign-in and consent page: the user signs in (an email) and approves.
#[derive(Template)]
#[template(path = "sandbox/zocdoc_consent.html")]
pub(crate) struct ZocdocConsentPage<'a> {
    pub(crate) vendor_title: &'a str,
    /// `Production` or `Sandbox environment`.
    pub(crate) environment: &'a str,
    pub(crate) app_name: &'a str,
    /// Pre-filled: the `login_hint`, or a sample patient.
    pub(crate) email: &'a str,
    /// The requested scopes other than `offline_access`, in words.
    pub(crate) scopes: Vec<ScopeLine>,
    /// Whether `offline_access` was requested ("Allow offline access").
    pub(crate) offline_access: bool,
    pub(crate) action: &'a str,
    pub(crate) request_id: &'a str,
}

struct VendorLine<'a> {
    name: &'a str,
    base: &'a str,
    summary: &'a str,
}

#[derive(Template)]
#[template(path = "sandbox/index.html")]
struct IndexPage<'a> {
    vendors: Vec<VendorLine<'a>>,
}

/// Renders a page with headers that keep it out of caches and frames.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
            ))
            .body(body),
        Err(err) => {
            tracing::error!(error = %err, "sandbox page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the sandbox could not render this page")
        }
    }
}

/// A 400 page: for authorization errors that must not redirect.
pub(crate) fn bad_request(vendor_title: &str, heading: &str, message: &str) -> HttpResponse {
    html(StatusCode::BAD_REQUEST, &ErrorPage { vendor_title, heading, message })
}

/// `GET /`: the simulated vendors and their prefixes.
pub(crate) fn index(vendors: &[super::VendorInfo]) -> HttpResponse {
    let vendors = vendors.iter().map(|v| VendorLine { name: v.id, base: v.base, summary: v.summary }).collect();
    html(StatusCode::OK, &IndexPage { vendors })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn consent_page_escapes_and_lists_scopes() {
        let page = ConsentPage {
            vendor_title: "yAppointment (sandbox)",
            app_name: "clinic-connect",
            company: "Maple <Street>",
            scopes: vec![ScopeLine { name: "bookings:read", description: "view customer bookings" }],
            action: "/yappointment/oauth/consent",
            request_id: "abc\"def",
        }
        .render()
        .unwrap();
        assert!(page.contains("<title>yAppointment (sandbox)</title>"));
        assert!(page.contains("Maple &#60;Street&#62;") || page.contains("Maple &lt;Street&gt;"));
        assert!(page.contains("bookings:read"));
        assert!(page.contains("view customer bookings"));
        assert!(!page.contains("abc\"def"));
        assert!(page.contains(r#"<form method="post" action="/yappointment/oauth/consent">"#));
        assert!(page.contains(r#"<button type="submit" name="decision" value="approve" id="approve">Approve</button>"#));
    }

    #[test]
    fn zocdoc_page_prefills_the_email_and_escapes() {
        let render = |offline_access| {
            ZocdocConsentPage {
                vendor_title: "Zocdoc (sandbox)",
                environment: "Sandbox environment",
                app_name: "clinic-connect",
                email: "a\"b@example.com",
                scopes: vec![ScopeLine { name: "external.appointment.read", description: "See your appointments" }],
                offline_access,
                action: "/zocdoc-sandbox/consent",
                request_id: "rid",
            }
            .render()
            .unwrap()
        };
        let page = render(true);
        assert!(page.contains("<title>Zocdoc (sandbox)</title>"));
        assert!(page.contains("Sandbox environment"));
        assert!(page.contains(r#"id="zocdoc-email" name="email""#));
        assert!(!page.contains("a\"b@example.com"));
        assert!(page.contains("Allow offline access"));
        assert!(page.contains(r#"<form method="post" action="/zocdoc-sandbox/consent">"#));
        assert!(page.contains(r#"<input type="hidden" name="request" value="rid">"#));
        assert!(page.contains(r#"<button type="submit" name="decision" value="deny" id="deny">Deny</button>"#));
        assert!(!render(false).contains("Allow offline access"));
    }
}
