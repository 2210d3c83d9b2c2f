//! Inviting someone to become an admin of a clinic: a link valid for 48 hours, shown once to
//! the admin who made it; only the SHA-256 of its token is stored. Opening it lets the invitee
//! choose a password, once.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::admins::{Email, NewPassword};
use crate::clock::UnixTime;
use crate::db::admins::{Acceptance, Invitation};
use crate::db::Db;
use crate::errors::AppError;
use crate::vault::{lookup_hash, random_token};

pub const TTL_SECONDS: i64 = 48 * 60 * 60;

/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Their base64url length.
const TOKEN_LEN: usize = 43;

/// The token of an invitation link, parsed from what a browser sent. Its `Debug` hides it.
pub struct InvitationToken(SecretString);

impl InvitationToken {
    /// `None` when it cannot be one of ours (wrong length or alphabet).
    pub fn parse(input: &str) -> Option<Self> {
        let well_formed =
            input.len() == TOKEN_LEN && input.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(SecretString::from(input.to_owned())))
    }

    fn new() -> Result<Self, AppError> {
        Ok(Self(SecretString::from(random_token(TOKEN_BYTES)?)))
    }

    /// What the store keeps and looks it up by.
    pub fn hash(&self) -> String {
        lookup_hash(self.0.expose_secret())
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvitationToken(…)")
    }
}

/// A new invitation: its link (with the token: shown once, never logged) and when it expires.
pub struct Invited {
    pub link: SecretString,
    pub expires_at: UnixTime,
}

/// Why an invitation was not made.
#[derive(Debug)]
pub enum InviteError {
    /// Someone already is an admin with this email (of this clinic or another).
    AlreadyAdmin,
    App(AppError),
}

impl From<AppError> for InviteError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<sqlx::Error> for InviteError {
    fn from(e: sqlx::Error) -> Self {
        Self::App(e.into())
    }
}

/// The link an invitee opens: `<public URL>/invitation?token=…`. The token is in the query (the
/// request log writes paths only), and the page it opens moves it into a cookie at once, so
/// that it leaves the address bar.
fn link(public_url: &Url, token: &InvitationToken) -> Result<Url, AppError> {
    let mut url = public_url.join("invitation").map_err(|e| AppError::Internal(e.into()))?;
    url.query_pairs_mut().append_pair("token", token.expose());
    Ok(url)
}

pub async fn invite(
    db: &Db,
    public_url: &Url,
    clinic_id: i64,
    invited_by: i64,
    email: &Email,
    now: UnixTime,
) -> Result<Invited, InviteError> {
    if db.admin_exists(email.as_str()).await? {
        return Err(InviteError::AlreadyAdmin);
    }
    let token = InvitationToken::new()?;
    let expires_at = now + TTL_SECONDS;
    db.create_invitation(&token.hash(), clinic_id, email.as_str(), Some(invited_by), now, expires_at).await?;
    let link = link(public_url, &token)?;
    Ok(Invited { link: SecretString::from(link.to_string()), expires_at })
}

/// The live invitation this token opens, if any.
pub async fn find(db: &Db, token: &InvitationToken, now: UnixTime) -> Result<Option<Invitation>, AppError> {
    Ok(db.invitation(&token.hash(), now).await?)
}

/// Uses the invitation: its invitee becomes an admin with this password.
pub async fn accept(
    db: &Db,
    token: &InvitationToken,
    password: &NewPassword,
    now: UnixTime,
) -> Result<Acceptance, AppError> {
    let hash = password.hash().await?;
    Ok(db.accept_invitation(&token.hash(), &hash, now).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_parse_and_other_strings_do_not() {
        let token = InvitationToken::new().unwrap();
        assert!(InvitationToken::parse(token.expose()).is_some());
        for bad in ["", "short", &"a".repeat(44), &format!("{}=", "a".repeat(42)), &format!("{}/", "a".repeat(42))] {
            assert!(InvitationToken::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn the_link_carries_the_token_in_its_query() {
        let token = InvitationToken::parse(&"A".repeat(TOKEN_LEN)).unwrap();
        let url = link(&Url::parse("https://clinic.example/app/").unwrap(), &token).unwrap();
        assert_eq!(url.as_str(), format!("https://clinic.example/app/invitation?token={}", "A".repeat(TOKEN_LEN)));
    }
}
