//! The capability checks of contract §6, made by the supervisor from the manifest it parsed itself.

use super::{http, HostPolicy, RESERVED_TOPIC_PREFIX};
use sandbox_proto::manifest::{Capabilities, KvOp};
use sandbox_proto::protocol::{HostError, HostOp};

/// `Ok(())` when `op` is allowed by `caps` and the platform's `policy` for an activation of
/// trigger type `trigger`, else the error thrown into the guest, whose message starts with
/// `CS_RUNTIME_CAPABILITY_DENIED:` and says what would be needed.
pub fn check_for(
    op: &HostOp,
    caps: &Capabilities,
    policy: &HostPolicy,
    trigger: &str,
) -> Result<(), HostError> {
    match op {
        HostOp::CadenceHeartbeat if trigger == "cadence" => Ok(()),
        HostOp::CadenceHeartbeat => Err(denied(format!(
            "cs.cadence.heartbeat is only for a cadence trigger; this activation's trigger is \
             \"{}\"",
            trigger.chars().take(32).collect::<String>()
        ))),
        other => check(other, caps, policy),
    }
}

/// `Ok(())` when `op` is allowed by `caps` and by the platform's `policy`, else the error
/// thrown into the guest, whose message starts with `CS_RUNTIME_CAPABILITY_DENIED:` and says
/// what the manifest would need. A cadence heartbeat depends on the trigger, not the manifest:
/// see [`check_for`].
pub fn check(op: &HostOp, caps: &Capabilities, policy: &HostPolicy) -> Result<(), HostError> {
    match op {
        HostOp::CadenceHeartbeat => Err(denied(
            "cs.cadence.heartbeat is only for a cadence trigger".to_string(),
        )),
        HostOp::KvGet { key } => check_kv(KvOp::Get, key, caps),
        // Checked by the host against the activation's declared secrets
        // ([`crate::secrets::Secrets::get`]): the names are the version meta's, not the
        // manifest's.
        HostOp::SecretGet { .. } => Ok(()),
        HostOp::KvSet { key, .. } => check_kv(KvOp::Set, key, caps),
        HostOp::KvDel { key } => check_kv(KvOp::Del, key, caps),
        HostOp::CodeqPublish { topic, .. } => {
            if policy.is_reserved(topic) {
                return Err(denied(format!(
                    "cs.codeq.publish to topic \"{}\" is not allowed: topics starting with \
                     \"{RESERVED_TOPIC_PREFIX}\" and the platform's own topics are reserved, \
                     whatever capabilities.codeq.publishTopics says",
                    topic.chars().take(200).collect::<String>()
                )));
            }
            let topics = caps
                .codeq
                .as_ref()
                .map(|c| c.publish_topics.as_slice())
                .unwrap_or(&[]);
            if topics.iter().any(|t| topic_matches(t, topic)) {
                Ok(())
            } else {
                Err(denied(format!(
                    "cs.codeq.publish to topic \"{}\" is not allowed; \
                     capabilities.codeq.publishTopics is [{}]",
                    topic.chars().take(200).collect::<String>(),
                    quoted(topics)
                )))
            }
        }
        // One URL parser for the check and the fetch: the fetcher's own.
        HostOp::HttpFetch { url, .. } => http::check_capability(url, caps.http.as_ref()),
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

fn denied(msg: String) -> HostError {
    HostError::denied(msg)
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
    use sandbox_proto::manifest::{CodeqCapability, HttpCapability, KvCapability};

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

    fn check(op: &HostOp, caps: &Capabilities) -> Result<(), HostError> {
        super::check(op, caps, &HostPolicy::default())
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
    fn the_platforms_topics_are_reserved_even_for_a_wildcard() {
        let mut c = caps();
        c.codeq = Some(CodeqCapability {
            publish_topics: vec!["*".into(), "cs.*".into()],
        });
        let policy = HostPolicy {
            reserved_topics: vec!["invocations".into()],
            ..HostPolicy::default()
        };
        let publish = |t: &str| {
            super::check(
                &HostOp::CodeqPublish {
                    topic: t.into(),
                    payload_json: "{}".into(),
                },
                &c,
                &policy,
            )
        };
        for reserved in [
            "cs.invoke",
            "cs.results",
            "cs.dlq.invoke",
            "cs.anything",
            "invocations",
        ] {
            let m = denied_msg(publish(reserved));
            assert!(m.contains("reserved"), "{m}");
        }
        assert!(publish("events.created").is_ok());
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
        // WHATWG: `\` is `/` in an http URL, so the host is "api.example.com"... for the
        // check and for the fetch alike.
        assert!(fetch("http://api.example.com\\@evil.net/").is_ok());
        denied_msg(fetch("http://evil.net\\@api.example.com/"));
    }
}
