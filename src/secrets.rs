//! Secrets by name (Sous docs 15): what a version's `config.secrets` declares, the values the
//! supervisor fetched for one activation, `cs.secrets.get(name)`, and redaction.
//!
//! A version's meta may say `config.secrets: ["kv:payments/stripe_key", ...]`. Provider `kv:`
//! is the only one: the value is the KVRocks string `cs:secret:{tenant}:{path}`, the tenant
//! always the activation's own, whatever the path says (a `:` or a `..` segment in the path is
//! refused, so no path can reach another tenant's key or look like one). The values are read
//! once per activation (a version without secrets costs no round trip), kept in the supervisor
//! in a [`Secrets`] that lives as long as the activation, and handed to the child one at a time,
//! only when the function asks for a declared name: the child never holds a value it did not
//! ask for, and nothing is cached across activations (so across tenants neither).
//!
//! **Redaction.** Every occurrence of a value of at least [`MIN_REDACTED_LEN`] bytes in what the
//! function writes or throws (log lines, `error.message`, `error.stack`) is replaced by
//! `[REDACTED:<name>]` before anything is stored, published or printed, and so are its base64
//! forms (standard, with and without padding, and URL-safe), the usual way a credential leaks
//! through an `Authorization: Basic` header or an encoded payload. A value shorter than four
//! bytes is not redacted: replacing every `ab` in a log would redact noise, not a secret. The
//! base64 of a value embedded at an offset that is not a multiple of three inside a longer
//! encoded text is not found; say so to function authors (docs/functions.md).

use crate::secret::Secret;
use base64::Engine as _;
use sandbox_proto::protocol::HostError;

/// The provider prefix of a secret kept in KVRocks.
pub const KV_PROVIDER: &str = "kv:";
/// Most secrets one version may declare.
pub const MAX_SECRETS: usize = 64;
/// Longest declared name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest value, in bytes: far above any credential, far below the 8 MiB host-call frame.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Values shorter than this are not redacted.
pub const MIN_REDACTED_LEN: usize = 4;

/// One entry of `config.secrets`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// As declared: `kv:payments/stripe_key`.
    pub declared: String,
    /// The path under the tenant: `payments/stripe_key`.
    pub path: String,
}

impl SecretRef {
    /// The last segment of the path (`stripe_key`), the short name `cs.secrets.get` accepts.
    pub fn short(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Why a version's `config.secrets` is refused (a terminal `ManifestError`): the bad entry,
/// by index and (at most 80 characters of) its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclaredError {
    #[error("config.secrets must be a list of names like \"kv:path\"")]
    NotAList,
    #[error("config.secrets declares {0} secrets, over the limit of {MAX_SECRETS}")]
    TooMany(usize),
    #[error("config.secrets[{0}] must be a string")]
    NotAString(usize),
    #[error("config.secrets[{index}] \"{shown}…\" is longer than {MAX_NAME_BYTES} bytes")]
    TooLong { index: usize, shown: String },
    #[error("config.secrets[{index}] \"{shown}\" names no provider; write \"kv:{shown}\"")]
    NoProvider { index: usize, shown: String },
    #[error(
        "config.secrets[{index}] \"{shown}\": unknown secret provider \"{provider}\" \
         (the only provider is \"kv\")"
    )]
    UnknownProvider {
        index: usize,
        shown: String,
        provider: String,
    },
    #[error("config.secrets[{index}] \"{shown}\": {why}")]
    BadPath {
        index: usize,
        shown: String,
        why: PathError,
    },
}

/// What is wrong with the path of a `kv:{path}` secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("a path may not contain ':'")]
    Colon,
    #[error("a path may not contain control characters")]
    Control,
    #[error("a path may not contain '..' or empty segments")]
    BadSegment,
}

