//! Service API keys as people manage them — the clinic's admin on the "API keys" page, the
//! operator with `clinic-connect apikey`: a label that names each key, creation (the key is
//! shown once and only its hash is stored), and the rows as a list shows them.
//!
//! A key is checked against the database on every request (`api`), so a revocation holds at
//! once on every instance; nothing about keys is kept in an instance's memory.

use secrecy::SecretString;

use crate::clock::{format_utc, UnixTime};
use crate::db::api_keys::ApiKeyRow;
use crate::db::Db;

pub const MAX_LABEL_CHARS: usize = 60;

/// What a key is for, as its clinic names it ("booking system"): unique among the clinic's live
/// keys, and how a key is found to be revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLabel(String);

impl KeyLabel {
    /// Trimmed; 1 to 60 characters, without control characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let label = raw.trim();
        if label.is_empty() {
            return Err("Give the key a label that says which system uses it.".to_owned());
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(format!("A label is at most {MAX_LABEL_CHARS} characters."));
        }
        if label.chars().any(char::is_control) {
            return Err("A label cannot contain control characters (tabs, line breaks…).".to_owned());
        }
        Ok(Self(label.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the clinic already has a live API key with this label")]
    LabelTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Creates a key for a clinic; the key itself, which exists nowhere else from now on.
pub async fn create(db: &Db, clinic_id: i64, label: &KeyLabel, now: UnixTime) -> Result<SecretString, CreateError> {
    let (key, hash) = crate::api::new_api_key()?;
    match db.insert_api_key(clinic_id, &hash, label.as_str(), now).await? {
        Some(_) => Ok(SecretString::from(key)),
        None => Err(CreateError::LabelTaken),
    }
}

/// A key as a list shows it: never the key (only its hash is stored), and times in words.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub last_used: String,
    /// When it was revoked; `None` while it is live.
    pub revoked: Option<String>,
}

impl KeyView {
    pub fn of(row: &ApiKeyRow) -> Self {
        Self {
            id: row.id,
            label: row.label.clone(),
            created: format_utc(row.created_at),
            last_used: row.last_used_at.map_or_else(|| "never".to_owned(), format_utc),
            revoked: row.revoked_at.map(format_utc),
        }
    }

    pub fn is_live(&self) -> bool {
        self.revoked.is_none()
    }
}

/// Keys as `clinic-connect apikey list` prints them: one line each under a header, in columns.
pub fn table(keys: &[KeyView]) -> String {
    let header = ["LABEL", "CREATED", "LAST USED", "REVOKED"];
    let rows: Vec<[String; 4]> = keys
        .iter()
        .map(|k| {
            [k.label.clone(), k.created.clone(), k.last_used.clone(), k.revoked.clone().unwrap_or_else(|| "-".into())]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_and_refused_when_empty_long_or_with_control_characters() {
        assert_eq!(KeyLabel::parse("  booking system ").unwrap().as_str(), "booking system");
        assert_eq!(KeyLabel::parse(&"é".repeat(60)).unwrap().as_str().chars().count(), 60);
        for bad in ["", "   ", "a\tb", "a\nb", "a\u{7}"] {
            assert!(KeyLabel::parse(bad).is_err(), "{bad:?}");
        }
        assert!(KeyLabel::parse(&"x".repeat(61)).unwrap_err().contains("60"));
    }

    #[test]
    fn a_listed_key_shows_its_dates_and_state_never_more() {
        let row = ApiKeyRow { id: 7, label: "crm".into(), created_at: 0, last_used_at: None, revoked_at: Some(60) };
        let view = KeyView::of(&row);
        assert_eq!(view.created, "1970-01-01 00:00 UTC");
        assert_eq!(view.last_used, "never");
        assert_eq!(view.revoked.as_deref(), Some("1970-01-01 00:01 UTC"));
        assert!(!view.is_live());
    }

    #[test]
    fn the_cli_table_lines_up_its_columns() {
        let live = ApiKeyRow {
            id: 1,
            label: "booking system".into(),
            created_at: 0,
            last_used_at: Some(120),
            revoked_at: None,
        };
        let revoked =
            ApiKeyRow { id: 2, label: "crm".into(), created_at: 60, last_used_at: None, revoked_at: Some(180) };
        let table = table(&[KeyView::of(&live), KeyView::of(&revoked)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "LABEL           CREATED               LAST USED             REVOKED");
        assert_eq!(lines[1], "booking system  1970-01-01 00:00 UTC  1970-01-01 00:02 UTC  -");
        assert_eq!(lines[2], "crm             1970-01-01 00:01 UTC  never                 1970-01-01 00:03 UTC");
    }
}
