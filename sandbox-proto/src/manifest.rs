//! The function manifest, `cs.function.script.v1` (contract §5).
//!
//! Validation walks the JSON by hand rather than through serde derive so that every error names
//! the exact field (`limits.timeoutMs: must be an integer in 1..=900000, got 0`): the person
//! reading the error is a function author who needs to know which line to fix.

use crate::text::excerpt;
use serde::Serialize;
use serde_json::{Map, Value};

pub const SCHEMA: &str = "cs.function.script.v1";
pub const RUNTIME: &str = "cs-js";

/// Defaults for fields a manifest may omit.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MEMORY_MB: u64 = 64;
pub const DEFAULT_MAX_CONCURRENCY: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub entry: String,
    pub runtime_version: Option<String>,
    pub limits: Limits,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub max_concurrency: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub kv: Option<KvCapability>,
    pub codeq: Option<CodeqCapability>,
    pub http: Option<HttpCapability>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KvOp {
    Get,
    Set,
    Del,
}

impl KvOp {
    pub fn as_str(self) -> &'static str {
        match self {
            KvOp::Get => "get",
            KvOp::Set => "set",
            KvOp::Del => "del",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KvCapability {
    pub prefixes: Vec<String>,
    pub ops: Vec<KvOp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CodeqCapability {
    /// Exact topics, or prefixes when they end in `*`.
    pub publish_topics: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpCapability {
    /// Exact host names, compared case-insensitively.
    pub allow_hosts: Vec<String>,
    pub timeout_ms: Option<u64>,
}

/// Why a `manifest.json` is refused (a `ManifestError` of contract §6): the message names the
/// offending field (its `Display`). One kind of refusal, so one type holding the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(String);

impl ManifestError {
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<ManifestError> for String {
    fn from(e: ManifestError) -> String {
        e.0
    }
}

impl Manifest {
    /// The manifest a lone `.js` file runs with: timeout 3000 ms, 64 MiB, concurrency 1, no
    /// capabilities.
    pub fn default_for_script() -> Manifest {
        Manifest {
            entry: "function.js".into(),
            runtime_version: None,
            limits: Limits {
                timeout_ms: 3000,
                memory_mb: 64,
                max_concurrency: 1,
            },
            capabilities: Capabilities::default(),
        }
    }

    /// The JSON text of a manifest, as the control plane would publish it.
    pub fn to_json(&self) -> String {
        let mut caps = Map::new();
        if let Some(kv) = &self.capabilities.kv {
            caps.insert(
                "kv".into(),
                serde_json::json!({
                    "prefixes": kv.prefixes,
                    "ops": kv.ops.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                }),
            );
        }
        if let Some(c) = &self.capabilities.codeq {
            caps.insert(
                "codeq".into(),
                serde_json::json!({ "publishTopics": c.publish_topics }),
            );
        }
        if let Some(h) = &self.capabilities.http {
            let mut m = Map::new();
            m.insert("allowHosts".into(), serde_json::json!(h.allow_hosts));
            if let Some(t) = h.timeout_ms {
                m.insert("timeoutMs".into(), t.into());
            }
            caps.insert("http".into(), Value::Object(m));
        }
        let mut v = serde_json::json!({
            "schema": SCHEMA,
            "runtime": RUNTIME,
            "entry": self.entry,
            "handler": "default",
            "limits": {
                "timeoutMs": self.limits.timeout_ms,
                "memoryMb": self.limits.memory_mb,
                "maxConcurrency": self.limits.max_concurrency,
            },
            "capabilities": caps,
        });
        if let Some(rv) = &self.runtime_version {
            v["runtimeVersion"] = rv.clone().into();
        }
        v.to_string()
    }

    /// Parses and validates manifest text. The error names the offending field.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        Manifest::parse_text(text).map_err(ManifestError)
    }

    // The field checks compose the message with `?`; it becomes a [`ManifestError`] here.
    fn parse_text(text: &[u8]) -> Result<Manifest, String> {
        let v: Value = serde_json::from_slice(text)
            .map_err(|e| format!("manifest.json is not valid JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| "manifest.json: must be a JSON object".to_string())?;
        allow_only(
            obj,
            "",
            &[
                "schema",
                "runtime",
                "runtimeVersion",
                "entry",
                "handler",
                "limits",
                "capabilities",
                "imports",
            ],
        )?;

        match obj.get("schema") {
            Some(Value::String(s)) if s == SCHEMA => {}
            Some(other) => {
                return Err(format!(
                    "schema: must be \"{SCHEMA}\", got {}",
                    excerpt(other)
                ))
            }
            None => return Err(format!("schema: missing; must be \"{SCHEMA}\"")),
        }
        match obj.get("runtime") {
            None => {}
            Some(Value::String(s)) if s == RUNTIME => {}
            Some(other) => {
                return Err(format!(
                    "runtime: must be \"{RUNTIME}\" (the only runtime of this invoker), got {}",
                    excerpt(other)
                ))
            }
        }
        let runtime_version = match obj.get("runtimeVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.starts_with("cs-js") => Some(s.clone()),
            Some(other) => {
                return Err(format!(
                    "runtimeVersion: must name a cs-js version such as \"cs-js@1\", got {}",
                    excerpt(other)
                ))
            }
        };
        let entry = match obj.get("entry") {
            None => "function.js".to_string(),
            Some(Value::String(s)) if valid_entry(s) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "entry: must match ^[a-zA-Z0-9._/-]+$ and stay inside the bundle, got {}",
                    excerpt(other)
                ))
            }
        };
        match obj.get("handler") {
            None => {}
            Some(Value::String(s)) if s == "default" => {}
            Some(other) => {
                return Err(format!(
                    "handler: must be \"default\" (the module's default export), got {}",
                    excerpt(other)
                ))
            }
        }
        if obj.contains_key("imports") {
            return Err(
                "imports: import maps are not supported by this invoker yet; \
                        bundle dependencies as files and import them with relative paths"
                    .into(),
            );
        }
        let limits = parse_limits(obj.get("limits"))?;
        let capabilities = parse_capabilities(obj.get("capabilities"))?;
        Ok(Manifest {
            entry,
            runtime_version,
            limits,
            capabilities,
        })
    }
}

fn valid_entry(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
        && !s.starts_with('/')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn allow_only(obj: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "{path}{}: unknown field; allowed here: {}",
                excerpt(key),
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: must be an object, got {}", excerpt(v)))
}

fn int_in(v: Option<&Value>, path: &str, lo: u64, hi: u64, default: u64) -> Result<u64, String> {
    match v {
        None => Ok(default),
        Some(x) => match x.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "{path}: must be an integer in {lo}..={hi}, got {}",
                excerpt(x)
            )),
        },
    }
}

fn string_list(
    v: Option<&Value>,
    path: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Vec<String>, String> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{path}: must be an array of strings, got {}", excerpt(v)))?;
    if arr.len() > max_items {
        return Err(format!(
            "{path}: at most {max_items} entries allowed, got {}",
            arr.len()
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, item)| match item.as_str() {
            Some(s) if !s.is_empty() && s.len() <= max_len => Ok(s.to_string()),
            _ => Err(format!(
                "{path}[{i}]: must be a string of 1..={max_len} bytes, got {}",
                excerpt(item)
            )),
        })
        .collect()
}

fn parse_limits(v: Option<&Value>) -> Result<Limits, String> {
    let Some(v) = v else {
        return Ok(Limits {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mb: DEFAULT_MEMORY_MB,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        });
    };
    let o = object(v, "limits")?;
    allow_only(o, "limits.", &["timeoutMs", "memoryMb", "maxConcurrency"])?;
    Ok(Limits {
        timeout_ms: int_in(
            o.get("timeoutMs"),
            "limits.timeoutMs",
            1,
            900_000,
            DEFAULT_TIMEOUT_MS,
        )?,
        memory_mb: int_in(
            o.get("memoryMb"),
            "limits.memoryMb",
            16,
            4096,
            DEFAULT_MEMORY_MB,
        )?,
        max_concurrency: int_in(
            o.get("maxConcurrency"),
            "limits.maxConcurrency",
            1,
            100,
            DEFAULT_MAX_CONCURRENCY as u64,
        )? as u32,
    })
}

fn parse_capabilities(v: Option<&Value>) -> Result<Capabilities, String> {
    let Some(v) = v else {
        return Ok(Capabilities::default());
    };
    let o = object(v, "capabilities")?;
    allow_only(o, "capabilities.", &["kv", "codeq", "http"])?;
    let kv = match o.get("kv") {
        None => None,
        Some(v) => {
            let k = object(v, "capabilities.kv")?;
            allow_only(k, "capabilities.kv.", &["prefixes", "ops"])?;
            let prefixes = string_list(k.get("prefixes"), "capabilities.kv.prefixes", 64, 256)?;
            let mut ops = Vec::new();
            for (i, op) in string_list(k.get("ops"), "capabilities.kv.ops", 3, 3)?
                .iter()
                .enumerate()
            {
                let op = match op.as_str() {
                    "get" => KvOp::Get,
                    "set" => KvOp::Set,
                    "del" => KvOp::Del,
                    other => {
                        return Err(format!(
                            "capabilities.kv.ops[{i}]: must be one of get, set, del, got \"{}\"",
                            excerpt(&other)
                        ))
                    }
                };
                if !ops.contains(&op) {
                    ops.push(op);
                }
            }
            Some(KvCapability { prefixes, ops })
        }
    };
    let codeq = match o.get("codeq") {
        None => None,
        Some(v) => {
            let c = object(v, "capabilities.codeq")?;
            allow_only(c, "capabilities.codeq.", &["publishTopics"])?;
            Some(CodeqCapability {
                publish_topics: string_list(
                    c.get("publishTopics"),
                    "capabilities.codeq.publishTopics",
                    64,
                    256,
                )?,
            })
        }
    };
    let http = match o.get("http") {
        None => None,
        Some(v) => {
            let h = object(v, "capabilities.http")?;
            allow_only(h, "capabilities.http.", &["allowHosts", "timeoutMs"])?;
            let timeout_ms = match h.get("timeoutMs") {
                None => None,
                some => Some(int_in(some, "capabilities.http.timeoutMs", 1, 30_000, 0)?),
            };
            Some(HttpCapability {
                allow_hosts: string_list(
                    h.get("allowHosts"),
                    "capabilities.http.allowHosts",
                    128,
                    253,
                )?,
                timeout_ms,
            })
        }
    };
    Ok(Capabilities { kv, codeq, http })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Manifest, String> {
        Manifest::parse(s.as_bytes()).map_err(String::from)
    }

    #[test]
    fn full_manifest_parses() {
        let m = parse(
            r#"{"schema":"cs.function.script.v1","runtime":"cs-js","runtimeVersion":"cs-js@1",
            "entry":"function.js","handler":"default",
            "limits":{"timeoutMs":3000,"memoryMb":64,"maxConcurrency":2},
            "capabilities":{"kv":{"prefixes":["ctr:"],"ops":["get","set"]},
            "codeq":{"publishTopics":["jobs.*"]},
            "http":{"allowHosts":["api.example.com"],"timeoutMs":1500}}}"#,
        )
        .unwrap();
        assert_eq!(m.limits.max_concurrency, 2);
        assert_eq!(m.capabilities.kv.unwrap().ops, vec![KvOp::Get, KvOp::Set]);
        assert_eq!(m.capabilities.http.unwrap().timeout_ms, Some(1500));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"schema":"x"}"#, "schema:"),
            (
                r#"{"schema":"cs.function.script.v1","extra":1}"#,
                "extra: unknown field",
            ),
            (
                r#"{"schema":"cs.function.script.v1","limits":{"timeoutMs":0}}"#,
                "limits.timeoutMs:",
            ),
            (
                r#"{"schema":"cs.function.script.v1","limits":{"memoryMb":8}}"#,
                "limits.memoryMb:",
            ),
            (
                r#"{"schema":"cs.function.script.v1","limits":{"cpu":1}}"#,
                "limits.cpu: unknown field",
            ),
            (
                r#"{"schema":"cs.function.script.v1","capabilities":{"kv":{"ops":["put"]}}}"#,
                "capabilities.kv.ops[0]:",
            ),
            (
                r#"{"schema":"cs.function.script.v1","entry":"../x.js"}"#,
                "entry:",
            ),
            (
                r#"{"schema":"cs.function.script.v1","runtime":"node"}"#,
                "runtime:",
            ),
            (
                r#"{"schema":"cs.function.script.v1","handler":"main"}"#,
                "handler:",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    /// Found by the `manifest` fuzz target: an error quoted the bad value whole, so a manifest
    /// with a megabyte-long field made a megabyte-long error (it ends up in the record and logs).
    #[test]
    fn a_huge_bad_value_is_quoted_in_part_with_its_length() {
        let huge = "x".repeat(1 << 20);
        for text in [
            format!(r#"{{"schema":"{huge}"}}"#),
            format!(r#"{{"schema":"cs.function.script.v1","entry":{{"a":"{huge}"}}}}"#),
            format!(r#"{{"schema":"cs.function.script.v1","{huge}":1}}"#),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..200]);
            assert!(err.contains("bytes)"), "{err}");
        }
        let err = parse(&format!(r#"{{"schema":"{huge}"}}"#)).unwrap_err();
        assert!(err.starts_with("schema: must be"), "{err}");
    }

    /// Found by the `manifest` fuzz target: `to_json` dropped `runtimeVersion`, so the text it
    /// gave read back as another manifest.
    #[test]
    fn every_field_survives_to_json() {
        let m = parse(
            r#"{"schema":"cs.function.script.v1","runtimeVersion":"cs-js@1","entry":"src/m.js",
            "limits":{"timeoutMs":10,"memoryMb":16,"maxConcurrency":100},
            "capabilities":{"kv":{"prefixes":[],"ops":["del"]},"codeq":{"publishTopics":["a"]},
            "http":{"allowHosts":["h"]}}}"#,
        )
        .unwrap();
        assert_eq!(m.runtime_version.as_deref(), Some("cs-js@1"));
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
    }

    #[test]
    fn default_manifest_round_trips() {
        let m = Manifest::default_for_script();
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
    }
}