/// `config.secrets` of a version meta: absent or null → none; otherwise a list of
/// `kv:{path}` strings. The error (a terminal `ManifestError`) names the bad entry.
pub fn declared(config: &serde_json::Value) -> Result<Vec<SecretRef>, DeclaredError> {
    let list = match config.get("secrets") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return Err(DeclaredError::NotAList),
    };
    if list.len() > MAX_SECRETS {
        return Err(DeclaredError::TooMany(list.len()));
    }
    let mut out: Vec<SecretRef> = Vec::with_capacity(list.len());
    for (index, v) in list.iter().enumerate() {
        let Some(name) = v.as_str() else {
            return Err(DeclaredError::NotAString(index));
        };
        let shown: String = name.chars().take(80).collect();
        if name.len() > MAX_NAME_BYTES {
            return Err(DeclaredError::TooLong { index, shown });
        }
        let Some(path) = name.strip_prefix(KV_PROVIDER) else {
            let provider = name.split_once(':').map(|(p, _)| p).unwrap_or("");
            return Err(if provider.is_empty() {
                DeclaredError::NoProvider { index, shown }
            } else {
                DeclaredError::UnknownProvider {
                    index,
                    shown,
                    provider: provider.to_string(),
                }
            });
        };
        if let Err(why) = check_path(path) {
            return Err(DeclaredError::BadPath { index, shown, why });
        }
        if out.iter().any(|r| r.declared == name) {
            continue;
        }
        out.push(SecretRef {
            declared: name.to_string(),
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// A path may not be empty, hold a `:` (the key separator), a `..` or empty segment, or a
/// control character.
fn check_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains(':') {
        return Err(PathError::Colon);
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if path.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(PathError::BadSegment);
    }
    Ok(())
}

#[derive(Clone)]
struct Entry {
    declared: String,
    short: String,
    value: Secret,
}

/// The secrets of one activation, as fetched. Cheap when empty (the common case).
#[derive(Clone, Default)]
pub struct Secrets {
    entries: Vec<Entry>,
    /// (text to find, the name it is replaced with), longest first.
    patterns: Vec<(String, usize)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.declared))
            .finish()
    }
}

impl Secrets {
    /// From (name, value) pairs: the declared name of a `kv:` secret, or a `run --secret`
    /// NAME. A later pair with the same name replaces an earlier one.
    pub fn new(pairs: impl IntoIterator<Item = (String, String, String)>) -> Secrets {
        let mut entries: Vec<Entry> = Vec::new();
        for (declared, short, value) in pairs {
            entries.retain(|e| e.declared != declared);
            entries.push(Entry {
                declared,
                short,
                value: Secret::new(value),
            });
        }
        let b64 = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let mut patterns: Vec<(String, usize)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let v = e.value.expose();
            if v.len() < MIN_REDACTED_LEN {
                continue;
            }
            patterns.push((v.to_string(), i));
            for engine in &b64 {
                let enc = engine.encode(v.as_bytes());
                if !patterns.iter().any(|(p, _)| *p == enc) {
                    patterns.push((enc, i));
                }
            }
        }
        // Longest first: a value that contains another is replaced whole, and the padded
        // base64 before its unpadded prefix.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Secrets { entries, patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `cs.secrets.get(name)`: by the name as declared, or by its short name when no other
    /// secret has the same one. Anything else is the capability denial the function sees.
    pub fn get(&self, name: &str) -> Result<String, HostError> {
        if let Some(e) = self.entries.iter().find(|e| e.declared == name) {
            return Ok(e.value.expose().to_string());
        }
        let mut by_short = self.entries.iter().filter(|e| e.short == name);
        match (by_short.next(), by_short.next()) {
            (Some(e), None) => Ok(e.value.expose().to_string()),
            (Some(_), Some(_)) => Err(HostError::denied(format!(
                "cs.secrets.get(\"{}\") is ambiguous: more than one \
                     declared secret ends in that name; use the name as declared",
                shown(name)
            ))),
            _ => Err(HostError::denied(format!(
                "cs.secrets.get(\"{}\"): the version declares no such \
                     secret in config.secrets",
                shown(name)
            ))),
        }
    }

