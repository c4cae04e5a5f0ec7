//! The result shapes of SPEC §3 and the truncation rules both sides apply.
//!
//! The child builds these for `sandbox-child run`; the supervisor builds them from a child's
//! [`Outcome`](crate::protocol::Outcome) and checks again everything the child claims.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `InvocationResult` (`cs.results.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationResult {
    pub activation_id: String,
    pub request_id: String,
    /// `success`, `error` or `timeout`.
    pub status: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<HttpResult>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorBody>,
}

/// The normalised return value of a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct HttpResult {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
    #[serde(rename = "isBase64Encoded", default)]
    pub is_base64_encoded: bool,
}

impl HttpResult {
    /// SPEC §6: a status code outside 100..599 is a `ValidationError`.
    pub fn status_is_valid(&self) -> bool {
        (100..=599).contains(&self.status_code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stack: Option<String>,
}

/// The `ctx` object handed to `handle(event, ctx)` (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationCtx {
    pub activation_id: String,
    pub request_id: String,
    /// The effective deadline, Unix milliseconds.
    pub deadline_ms: u64,
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    pub version: u64,
    #[serde(rename = "ref")]
    pub reference: CtxRef,
    pub trigger: CtxTrigger,
    pub principal: CtxPrincipal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtxRef {
    pub alias: Option<String>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtxTrigger {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtxPrincipal {
    pub sub: String,
    pub roles: Vec<String>,
}

/// Cuts `s` to at most `max` bytes on a character boundary. Returns whether it cut.
pub fn truncate_utf8(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let end = floor_char_boundary(s, max);
    s.truncate(end);
    true
}

/// Makes the serialised `result` fit in `max` bytes by cutting its body (the only unbounded
/// part) to the longest prefix that fits. Returns whether it cut. When the headers alone exceed
/// `max` the body is emptied and the result is still reported as truncated.
pub fn truncate_result(result: &mut HttpResult, max: usize) -> bool {
    if serialized_len(result) <= max {
        return false;
    }
    let body = std::mem::take(&mut result.body);
    // Binary search over the prefix length: escapes make the JSON size of a prefix only
    // monotonic, not proportional.
    let (mut lo, mut hi) = (0usize, body.len());
    while lo < hi {
        let mid = floor_char_boundary(&body, lo + (hi - lo).div_ceil(2));
        if mid <= lo {
            break;
        }
        result.body.clear();
        result.body.push_str(&body[..mid]);
        if serialized_len(result) <= max {
            lo = mid;
        } else {
            hi = floor_char_boundary(&body, mid - 1);
        }
    }
    result.body.clear();
    result.body.push_str(&body[..lo]);
    true
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn serialized_len(result: &HttpResult) -> usize {
    serde_json::to_vec(result)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_utf8_keeps_char_boundaries() {
        let mut s = "aé€".to_string(); // 1 + 2 + 3 bytes
        assert!(truncate_utf8(&mut s, 4));
        assert_eq!(s, "aé");
        let mut t = "abc".to_string();
        assert!(!truncate_utf8(&mut t, 3));
    }

    #[test]
    fn truncate_result_fits_the_limit() {
        let mut r = HttpResult {
            status_code: 200,
            headers: BTreeMap::new(),
            body: "\"".repeat(10_000),
            is_base64_encoded: false,
        };
        assert!(truncate_result(&mut r, 1000));
        assert!(serde_json::to_vec(&r).unwrap().len() <= 1000);
        assert!(!r.body.is_empty());
    }
}
