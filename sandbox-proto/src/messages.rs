//! The result shapes of contract §3 and the truncation rules both sides apply.
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
    pub status: Status,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<HttpResult>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorBody>,
}

/// `status` of an InvocationResult (contract §3): only a real deadline is a `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
    Timeout,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Success, Status::Error, Status::Timeout];

    /// The name on the wire, in the stored records and in the `status` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }

    /// The status an error of type `kind` gives: `timeout` for [`ErrorType::Timeout`] only.
    pub fn of_error(kind: ErrorType) -> Status {
        if kind == ErrorType::Timeout {
            Status::Timeout
        } else {
            Status::Error
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `error.type` (contract §6): the five a child can report itself
/// ([`ErrorKind`](crate::protocol::ErrorKind)) and the two only the supervisor decides (the
/// bundle and the manifest it could not load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorType {
    Exception,
    ValidationError,
    Timeout,
    MemoryLimit,
    SandboxError,
    BundleError,
    ManifestError,
}

impl ErrorType {
    pub const ALL: [ErrorType; 7] = [
        ErrorType::Exception,
        ErrorType::ValidationError,
        ErrorType::Timeout,
        ErrorType::MemoryLimit,
        ErrorType::SandboxError,
        ErrorType::BundleError,
        ErrorType::ManifestError,
    ];

    /// The name on the wire and in the stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Exception => "Exception",
            ErrorType::ValidationError => "ValidationError",
            ErrorType::Timeout => "Timeout",
            ErrorType::MemoryLimit => "MemoryLimit",
            ErrorType::SandboxError => "SandboxError",
            ErrorType::BundleError => "BundleError",
            ErrorType::ManifestError => "ManifestError",
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// contract §6: a status code outside 100..599 is a `ValidationError`.
    pub fn status_is_valid(&self) -> bool {
        (100..=599).contains(&self.status_code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stack: Option<String>,
}

/// The `ctx` object handed to `handle(event, ctx)` (contract §6).
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
    /// W3C `traceparent` of the activation's `cs.invoke` span, for the function to pass on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtxRef {
    pub alias: Option<String>,
    pub version: u64,
}

/// What a function can be invoked by: `trigger.type` of an InvocationRequest, `ctx.trigger.type`
/// of the function (contract §3). The one list: the request validation, `cs-invoker-pool run
/// --trigger` and `sandbox-child run --trigger` all take it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Http,
    Schedule,
    Cadence,
    Api,
}

impl Trigger {
    pub const ALL: [Trigger; 4] = [
        Trigger::Http,
        Trigger::Schedule,
        Trigger::Cadence,
        Trigger::Api,
    ];

    /// The name on the wire and in `ctx.trigger.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Schedule => "schedule",
            Trigger::Cadence => "cadence",
            Trigger::Api => "api",
        }
    }

    /// Every name, comma-separated, for error messages: `http, schedule, cadence, api`.
    pub fn names() -> String {
        Self::ALL.map(Trigger::as_str).join(", ")
    }
}

impl std::str::FromStr for Trigger {
    type Err = ();
    /// Exactly one of the names (case matters, as on the wire).
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
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

/// Makes the serialised `result` — status, headers and body, all of it — fit in `max` bytes.
/// The body is cut first, to the longest prefix that fits; when the headers alone do not fit,
/// the largest headers are dropped (then the body is cut to what is left). Returns whether
/// anything was cut.
pub fn truncate_result(result: &mut HttpResult, max: usize) -> bool {
    if serialized_len(result) <= max {
        return false;
    }
    let body = std::mem::take(&mut result.body);
    if serialized_len(result) > max {
        // Largest first: one huge header should not cost every small one.
        let mut by_size: Vec<(usize, String)> = result
            .headers
            .iter()
            .map(|(k, v)| (k.len() + v.len(), k.clone()))
            .collect();
        by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (_, k) in by_size {
            result.headers.remove(&k);
            if serialized_len(result) <= max {
                break;
            }
        }
    }
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

/// One log call is one record, one line: a line break inside the text is written as the two
/// characters `\n` (`\r` for a carriage return), so no text can forge a `[level]` line of its
/// own in the stored log. Applied by the child and again by the supervisor, which trusts no
/// child.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace('\n', "\\n").replace('\r', "\\r"))
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
    fn triggers_are_named_as_on_the_wire() {
        assert_eq!(Trigger::names(), "http, schedule, cadence, api");
        for t in Trigger::ALL {
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(t));
        }
        assert!("Http".parse::<Trigger>().is_err());
        assert!("cron".parse::<Trigger>().is_err());
    }

    #[test]
    fn statuses_and_error_types_are_named_as_on_the_wire() {
        for s in Status::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(
            Status::ALL.map(Status::as_str),
            ["success", "error", "timeout"]
        );
        for t in ErrorType::ALL {
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(Status::of_error(ErrorType::Timeout), Status::Timeout);
        assert_eq!(Status::of_error(ErrorType::MemoryLimit), Status::Error);
        // A record or result as the contract writes it parses, and serialises back unchanged.
        let text = r#"{"activation_id":"a","request_id":"r","status":"error","duration_ms":3,"error":{"type":"ManifestError","message":"m"}}"#;
        let r: InvocationResult = serde_json::from_str(text).unwrap();
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.error.as_ref().unwrap().kind, ErrorType::ManifestError);
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
        assert!(serde_json::from_str::<Status>("\"Success\"").is_err());
        assert!(serde_json::from_str::<ErrorType>("\"exception\"").is_err());
    }

    #[test]
    fn truncate_utf8_keeps_char_boundaries() {
        let mut s = "aé€".to_string(); // 1 + 2 + 3 bytes
        assert!(truncate_utf8(&mut s, 4));
        assert_eq!(s, "aé");
        let mut t = "abc".to_string();
        assert!(!truncate_utf8(&mut t, 3));
    }

    #[test]
    fn headers_count_in_the_result_limit() {
        let mut headers = BTreeMap::new();
        for i in 0..5 {
            headers.insert(format!("x-big-{i}"), "h".repeat(100_000));
        }
        headers.insert("content-type".into(), "text/plain".into());
        let mut r = HttpResult {
            status_code: 200,
            headers,
            body: "b".repeat(1000),
            is_base64_encoded: false,
        };
        assert!(truncate_result(&mut r, 256 * 1024));
        assert!(serde_json::to_vec(&r).unwrap().len() <= 256 * 1024);
        // The small header stays; two of the big ones fit and are kept.
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(r.headers.len(), 3);
    }

    #[test]
    fn a_log_record_is_one_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(
            one_line("first\n[error] forged\r\n"),
            "first\\n[error] forged\\r\\n"
        );
        assert!(!one_line("a\nb").contains('\n'));
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
