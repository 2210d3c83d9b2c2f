//! What an admin's email address and a new password must be, for the pages and the CLI alike.

use secrecy::{ExposeSecret, SecretString};

use crate::auth::MIN_PASSWORD_LEN;

/// Longer passwords are refused: hashing is deliberately slow, and nobody types more.
pub const MAX_PASSWORD_LEN: usize = 1000;

/// An admin's email address: trimmed, one `@` with something on each side, no spaces or control
/// characters, at most 254 characters (what a mailbox can be). Compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let email = input.trim();
        if email.is_empty() {
            return Err("Enter an email address.".to_owned());
        }
        if email.chars().count() > 254 {
            return Err("That email address is too long (at most 254 characters).".to_owned());
        }
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err("That is not an email address: it needs a name, an @ and a domain, without spaces.".to_owned());
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password an admin chose: at least [`MIN_PASSWORD_LEN`] characters, at most
/// [`MAX_PASSWORD_LEN`]. Its `Debug` shows nothing of it.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(password: SecretString) -> Result<Self, String> {
        let length = password.expose_secret().chars().count();
        if length < MIN_PASSWORD_LEN {
            return Err(format!("The password must be at least {MIN_PASSWORD_LEN} characters long."));
        }
        if length > MAX_PASSWORD_LEN {
            return Err(format!("The password must be at most {MAX_PASSWORD_LEN} characters long."));
        }
        Ok(Self(password))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// Its argon2id hash, computed on a blocking thread (it is deliberately slow).
    pub async fn hash(&self) -> anyhow::Result<String> {
        let password = self.0.clone();
        actix_web::web::block(move || crate::auth::hash_password(&password))
            .await
            .map_err(|e| anyhow::anyhow!("the password hashing thread failed: {e}"))?
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(…)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_kept_as_typed() {
        assert_eq!(Email::parse("  Ana@Clinic.test ").unwrap().as_str(), "Ana@Clinic.test");
    }

    #[test]
    fn refuses_what_is_not_an_email() {
        for bad in
            ["", "   ", "ana", "@clinic.test", "ana@", "ana@b@c", "ana maria@clinic.test", "ana@clinic\u{0}.test"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@clinic.test", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_have_a_minimum_and_a_maximum_length_in_characters() {
        assert!(NewPassword::parse(SecretString::from("short")).is_err());
        assert!(NewPassword::parse(SecretString::from("x".repeat(MIN_PASSWORD_LEN - 1))).is_err());
        assert!(NewPassword::parse(SecretString::from("x".repeat(MIN_PASSWORD_LEN))).is_ok());
        // Twelve characters of two bytes each: characters count, not bytes.
        assert!(NewPassword::parse(SecretString::from("é".repeat(MIN_PASSWORD_LEN))).is_ok());
        assert!(NewPassword::parse(SecretString::from("é".repeat(MIN_PASSWORD_LEN - 1))).is_err());
        assert!(NewPassword::parse(SecretString::from("x".repeat(MAX_PASSWORD_LEN + 1))).is_err());
    }

    #[test]
    fn debug_shows_no_password() {
        let password = NewPassword::parse(SecretString::from("correct horse battery")).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