    /// Replaces every occurrence of a value (and of its base64 forms) in `text` by
    /// `[REDACTED:<name>]`; returns how many it replaced.
    pub fn redact(&self, text: &mut String) -> u64 {
        let mut n = 0;
        for (pat, i) in &self.patterns {
            if !text.contains(pat.as_str()) {
                continue;
            }
            let count = text.matches(pat.as_str()).count() as u64;
            let with = format!("[REDACTED:{}]", self.entries[*i].declared);
            *text = text.replace(pat.as_str(), &with);
            n += count;
        }
        n
    }
}

fn shown(name: &str) -> String {
    name.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_names_are_checked() {
        let ok = declared(&json!({"secrets": ["kv:payments/stripe_key", "kv:db"]})).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].path, "payments/stripe_key");
        assert_eq!(ok[0].short(), "stripe_key");
        assert_eq!(ok[1].short(), "db");
        assert!(declared(&json!({})).unwrap().is_empty());
        assert!(declared(&json!({"secrets": null})).unwrap().is_empty());
        let e = declared(&json!({"secrets": ["vault:x/y"]})).unwrap_err();
        assert!(
            matches!(&e, DeclaredError::UnknownProvider { index: 0, provider, .. } if provider == "vault"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("unknown secret provider \"vault\""),
            "{e}"
        );
        for (bad, why) in [
            ("kv:a:b", PathError::Colon),
            ("kv:../other", PathError::BadSegment),
            ("kv:a/../b", PathError::BadSegment),
            ("kv:", PathError::Empty),
            ("kv:a//b", PathError::BadSegment),
        ] {
            let e = declared(&json!({ "secrets": [bad] })).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
            assert!(
                matches!(&e, DeclaredError::BadPath { why: w, .. } if *w == why),
                "{bad}: {e:?}"
            );
        }
        assert!(declared(&json!({"secrets": "kv:a"})).is_err());
        assert!(declared(&json!({"secrets": [1]})).is_err());
    }

    fn two() -> Secrets {
        Secrets::new([
            (
                "kv:payments/stripe_key".to_string(),
                "stripe_key".to_string(),
                "sk_live_4242abcd".to_string(),
            ),
            ("kv:pin".to_string(), "pin".to_string(), "123".to_string()),
        ])
    }

    #[test]
    fn get_by_declared_or_short_name() {
        let s = two();
        assert_eq!(s.get("kv:payments/stripe_key").unwrap(), "sk_live_4242abcd");
        assert_eq!(s.get("stripe_key").unwrap(), "sk_live_4242abcd");
        let e = s.get("other").unwrap_err();
        assert!(
            e.message.starts_with("CS_RUNTIME_CAPABILITY_DENIED:"),
            "{e:?}"
        );
        let amb = Secrets::new([
            ("kv:a/k".into(), "k".into(), "v1v1".into()),
            ("kv:b/k".into(), "k".into(), "v2v2".into()),
        ]);
        assert!(amb.get("k").unwrap_err().message.contains("ambiguous"));
        assert_eq!(amb.get("kv:b/k").unwrap(), "v2v2");
    }

    #[test]
    fn redacts_plain_and_base64_forms() {
        let s = two();
        // Node: Buffer.from("sk_live_4242abcd").toString("base64") === "c2tfbGl2ZV80MjQyYWJjZA=="
        let mut t =
            "key=sk_live_4242abcd b64=c2tfbGl2ZV80MjQyYWJjZA== raw=c2tfbGl2ZV80MjQyYWJjZA pin=123"
                .to_string();
        let n = s.redact(&mut t);
        assert_eq!(n, 3);
        assert_eq!(
            t,
            "key=[REDACTED:kv:payments/stripe_key] b64=[REDACTED:kv:payments/stripe_key] \
             raw=[REDACTED:kv:payments/stripe_key] pin=123"
        );
        assert!(!format!("{s:?}").contains("sk_live"));
    }
}
