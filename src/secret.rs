//! A secret string (a codeQ token, the KVRocks password) whose `Debug` and `Display` never show
//! the value.
//!
//! The settings structs that carry one (`Config`, `StoreConfig`, `ProducerConfig`,
//! `WorkerConfig`) derive `Debug`, so they can be logged or printed by `check-config`; the
//! type, not a hand-written `Debug` per struct that must remember the field, keeps the value
//! out. Only [`Secret::expose`] gives it, at the one place that sends it (AUTH, the codeQ
//! handshake).

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
            password: Option<Secret>,
        }
        let h = Holder {
            token: "tok-123".into(),
            password: Some(Secret::new("hunter2")),
        };
        let shown = format!("{h:?} {h:#?} {} {}", h.token, Secret::new("x9"));
        for s in ["tok-123", "hunter2", "x9"] {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
        assert!(shown.contains("<redacted>"));
        assert_eq!(h.token.expose(), "tok-123");
    }

    /// The settings that carry one derive `Debug` and still show none.
    #[test]
    fn settings_show_none() {
        use crate::queue::producer::ProducerConfig;
        use crate::queue::worker::WorkerConfig;
        use crate::store::StoreConfig;
        let shown = format!(
            "{:?} {:?} {:?}",
            ProducerConfig::new("cq:1", "tok-p"),
            WorkerConfig::new("cq:2", "tok-w", "w-1"),
            StoreConfig {
                password: Some("pw-s".into()),
                ..StoreConfig::default()
            }
        );
        for s in ["tok-p", "tok-w", "pw-s"] {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
        assert!(shown.contains("cq:1") && shown.contains("w-1"), "{shown}");
    }
}
