//! The banner at the top of every admin page while some of the clinic's connections need
//! attention: how many, and a link to the first (in the dashboard's order).
//!
//! Every admin page's layout (`admin_base.html`, and the signed-in error page) marks where the
//! banner goes with [`MARKER`]; this middleware, inside the admin session, puts the rendered
//! banner there, or nothing. So every admin page has it, a page added later included, without
//! each handler reading it. What it shows comes from the clinic's connections as the request's
//! `CurrentAdmin` read them ([`known`]); a page without one (an error page) reads the admin's
//! broken connections itself (one statement).

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use askama::Template;

use crate::db::connections::ConnectionRow;
use crate::db::health::Attention;
use crate::session;
use crate::startup::AppState;
use crate::status::Status;

/// Where the banner goes. Nothing an admin or a vendor typed can produce it: askama escapes `<`.
pub const MARKER: &str = "<!--attention-->";

/// Pages larger than this are passed on untouched (no admin page comes near it).
const PAGE_CAP: usize = 4 * 1024 * 1024;

#[derive(Template)]
#[template(path = "attention.html")]
struct Banner<'a> {
    count: usize,
    first_id: &'a str,
    first_name: &'a str,
    first_label: &'a str,
}

/// The connections needing attention of the admin a request is signed in as, read earlier in
/// the same request.
#[derive(Clone)]
struct Known {
    admin_id: i64,
    rows: Vec<Attention>,
}

/// Notes, for this request's banner, the connections of the admin's clinic as just read.
pub fn known(req: &HttpRequest, admin_id: i64, connections: &[ConnectionRow]) {
    let rows = connections.iter().filter_map(Attention::of).collect();
    req.extensions_mut().insert(Known { admin_id, rows });
}

pub async fn banner<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let session = req.get_session();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let html =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    let (true, Some(state)) = (html, state) else { return Ok(response.map_into_boxed_body()) };
    let (request, response) = response.into_parts();
    let (response, body) = response.into_parts();
    let page = match actix_web::body::to_bytes_limited(body, PAGE_CAP).await {
        Ok(Ok(page)) => page,
        Ok(Err(e)) => {
            let e: Box<dyn std::error::Error> = e.into();
            tracing::error!(cause = %e, "an admin page's body could not be read");
            return Err(actix_web::error::ErrorInternalServerError("the page could not be read"));
        }
        Err(_) => {
            tracing::error!("an admin page is larger than the banner's cap");
            return Err(actix_web::error::ErrorInternalServerError("the page is too large"));
        }
    };
    let Some(at) = find(&page, MARKER.as_bytes()) else {
        return Ok(ServiceResponse::new(request, response.set_body(BoxBody::new(page))));
    };
    let known = request.extensions().get::<Known>().cloned();
    let rendered = match (session::admin_id(&session), known) {
        (Some(admin_id), Some(known)) if known.admin_id == admin_id => render(&state, &known.rows),
        (Some(admin_id), _) => match state.db.attention_of_admin(admin_id).await {
            Ok(rows) => render(&state, &rows),
            Err(e) => {
                tracing::warn!(cause = %e, "the attention banner could not be read");
                String::new()
            }
        },
        (None, _) => String::new(),
    };
    let mut out = Vec::with_capacity(page.len() + rendered.len());
    out.extend_from_slice(&page[..at]);
    out.extend_from_slice(rendered.as_bytes());
    out.extend_from_slice(&page[at + MARKER.len()..]);
    Ok(ServiceResponse::new(request, response.set_body(BoxBody::new(out))))
}

/// The banner for an admin's clinic, or nothing when all is well (or it cannot be read: the
/// page itself still says what it says).
fn render(state: &AppState, rows: &[Attention]) -> String {
    let mut broken: Vec<(Status, &str, &str)> = rows
        .iter()
        .filter_map(|r| {
            let vendor = state.vendors.get(&r.vendor)?;
            let status = Status::of(&r.status, r.trouble.as_deref(), false);
            status.needs_attention().then_some((status, vendor.profile.id.as_str(), vendor.profile.name.as_str()))
        })
        .collect();
    broken.sort_by_key(|(status, _, name)| (status.rank(), name.to_lowercase()));
    let Some((status, id, name)) = broken.first() else { return String::new() };
    let banner = Banner { count: broken.len(), first_id: id, first_name: name, first_label: status.label() };
    banner.render().unwrap_or_else(|e| {
        tracing::error!(cause = %e, "the attention banner does not render");
        String::new()
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_once_where_it_is() {
        assert_eq!(find(b"<main><!--attention--><h1>", MARKER.as_bytes()), Some(6));
        assert_eq!(find(b"<main><h1>", MARKER.as_bytes()), None);
    }
}
