//! Where a patient goes back to after logging in: only our own care pages, as relative paths,
//! kept server-side with the flow. Anything that could leave the site is refused.

/// An allow-listed relative path under `/care`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

const PAGES: [&str; 3] = ["/care", "/care/appointments", "/care/book"];

impl ReturnTo {
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > 512 {
            return None;
        }
        let (path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw, None),
        };
        if !PAGES.contains(&path) {
            return None;
        }
        if let Some(q) = query {
            // Search parameters only: letters, digits and form-encoding, nothing that could
            // start another URL once decoded.
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"=&+%._-".contains(&b);
            if !q.bytes().all(allowed) {
                return None;
            }
            let decoded: String = url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            if decoded.contains("//") || decoded.contains('\\') || decoded.to_ascii_lowercase().contains("javascript:")
            {
                return None;
            }
        }
        Some(Self(raw.to_owned()))
    }

    pub fn home() -> Self {
        Self("/care".to_owned())
    }

    /// The confirmation of the time kept in the session.
    pub fn booking() -> Self {
        Self("/care/book".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_care_pages_are_allowed() {
        for ok in [
            "/care",
            "/care/appointments",
            "/care/book",
            "/care?q=smith",
            "/care?q=dr+smith&specialty=Dermatology",
            "/care?q=%C3%A9",
        ] {
            assert_eq!(ReturnTo::parse(ok).map(|r| r.0), Some(ok.to_owned()), "{ok}");
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_is_refused() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/care",
            "javascript:alert(1)",
            "/care//evil.example",
            "/care/../connections",
            "/care%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "/care?next=//evil.example",
            "/care?next=%2F%2Fevil.example",
            "/care?x=javascript%3Aalert(1)",
            "/care?x=%5C%5Cevil",
            "/connections",
            "/care/callback",
            "",
            "care",
            " /care",
            "/care#frag",
            "/care?q=a b",
        ] {
            assert!(ReturnTo::parse(bad).is_none(), "{bad}");
        }
    }
}
