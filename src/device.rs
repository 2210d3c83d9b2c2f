//! A short description of the device a session was signed in from ("Firefox on Windows"), from
//! its User-Agent header. Only this summary is kept (in the sealed session state), never the
//! header itself: it is enough for an admin to recognise a device, and tells little more.

/// What an unrecognised or missing User-Agent is shown as.
pub const UNKNOWN: &str = "Unknown device";

/// Browsers, most specific first: Edge and Opera also say "Chrome", Chrome also says "Safari".
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
];

/// Systems, most specific first: Android also says "Linux", iOS also says "Mac OS X".
const SYSTEMS: &[(&str, &str)] = &[
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

/// "Browser on system", either alone when only one is known, or [`UNKNOWN`].
pub fn describe(user_agent: Option<&str>) -> String {
    // A header is at most a few hundred bytes in practice; a longer one is not searched further.
    let Some(agent) = user_agent.map(|a| &a[..prefix_len(a, 512)]) else {
        return UNKNOWN.to_owned();
    };
    let find = |table: &[(&str, &'static str)]| table.iter().find(|(mark, _)| agent.contains(mark)).map(|(_, n)| *n);
    match (find(BROWSERS), find(SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("A browser on {system}"),
        (None, None) => UNKNOWN.to_owned(),
    }
}

/// The length of the longest prefix of `text` of at most `max` bytes that ends on a character.
fn prefix_len(text: &str, max: usize) -> usize {
    (0..=max.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// The User-Agent of a request, when it is readable text.
pub fn of_request(req: &actix_web::HttpRequest) -> String {
    describe(req.headers().get(actix_web::http::header::USER_AGENT).and_then(|v| v.to_str().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_common_browsers_and_systems() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("curl/8.5.0", "curl"),
        ];
        for (agent, expected) in cases {
            assert_eq!(describe(Some(agent)), expected, "{agent}");
        }
    }

    #[test]
    fn an_unknown_or_missing_agent_is_unknown_and_never_repeated() {
        assert_eq!(describe(None), UNKNOWN);
        assert_eq!(describe(Some("")), UNKNOWN);
        assert_eq!(describe(Some("SecretScanner/1.0 token=abc123")), UNKNOWN);
        assert_eq!(describe(Some("Something (Windows NT 10.0)")), "A browser on Windows");
    }

    #[test]
    fn a_huge_header_is_cut_on_a_character_boundary() {
        let agent = format!("{}Firefox/1", "é".repeat(400));
        assert_eq!(describe(Some(&agent)), UNKNOWN);
    }
}
