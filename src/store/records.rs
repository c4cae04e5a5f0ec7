//! The JSON shapes stored in KVRocks (contract §3, §4) and the log chunking rule.
//!
//! Reads are lenient about fields they do not know (records written by other Sous components or
//! later versions still load) and strict about the ones they need: a missing or mistyped required
//! field is [`StoreError::Corrupt`](super::StoreError::Corrupt).

use sandbox_proto::messages::{ErrorBody, HttpResult, Status};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `cs:fn:{t}:{ns}:{fn}:alias:{alias}`, as the Sous control plane writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub alias: String,
    pub version: u64,
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// `cs:fn:{t}:{ns}:{fn}:ver:{v}:meta`, as the Sous control plane writes it. `config` is kept
/// as raw JSON: the invoker reads its limits from the bundle's manifest, not from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub version: u64,
    /// Lower-case hex sha256 over all the bundle's bytes.
    pub sha256: String,
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default)]
    pub published_at_ms: u64,
}

/// Most bytes (names and values) of a version's `config.env`: far more than any function
/// needs (Lambda allows 4 KiB), and small enough that the `LoadBundle` frame and each warm
/// child's binding stay cheap.
pub const MAX_ENV_BYTES: usize = 64 * 1024;

/// Why a version's `config.env` cannot be `process.env` (the version's metadata is unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("config.env must be an object of strings, got {0}")]
    NotAnObject(&'static str),
    /// The name is cut to 64 bytes.
    #[error("config.env.{name} must be a string, got {got}")]
    NotAString { name: String, got: &'static str },
    #[error("config.env holds {0} bytes, over the limit of {MAX_ENV_BYTES}")]
    TooLarge(usize),
}

impl VersionMeta {
    /// `config.env` (Sous `VersionConfig.env`, a map of strings) as `process.env` pairs: empty
    /// when absent or null; an error naming the problem when it is not an object of strings
    /// or is over [`MAX_ENV_BYTES`].
    pub fn env(&self) -> Result<Vec<(String, String)>, EnvError> {
        let env = match self.config.get("env") {
            None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
            Some(serde_json::Value::Object(m)) => m,
            Some(other) => return Err(EnvError::NotAnObject(json_kind(other))),
        };
        let mut out = Vec::with_capacity(env.len());
        let mut bytes = 0usize;
        for (k, v) in env {
            let Some(v) = v.as_str() else {
                let mut name = k.clone();
                sandbox_proto::messages::truncate_utf8(&mut name, 64);
                return Err(EnvError::NotAString {
                    name,
                    got: json_kind(v),
                });
            };
            bytes += k.len() + v.len();
            out.push((k.clone(), v.to_string()));
        }
        if bytes > MAX_ENV_BYTES {
            return Err(EnvError::TooLarge(bytes));
        }
        Ok(out)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `status` of an activation; also the plain value of `cs:act:{t}:{aid}:status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationStatus {
    Running,
    Success,
    Error,
    Timeout,
}

impl ActivationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationStatus::Running => "running",
            ActivationStatus::Success => "success",
            ActivationStatus::Error => "error",
            ActivationStatus::Timeout => "timeout",
        }
    }

    /// `success`, `error` and `timeout` are terminal.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ActivationStatus::Running)
    }

    /// The InvocationResult status of a terminal activation; `None` while `running`.
    pub fn terminal(self) -> Option<Status> {
        match self {
            ActivationStatus::Running => None,
            ActivationStatus::Success => Some(Status::Success),
            ActivationStatus::Error => Some(Status::Error),
            ActivationStatus::Timeout => Some(Status::Timeout),
        }
    }
}

/// A terminal activation's status is its result's.
impl From<Status> for ActivationStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Success => ActivationStatus::Success,
            Status::Error => ActivationStatus::Error,
            Status::Timeout => ActivationStatus::Timeout,
        }
    }
}

impl fmt::Display for ActivationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `cs:act:{t}:{aid}:status` value that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown activation status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ActivationStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        match s {
            "running" => Ok(ActivationStatus::Running),
            "success" => Ok(ActivationStatus::Success),
            "error" => Ok(ActivationStatus::Error),
            "timeout" => Ok(ActivationStatus::Timeout),
            other => Err(UnknownStatus(other.to_string())),
        }
    }
}

/// `ref` of an ActivationRecord: the request's function and alias, and the version it resolved
/// to. `version` is absent only when resolution failed (unknown alias → terminal
/// `ValidationError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRef {
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `trigger` of an ActivationRecord: the request's trigger (`type`, and `source` when given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationTrigger {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
}

/// Host calls made by the activation (`cs.kv`, `cs.codeq`, `cs.http`, `fetch`,
/// `cs.cadence`), for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCallsRecord {
    pub count: u64,
    /// Calls refused by the capability checks (included in `count`).
    #[serde(default)]
    pub denied: u64,
    /// Bytes returned to the guest.
    pub bytes_in: u64,
    /// Bytes the guest sent.
    pub bytes_out: u64,
    pub time_ms: u64,
    /// `cs.cadence.heartbeat()` calls accepted (each extended the task's codeQ lease, at most
    /// one Heartbeat per second reaching codeQ).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub heartbeats: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `cs:act:{t}:{aid}:meta` (contract §3), plus what an operator needs.
///
/// While `running`, `end_ms`, `duration_ms`, `result` and `error` are absent. A terminal
/// record carries `result` when `success` and `error` otherwise. Optional operator fields are
/// omitted when unknown (e.g. no child ran).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub activation_id: String,
    pub request_id: String,
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    #[serde(rename = "ref")]
    pub reference: ActivationRef,
    pub trigger: ActivationTrigger,
    pub status: ActivationStatus,
    pub start_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub result_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<HttpResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,

    // --- operator fields ---
    /// The bundle was compiled for this activation (stem or freshly spawned child).
    #[serde(default)]
    pub cold_start: bool,
    /// How the child was obtained: `warm`, `stem`, `spawned` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_kind: Option<String>,
    /// Time between the request's arrival and the start of execution (permits, child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// CPU time the child reported for the activation; far below `duration_ms` when the
    /// function mostly waited (timers, fetches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_calls: Option<HostCallsRecord>,
    /// The W3C trace id (32 hex digits) of the activation's `cs.invoke` span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The size of one log chunk: 64 KiB. With the 1 MiB log cap an activation has at most about
/// 16 chunks.
pub const LOG_CHUNK_BYTES: usize = 64 * 1024;

/// Cuts log lines into chunks of at most `max` bytes (`max` ≥ 4). Every line is followed by
/// `\n`; a chunk ends on a line boundary unless a single line is longer than `max`, which is then
/// cut on UTF-8 character boundaries. Concatenating the chunks gives back every line + `\n`.
pub fn chunk_logs<S: AsRef<str>>(lines: &[S], max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut chunks = Vec::new();
    let mut current = String::new();
    for line in lines {
        let line = line.as_ref();
        let need = line.len() + 1;
        if !current.is_empty() && current.len() + need > max {
            chunks.push(std::mem::take(&mut current));
        }
        if need <= max {
            current.push_str(line);
            current.push('\n');
            continue;
        }
        // A line longer than a chunk (`current` is empty here): whole chunks of it, the rest
        // carries on.
        let mut rest = line;
        while rest.len() + 1 > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            current.push_str(&rest[..cut]);
            chunks.push(std::mem::take(&mut current));
            rest = &rest[cut..];
        }
        current.push_str(rest);
        current.push('\n');
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_whole_when_they_fit() {
        let lines = ["aaaa", "bbbb", "cccc"];
        let chunks = chunk_logs(&lines, 10);
        assert_eq!(chunks, vec!["aaaa\nbbbb\n", "cccc\n"]);
    }

    #[test]
    fn a_long_line_is_cut_on_char_boundaries() {
        let long = "é".repeat(10); // 20 bytes
        let lines = vec!["x".to_string(), long.clone(), "y".to_string()];
        let chunks = chunk_logs(&lines, 7);
        for c in &chunks {
            assert!(c.len() <= 7, "{c:?}");
        }
        assert_eq!(chunks.concat(), format!("x\n{long}\ny\n"));
    }

    #[test]
    fn no_lines_no_chunks() {
        assert!(chunk_logs::<&str>(&[], 64).is_empty());
    }

    #[test]
    fn status_round_trips() {
        for s in ["running", "success", "error", "timeout"] {
            assert_eq!(s.parse::<ActivationStatus>().unwrap().as_str(), s);
        }
        assert!("done".parse::<ActivationStatus>().is_err());
        assert!(!ActivationStatus::Running.is_terminal());
        assert!(ActivationStatus::Timeout.is_terminal());
        for s in Status::ALL {
            let a = ActivationStatus::from(s);
            assert_eq!(a.as_str(), s.as_str());
            assert_eq!(a.terminal(), Some(s));
        }
        assert_eq!(ActivationStatus::Running.terminal(), None);
    }
}
