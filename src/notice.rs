//! The one-line message a page shows after an action ("flash"), and what kind of news it is.
//!
//! The kind decides the styling and a word said before the message ("Done", "Warning"…), so the
//! news is never told by colour alone.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The action did what was asked.
    Success,
    /// It did, or partly, but something needs the admin's attention.
    Warning,
    /// It failed; nothing or not everything was done.
    Error,
    /// Information or a prompt: neither good nor bad news.
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub message: String,
}

impl Notice {
    pub fn new(kind: NoticeKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn success(message: impl Into<String>) -> Self {
        Self::new(NoticeKind::Success, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(NoticeKind::Warning, message)
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(NoticeKind::Error, message)
    }

    pub fn neutral(message: impl Into<String>) -> Self {
        Self::new(NoticeKind::Neutral, message)
    }

    /// The CSS modifier: `notice-success`…
    pub fn class(&self) -> &'static str {
        match self.kind {
            NoticeKind::Success => "notice-success",
            NoticeKind::Warning => "notice-warning",
            NoticeKind::Error => "notice-error",
            NoticeKind::Neutral => "notice-neutral",
        }
    }

    /// The word before the message, which says the kind to everyone (and to screen readers).
    pub fn label(&self) -> &'static str {
        match self.kind {
            NoticeKind::Success => "Done",
            NoticeKind::Warning => "Warning",
            NoticeKind::Error => "Error",
            NoticeKind::Neutral => "Note",
        }
    }

    /// A small mark beside the word, for a quick glance (hidden from screen readers: the word
    /// already says it).
    pub fn icon(&self) -> &'static str {
        match self.kind {
            NoticeKind::Success => "✓",
            NoticeKind::Warning => "!",
            NoticeKind::Error => "×",
            NoticeKind::Neutral => "i",
        }
    }

    /// Bad news interrupts a screen reader; the rest waits its turn.
    pub fn role(&self) -> &'static str {
        match self.kind {
            NoticeKind::Warning | NoticeKind::Error => "alert",
            NoticeKind::Success | NoticeKind::Neutral => "status",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_word_class_and_icon() {
        let all = [Notice::success("a"), Notice::warning("b"), Notice::error("c"), Notice::neutral("d")];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.label(), b.label());
                assert_ne!(a.class(), b.class());
                assert_ne!(a.icon(), b.icon());
            }
        }
    }

    #[test]
    fn survives_the_session_round_trip() {
        let notice = Notice::warning("Disconnected here.");
        let json = serde_json::to_string(&notice).unwrap();
        assert_eq!(json, r#"{"kind":"warning","message":"Disconnected here."}"#);
        assert_eq!(serde_json::from_str::<Notice>(&json).unwrap(), notice);
    }
}
