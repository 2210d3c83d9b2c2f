//! PKCE (RFC 7636), S256 only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;

use super::http::secrets_equal;

/// RFC 7636 §4.1: `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A code verifier is 43 to 128 unreserved characters.
pub(crate) fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 challenge is the unpadded base64url of a SHA-256 digest: 43 characters that
/// decode (canonically) to 32 bytes.
pub(crate) fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|bytes| bytes.len() == 32)
}

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`.
pub(crate) fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Whether `verifier` is well formed and hashes to `challenge`.
pub(crate) fn verify_s256(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier) && secrets_equal(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify_s256(RFC_VERIFIER, RFC_CHALLENGE));
        assert!(is_valid_s256_challenge(RFC_CHALLENGE));
    }

    #[test]
    fn refuses_wrong_or_malformed_verifiers() {
        // One character changed.
        assert!(!verify_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", RFC_CHALLENGE));
        // `plain`: the verifier itself presented as the challenge.
        assert!(!verify_s256(RFC_VERIFIER, RFC_VERIFIER));
        // Too short, even when the challenge matches its hash.
        let short = "abc";
        assert!(!verify_s256(short, &s256_challenge(short)));
        // Too long.
        let long = "a".repeat(129);
        assert!(!verify_s256(&long, &s256_challenge(&long)));
        // Outside the unreserved set.
        let spaced = format!("{} x", "a".repeat(42));
        assert!(!verify_s256(&spaced, &s256_challenge(&spaced)));
        // Bounds are inclusive.
        let min = "a".repeat(43);
        assert!(verify_s256(&min, &s256_challenge(&min)));
        let max = "~".repeat(128);
        assert!(verify_s256(&max, &s256_challenge(&max)));
    }

    #[test]
    fn validates_challenge_shape() {
        assert!(!is_valid_s256_challenge(""));
        assert!(!is_valid_s256_challenge("plain-challenge"));
        assert!(!is_valid_s256_challenge(&"a".repeat(44)));
        assert!(!is_valid_s256_challenge(&format!("{}=", &RFC_CHALLENGE[..42])));
        // 43 characters whose last one carries non-zero padding bits.
        assert!(!is_valid_s256_challenge(&format!("{}N", &RFC_CHALLENGE[..42])));
    }
}
