//! The key layout of contract §4, in one place.
//!
//! Every builder takes the components as given; [`check_name`] and [`check_tenant`] are applied by
//! the store before any key is built, so that a `:` in a component can never make two different
//! (tenant, name) pairs produce the same key. The tenant is the isolation boundary; it, the
//! namespace, function, alias and activation id are made of [`NAME_CHARSET`] only. The user KV key and
//! the request id are the last variable component of their keys and may contain anything but
//! must not be empty.

/// `cs:fn:{t}:{ns}:{fn}:alias:{alias}`: `{"alias","version","updated_at_ms"}` (read).
pub fn alias(tenant: &str, namespace: &str, function: &str, alias: &str) -> String {
    format!("cs:fn:{tenant}:{namespace}:{function}:alias:{alias}")
}

/// `cs:fn:{t}:{ns}:{fn}:ver:{v}:meta`: `{"version","sha256","config","published_at_ms"}` (read).
pub fn version_meta(tenant: &str, namespace: &str, function: &str, version: u64) -> String {
    format!("cs:fn:{tenant}:{namespace}:{function}:ver:{version}:meta")
}

/// `cs:fn:{t}:{ns}:{fn}:ver:{v}:bundle`: tar bytes (read).
pub fn version_bundle(tenant: &str, namespace: &str, function: &str, version: u64) -> String {
    format!("cs:fn:{tenant}:{namespace}:{function}:ver:{version}:bundle")
}

/// `cs:act:{t}:{aid}:meta`: the ActivationRecord JSON, TTL = activation TTL.
pub fn activation_meta(tenant: &str, activation_id: &str) -> String {
    format!("cs:act:{tenant}:{activation_id}:meta")
}

/// `cs:act:{t}:{aid}:status`: the plain status string, the compare-and-set anchor.
pub fn activation_status(tenant: &str, activation_id: &str) -> String {
    format!("cs:act:{tenant}:{activation_id}:status")
}

/// `cs:log:{t}:{aid}:{chunk:012}`: one chunk of UTF-8 log text.
pub fn log_chunk(tenant: &str, activation_id: &str, chunk: u64) -> String {
    format!("cs:log:{tenant}:{activation_id}:{chunk:012}")
}

/// `cs:log:{t}:{aid}:chunks`: sorted set, score = member = chunk number (member in decimal,
/// unpadded: `0`, `1`, …).
pub fn log_index(tenant: &str, activation_id: &str) -> String {
    format!("cs:log:{tenant}:{activation_id}:chunks")
}

/// `cs:req:{t}:{request_id}:result`: the InvocationResult JSON, TTL = correlation TTL (600 s).
pub fn request_result(tenant: &str, request_id: &str) -> String {
    format!("cs:req:{tenant}:{request_id}:result")
}

/// `cs:kv:{t}:{key}`: a user value of `cs.kv`, JSON text.
pub fn user_kv(tenant: &str, key: &str) -> String {
    format!("cs:kv:{tenant}:{key}")
}

/// `cs:secret:{t}:{path}`: a secret's value (read), for versions whose `config.secrets` names
/// `kv:{path}`. The path is checked by [`crate::secrets::declared`] (no `:`, no `..`).
pub fn secret(tenant: &str, path: &str) -> String {
    format!("cs:secret:{tenant}:{path}")
}

/// The characters a tenant, namespace, function or alias name may hold (documented in the
/// README): ASCII letters, digits, `.`, `_` and `-`. No separator of any key or map the
/// invoker builds (`:`, `/`, whitespace, ...) can appear in a name, so two different
/// (tenant, namespace, function) triples can never spell the same KVRocks key.
pub const NAME_CHARSET: &str = "[A-Za-z0-9._-]";

/// Whether `c` is in [`NAME_CHARSET`].
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The first character of `value` outside [`NAME_CHARSET`], if any.
pub fn bad_name_char(value: &str) -> Option<char> {
    value.chars().find(|c| !is_name_char(*c))
}

/// A key component that cannot be used: which one (`tenant`, `request id`, ...) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} contains {found:?}; names are made of {NAME_CHARSET}")]
    BadChar {
        what: &'static str,
        value: String,
        found: char,
    },
}

/// A tenant must be a valid name ([`check_name`]) — the tenant is what keeps one tenant's keys
/// out of another's.
pub fn check_tenant(tenant: &str) -> Result<(), KeyError> {
    check_name("tenant", tenant)
}

/// A name component (namespace, function, alias, activation id, tenant) must be non-empty and
/// made of [`NAME_CHARSET`] only.
pub fn check_name(what: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { what });
    }
    if let Some(found) = bad_name_char(value) {
        return Err(KeyError::BadChar {
            what,
            value: value.to_string(),
            found,
        });
    }
    Ok(())
}

/// The last component of a key (user KV key, request id) may contain `:` but not be empty.
pub fn check_last(what: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_exactly_spec_4() {
        assert_eq!(alias("t1", "ns", "f", "prod"), "cs:fn:t1:ns:f:alias:prod");
        assert_eq!(
            version_meta("t1", "ns", "f", 17),
            "cs:fn:t1:ns:f:ver:17:meta"
        );
        assert_eq!(
            version_bundle("t1", "ns", "f", 17),
            "cs:fn:t1:ns:f:ver:17:bundle"
        );
        assert_eq!(activation_meta("t1", "a"), "cs:act:t1:a:meta");
        assert_eq!(activation_status("t1", "a"), "cs:act:t1:a:status");
        assert_eq!(log_chunk("t1", "a", 3), "cs:log:t1:a:000000000003");
        assert_eq!(log_index("t1", "a"), "cs:log:t1:a:chunks");
        assert_eq!(request_result("t1", "req-1"), "cs:req:t1:req-1:result");
        assert_eq!(user_kv("t1", "user:1"), "cs:kv:t1:user:1");
    }

    #[test]
    fn a_colon_in_the_tenant_is_refused() {
        assert!(check_tenant("t1").is_ok());
        assert!(check_tenant("t1:x").is_err());
        assert!(check_tenant("acme/x").is_err());
        assert!(check_name("namespace", "x prod").is_err());
        assert!(check_name("function", "pay.v2_final-1").is_ok());
        assert!(check_tenant("").is_err());
        assert!(check_last("key", "a:b").is_ok());
        // The texts StoreError::Invalid carries.
        assert_eq!(check_tenant("").unwrap_err().to_string(), "tenant is empty");
        assert_eq!(
            check_name("namespace", "a:b").unwrap_err().to_string(),
            "namespace \"a:b\" contains ':'; names are made of [A-Za-z0-9._-]"
        );
        assert!(check_last("key", "").is_err());
    }
}
