//! The capability checks of SPEC §6, made by the supervisor from the manifest it parsed itself.

use sandbox_child::manifest::{Capabilities, KvOp};
use sandbox_child::protocol::{HostError, HostOp, CAPABILITY_DENIED};

/// `Ok(())` when `op` is allowed by `caps` for an activation of trigger type `trigger`, else
/// the error thrown into the guest, whose message starts with `CS_RUNTIME_CAPABILITY_DENIED:`
/// and says what would be needed.
pub fn check_for(op: &HostOp, caps: &Capabilities, trigger: &str) -> Result<(), HostError> {
    match op {
        HostOp::CadenceHeartbeat if trigger == "cadence" => Ok(()),
        HostOp::CadenceHeartbeat => Err(denied(format!(
            "cs.cadence.heartbeat is only for a cadence trigger; this activation's trigger is \
             \"{}\"",
            trigger.chars().take(32).collect::<String>()
        ))),
        other => check(other, caps),
    }
}

/// `Ok(())` when `op` is allowed by `caps`, else the error thrown into the guest, whose message
/// starts with `CS_RUNTIME_CAPABILITY_DENIED:` and says what the manifest would need. A cadence
/// heartbeat depends on the trigger, not the manifest: see [`check_for`].
pub fn check(op: &HostOp, caps: &Capabilities) -> Result<(), HostError> {
    match op {
        HostOp::CadenceHeartbeat => Err(denied(
            "cs.cadence.heartbeat is only for a cadence trigger".to_string(),
        )),
        HostOp::KvGet { key } => check_kv(KvOp::Get, key, caps),
        HostOp::KvSet { key, .. } => check_kv(KvOp::Set, key, caps),
        HostOp::KvDel { key } => check_kv(KvOp::Del, key, caps),
        HostOp::CodeqPublish { topic, .. } => {
            let topics = caps
                .codeq
                .as_ref()
                .map(|c| c.publish_topics.as_slice())
                .unwrap_or(&[]);
            if topics.iter().any(|t| topic_matches(t, topic)) {
                Ok(())
            } else {
                Err(denied(format!(
                    "cs.codeq.publish to topic \"{topic}\" is not allowed; \
                     capabilities.codeq.publishTopics is [{}]",
                    quoted(topics)
                )))
            }
        }
        HostOp::HttpFetch { url, .. } => {
            let hosts = caps
                .http
                .as_ref()
                .map(|h| h.allow_hosts.as_slice())
                .unwrap_or(&[]);
            match url_host(url) {
                Some(host) if hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) => Ok(()),
                Some(host) => Err(denied(format!(
                    "cs.http.fetch to host \"{host}\" is not allowed; \
                     capabilities.http.allowHosts is [{}]",
                    quoted(hosts)
                ))),
                None => Err(denied(format!(
                    "cs.http.fetch: \"{}\" is not an absolute http(s) URL",
                    url.chars().take(200).collect::<String>()
                ))),
            }
        }
    }
}

fn check_kv(op: KvOp, key: &str, caps: &Capabilities) -> Result<(), HostError> {
    let Some(kv) = caps.kv.as_ref() else {
        return Err(denied(format!(
            "cs.kv.{} is not allowed; the manifest has no capabilities.kv",
            op.as_str()
        )));
    };
    if !kv.ops.contains(&op) {
        return Err(denied(format!(
            "cs.kv.{} is not allowed; capabilities.kv.ops is [{}]",
            op.as_str(),
            kv.ops
                .iter()
                .map(|o| format!("\"{}\"", o.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !kv.prefixes.iter().any(|p| key.starts_with(p.as_str())) {
        return Err(denied(format!(
            "cs.kv.{} on key \"{}\" is not allowed; capabilities.kv.prefixes is [{}]",
            op.as_str(),
            key.chars().take(256).collect::<String>(),
            quoted(&kv.prefixes)
        )));
    }
    Ok(())
}

/// An entry ending in `*` is a prefix; anything else must match exactly.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

/// The host of an absolute `http://` or `https://` URL, lower-cased, without port or brackets.
fn url_host(url: &str) -> Option<String> {
    let lower = url
        .get(..8)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

fn denied(msg: String) -> HostError {
    HostError {
        message: format!("{CAPABILITY_DENIED}: {msg}"),
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_child::manifest::{CodeqCapability, HttpCapability, KvCapability};

    fn caps() -> Capabilities {
        Capabilities {
            kv: Some(KvCapability {
                prefixes: vec!["user:".into()],
                ops: vec![KvOp::Get],
            }),
            codeq: Some(CodeqCapability {
                publish_topics: vec!["events.*".into(), "audit".into()],
            }),
            http: Some(HttpCapability {
                allow_hosts: vec!["API.example.com".into()],
                timeout_ms: None,
            }),
        }
    }

    fn denied_msg(r: Result<(), HostError>) -> String {
        let m = r.unwrap_err().message;
        assert!(m.starts_with("CS_RUNTIME_CAPABILITY_DENIED: "), "{m}");
        m
    }

    #[test]
    fn kv_needs_the_op_and_the_prefix() {
        let c = caps();
        assert!(check(
            &HostOp::KvGet {
                key: "user:1".into()
            },
            &c
        )
        .is_ok());
        let m = denied_msg(check(
            &HostOp::KvGet {
                key: "admin:1".into(),
            },
            &c,
        ));
        assert!(m.contains("prefixes"), "{m}");
        let m = denied_msg(check(
            &HostOp::KvSet {
                key: "user:1".into(),
                value_json: "1".into(),
                ttl_seconds: None,
            },
            &c,
        ));
        assert!(m.contains("ops"), "{m}");
        denied_msg(check(
            &HostOp::KvDel {
                key: "user:1".into(),
            },
            &Capabilities::default(),
        ));
    }

    #[test]
    fn topics_match_exactly_or_by_prefix() {
        let c = caps();
        let publish = |t: &str| {
            check(
                &HostOp::CodeqPublish {
                    topic: t.into(),
                    payload_json: "{}".into(),
                },
                &c,
            )
        };
        assert!(publish("events.created").is_ok());
        assert!(publish("audit").is_ok());
        denied_msg(publish("audit.x"));
        denied_msg(publish("cs.results"));
    }

    #[test]
    fn http_hosts_are_exact_and_case_insensitive() {
        let c = caps();
        let fetch = |u: &str| {
            check(
                &HostOp::HttpFetch {
                    url: u.into(),
                    method: "GET".into(),
                    headers: vec![],
                    body: None,
                    timeout_ms: None,
                },
                &c,
            )
        };
        assert!(fetch("https://api.EXAMPLE.com:8443/x?y").is_ok());
        denied_msg(fetch("https://api.example.com.evil.net/"));
        denied_msg(fetch("https://user@evil.net/"));
        denied_msg(fetch("file:///etc/passwd"));
    }
}
