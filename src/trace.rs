//! W3C Trace Context for one activation (Sous docs 14).
//!
//! The producer of a request may put `traceparent` (and `tracestate`) in `trigger.source`. The
//! invoker's `cs.invoke` span is a child of it, or the root of a new trace when it is absent or
//! malformed (a malformed value is ignored and counted, never an error: tracing must not fail
//! an invocation). Everything the activation causes carries the `cs.invoke` span as its parent:
//! the `cs.results` and `cs.codeq.publish` CreateTasks (codeQ fields 10 and 11), the
//! `traceparent` header of every `fetch`, `ctx.traceparent` for the function; the
//! ActivationRecord keeps the `trace_id`.
//!
//! The span ids are made here, whether or not spans are exported, so propagation works with
//! export off (the default): the ids come from the same random source as the activation ids.

use std::fmt::Write as _;

/// Longest `tracestate` kept (W3C: 32 members of at most 256 bytes is far more; 512 is what the
/// specification asks every vendor to propagate at least).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// The trace context of one activation: the trace it belongs to, the incoming parent (when
/// there was one) and the id of its own `cs.invoke` span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The producer's span, when a valid `traceparent` came in.
    pub parent_span_id: Option<[u8; 8]>,
    /// The `cs.invoke` span.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// The incoming `tracestate`, passed on unchanged (empty when none).
    pub state: String,
}

/// What came in with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// No `trigger.source.traceparent`: a new trace.
    Absent,
    /// A valid one: the `cs.invoke` span is its child.
    Valid,
    /// A value that is not a W3C `traceparent`: ignored (a new trace), counted.
    Malformed,
}

impl TraceContext {
    /// The context for a request whose `trigger.source` is `source`.
    pub fn from_source(source: &serde_json::Value) -> (TraceContext, Incoming) {
        let parent = source.get("traceparent");
        let state = source
            .get("tracestate")
            .and_then(|v| v.as_str())
            .filter(|s| valid_tracestate(s))
            .unwrap_or("");
        match parent {
            None | Some(serde_json::Value::Null) => (TraceContext::new_root(), Incoming::Absent),
            Some(v) => match v.as_str().and_then(parse_traceparent) {
                Some((trace_id, parent_id, flags)) => (
                    TraceContext {
                        trace_id,
                        parent_span_id: Some(parent_id),
                        span_id: new_span_id(),
                        flags,
                        state: state.to_string(),
                    },
                    Incoming::Valid,
                ),
                None => (TraceContext::new_root(), Incoming::Malformed),
            },
        }
    }

    /// A new trace, sampled.
    pub fn new_root() -> TraceContext {
        let mut trace_id = *uuid::Uuid::new_v4().as_bytes();
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        TraceContext {
            trace_id,
            parent_span_id: None,
            span_id: new_span_id(),
            flags: 1,
            state: String::new(),
        }
    }

    /// `00-{trace_id}-{span_id}-{flags}` with the `cs.invoke` span as the parent: what
    /// everything the activation causes carries.
    pub fn traceparent(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        s.push_str(&hex::encode(self.trace_id));
        s.push('-');
        s.push_str(&hex::encode(self.span_id));
        let _ = write!(s, "-{:02x}", self.flags);
        s
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// A fresh, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    let b = uuid::Uuid::new_v4();
    let mut id = [0u8; 8];
    id.copy_from_slice(&b.as_bytes()[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// W3C Trace Context §3.2: `version-traceid-parentid-flags`, lower-case hex. Version `ff` is
/// invalid; version `00` is exactly 55 characters; a later version may append fields after a
/// `-`. All-zero trace or parent ids are invalid.
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let s = s.trim_matches(|c| c == ' ' || c == '\t');
    let b = s.as_bytes();
    if b.len() < 55 {
        return None;
    }
    let lower_hex = |x: &[u8]| {
        x.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let (ver, trace, parent, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    if !lower_hex(ver) || ver == b"ff" || !lower_hex(trace) || !lower_hex(parent) {
        return None;
    }
    if !lower_hex(flags) {
        return None;
    }
    if ver == b"00" && b.len() != 55 {
        return None;
    }
    if b.len() > 55 && b[55] != b'-' {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    let mut f = [0u8; 1];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(parent, &mut p).ok()?;
    hex::decode_to_slice(flags, &mut f).ok()?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((t, p, f[0]))
}

/// A `tracestate` passed on: at most [`MAX_TRACESTATE_BYTES`], printable ASCII (W3C §3.3), not
/// empty. Anything else is dropped, never an error.
fn valid_tracestate(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TRACESTATE_BYTES
        && s.bytes().all(|c| (0x20..=0x7e).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_becomes_the_parent() {
        let (c, how) = TraceContext::from_source(&json!({"traceparent": TP, "tracestate": "k=v"}));
        assert_eq!(how, Incoming::Valid);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            c.parent_span_id.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(c.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(c.state, "k=v");
        let tp = c.traceparent();
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(tp.ends_with("-01"));
        assert_eq!(parse_traceparent(&tp).map(|x| x.1), Some(c.span_id));
    }

    #[test]
    fn malformed_values_start_a_new_trace() {
        for bad in [
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            json!("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            json!("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            json!("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
            json!(42),
        ] {
            let (c, how) =
                TraceContext::from_source(&json!({"traceparent": bad, "tracestate": "k=v"}));
            assert_eq!(how, Incoming::Malformed, "{bad}");
            assert!(c.parent_span_id.is_none());
            assert!(c.state.is_empty());
        }
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("01-{}-extra", &TP[3..])).is_some());
        let (c, how) = TraceContext::from_source(&json!({}));
        assert_eq!(how, Incoming::Absent);
        assert!(c.sampled());
    }
}
