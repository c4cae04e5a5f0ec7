//! Decoding and validating what arrives on `cs.invoke` (contract §1 step 1, §3).
//!
//! The payload is a `cs.envelope.v1` envelope (an object, or a JSON string that contains one)
//! whose `body` is a `cs.invoke.v1` InvocationRequest. Validation follows the published JSON
//! schema exactly — every field required, no extra properties — and each error names the field,
//! because the person reading the dead-letter queue has to find the producer's bug.

use crate::store::keys::{bad_name_char, NAME_CHARSET};
use sandbox_proto::messages::Trigger as TriggerType;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use crate::publish::ENVELOPE_SCHEMA;

/// The envelope fields the pipeline uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub ts_ms: u64,
    pub tenant: String,
}

/// A JSON value kept as the text it arrived as: the request's `event`, handed to the child as
/// is. Never parsed into a tree (whose maps would sort its keys — a function must see them in
/// their original order — and whose building and re-serialisation cost more than the rest of
/// the request's handling), only checked to be well-formed JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// `text` when it is one well-formed JSON value.
    pub fn from_text(text: &str) -> Result<RawJson, serde_json::Error> {
        serde_json::from_str::<&RawValue>(text).map(|r| RawJson(r.to_owned()))
    }
}

/// The same JSON value: the same text, or texts that parse to equal values (whitespace and the
/// order of object keys aside).
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
            || matches!(
                (
                    serde_json::from_str::<Value>(self.get()),
                    serde_json::from_str::<Value>(other.get()),
                ),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

/// A request that passed `cs.invoke.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRequest {
    pub activation_id: String,
    pub request_id: String,
    pub tenant: String,
    pub namespace: String,
    #[serde(rename = "ref")]
    pub reference: FunctionRef,
    pub trigger: Trigger,
    pub principal: Principal,
    pub deadline_ms: u64,
    pub event: RawJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRef {
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub sub: String,
    pub roles: Vec<String>,
}

/// The envelope as one pass of the parser sees it: its members as [`Value`]s, except `body`,
/// whose members are [`Value`]s too except `event`, which is kept as the text it was sent as
/// (checked to be well-formed JSON, never built into a tree). A JSON string (a double-encoded
/// envelope) is kept to be parsed again; anything else is not an envelope.
enum Top<'a> {
    Object {
        env: Map<String, Value>,
        body: Option<Body<'a>>,
    },
    Encoded(String),
    Other,
}

/// `envelope.body`: its members but `event`, and `event` raw; `None` fields when it was not
/// an object.
struct Body<'a> {
    fields: Option<Map<String, Value>>,
    event: Option<&'a RawValue>,
}

/// Drains whatever is left of a value the envelope does not want.
fn drain_seq<'de, A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an envelope object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Top<'de>, A::Error> {
                let mut env = Map::new();
                let mut body = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "body" {
                        body = Some(m.next_value::<Body<'de>>()?);
                    } else {
                        let v: Value = m.next_value()?;
                        env.insert(k, v);
                    }
                }
                Ok(Top::Object { env, body })
            }
            fn visit_str<E>(self, v: &str) -> Result<Top<'de>, E> {
                Ok(Top::Encoded(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
                drain_seq(seq)?;
                Ok(Top::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an InvocationRequest object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Body<'de>, A::Error> {
                let mut fields = Map::new();
                let mut event = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "event" {
                        event = Some(m.next_value::<&'de RawValue>()?);
                    } else {
                        let v: Value = m.next_value()?;
                        fields.insert(k, v);
                    }
                }
                Ok(Body {
                    fields: Some(fields),
                    event,
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Body<'de>, A::Error> {
                drain_seq(seq)?;
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_str<E>(self, _: &str) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_i64<E>(self, _: i64) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_u64<E>(self, _: u64) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
            fn visit_unit<E>(self) -> Result<Body<'de>, E> {
                Ok(Body {
                    fields: None,
                    event: None,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a payload is not a valid `cs.invoke.v1` request: the `validation failed: ...` reason,
/// naming the field (its `Display`). There is one kind of refusal — the request is
/// dead-lettered whatever the field — so the variants would only repeat the field names the
/// text already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(String);

impl InvalidRequest {
    /// The reason, naming the field (`ref.version: ...`).
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Decodes the task payload into the envelope and a validated request. `Err` is the
/// `validation failed: ...` reason.
///
/// Every field is parsed and checked as before, except the body's `event`, which is only
/// checked to be well-formed JSON and kept as its text ([`RawJson`]). One pass of the parser
/// over the payload (two for a double-encoded one).
pub fn decode(payload: &[u8]) -> Result<(Envelope, InvocationRequest), InvalidRequest> {
    decode_payload(payload).map_err(InvalidRequest)
}

// The field checks below compose the reason text with `?`; it becomes an [`InvalidRequest`]
// at the two public entry points.
fn decode_payload(payload: &[u8]) -> Result<(Envelope, InvocationRequest), String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let top: Top = serde_json::from_str(text).map_err(|e| format!("payload is not JSON: {e}"))?;
    // A JSON string that contains the envelope (some producers double-encode).
    let inner: String;
    let top = match top {
        Top::Encoded(s) => {
            inner = s;
            serde_json::from_str(&inner)
                .map_err(|e| format!("payload is a JSON string that is not JSON: {e}"))?
        }
        other => other,
    };
    let (env, body) = match top {
        Top::Object { env, body } => (env, body),
        _ => return Err("envelope: must be a JSON object".into()),
    };
    match env.get("schema") {
        Some(Value::String(s)) if s == ENVELOPE_SCHEMA => {}
        other => {
            return Err(format!(
                "envelope.schema: must be \"{ENVELOPE_SCHEMA}\", got {}",
                shown(other)
            ))
        }
    }
    match env.get("type") {
        Some(Value::String(s)) if s == "InvocationRequest" => {}
        other => {
            return Err(format!(
                "envelope.type: must be \"InvocationRequest\", got {}",
                shown(other)
            ))
        }
    }
    let id = str_field(&env, "envelope.", "id", 1, 128)?;
    let ts_ms = env.get("ts_ms").and_then(Value::as_u64).unwrap_or(0);
    let env_tenant = name_field(&env, "envelope.", "tenant", 3, 64)?;
    let body = body.ok_or_else(|| "envelope.body: missing".to_string())?;
    let fields = body
        .fields
        .ok_or_else(|| "body: must be a JSON object".to_string())?;
    let req = validate_fields(&fields, body.event)?;
    if req.tenant != env_tenant {
        return Err(format!(
            "tenant: the body's tenant \"{}\" differs from the envelope's \"{env_tenant}\"",
            req.tenant
        ));
    }
    Ok((
        Envelope {
            id,
            ts_ms,
            tenant: env_tenant,
        },
        req,
    ))
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => {
            let mut s = v.to_string();
            sandbox_proto::messages::truncate_utf8(&mut s, 80);
            s
        }
    }
}

fn allow_only(o: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            let mut k = k.clone();
            sandbox_proto::messages::truncate_utf8(&mut k, 64);
            return Err(format!("{path}{k}: unknown field"));
        }
    }
    Ok(())
}

fn str_field(
    o: &Map<String, Value>,
    path: &str,
    key: &str,
    min: usize,
    max: usize,
) -> Result<String, String> {
    match o.get(key) {
        None => Err(format!("{path}{key}: missing")),
        Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => Ok(s.clone()),
        Some(Value::String(s)) => Err(format!(
            "{path}{key}: must be {min}..={max} characters, got {}",
            s.chars().count()
        )),
        Some(other) => Err(format!(
            "{path}{key}: must be a string, got {}",
            shown(Some(other))
        )),
    }
}

/// A tenant, namespace, function or alias: a string of `min..=max` characters, all of them in
/// [`NAME_CHARSET`], so that no name can hold a separator of the keys built from it.
fn name_field(
    o: &Map<String, Value>,
    path: &str,
    key: &str,
    min: usize,
    max: usize,
) -> Result<String, String> {
    let s = str_field(o, path, key, min, max)?;
    match bad_name_char(&s) {
        None => Ok(s),
        Some(c) => Err(format!(
            "{path}{key}: must be made of {NAME_CHARSET} (letters, digits, '.', '_', '-'), \
             got {} with {c:?}",
            shown(Some(&Value::String(s.clone())))
        )),
    }
}

fn object<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a Map<String, Value>, String> {
    match o.get(key) {
        None => Err(format!("{key}: missing")),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(format!(
            "{key}: must be an object, got {}",
            shown(Some(other))
        )),
    }
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// Validates an InvocationRequest body against `cs.invoke.v1`.
pub fn validate(body: &Value) -> Result<InvocationRequest, InvalidRequest> {
    validate_body(body).map_err(InvalidRequest)
}

fn validate_body(body: &Value) -> Result<InvocationRequest, String> {
    let o = body
        .as_object()
        .ok_or_else(|| "body: must be a JSON object".to_string())?;
    let mut fields = o.clone();
    let event = fields.remove("event").map(|e| e.to_string());
    let raw = match &event {
        Some(text) => Some(serde_json::from_str::<&RawValue>(text).map_err(|e| e.to_string())?),
        None => None,
    };
    validate_fields(&fields, raw)
}

/// A raw value keeps its escapes as written and serde_json does not check `\uXXXX` pairs there,
/// so an event with an unpaired surrogate escape (`"\ud800"`) would pass as raw text although it
/// is not Unicode text (and the supervisor could not read it back). Only a text holding a
/// surrogate escape at all is parsed to find out: the common event costs one byte scan.
fn check_event_text(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    // `\uD800`..`\uDFFF`: a `d` then one of 8 9 a-f.
    let suspicious = b.windows(4).any(|w| {
        w[..2] == *b"\\u"
            && matches!(w[2], b'd' | b'D')
            && matches!(w[3], b'8' | b'9' | b'a'..=b'f' | b'A'..=b'F')
    });
    if !suspicious {
        return Ok(());
    }
    serde_json::from_str::<Value>(text)
        .map(|_| ())
        .map_err(|e| format!("event: not Unicode JSON text ({e})"))
}

/// Validates the members of a body (`event` apart, as raw JSON) against `cs.invoke.v1`.
fn validate_fields(
    o: &Map<String, Value>,
    event: Option<&RawValue>,
) -> Result<InvocationRequest, String> {
    allow_only(
        o,
        "",
        &[
            "activation_id",
            "request_id",
            "tenant",
            "namespace",
            "ref",
            "trigger",
            "principal",
            "deadline_ms",
            "event",
        ],
    )?;
    let activation_id = str_field(o, "", "activation_id", 1, 64)?;
    if !is_uuid(&activation_id) {
        return Err(format!(
            "activation_id: must be a UUID, got \"{activation_id}\""
        ));
    }
    let request_id = str_field(o, "", "request_id", 8, 64)?;
    let tenant = name_field(o, "", "tenant", 3, 64)?;
    let namespace = name_field(o, "", "namespace", 1, 64)?;

    let r = object(o, "ref")?;
    allow_only(r, "ref.", &["function", "alias", "version"])?;
    let function = name_field(r, "ref.", "function", 1, 64)?;
    let alias = match r.get("alias") {
        None => None,
        Some(_) => Some(name_field(r, "ref.", "alias", 1, 32)?),
    };
    let version = match r.get("version") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(format!(
                    "ref.version: must be an integer >= 1, got {}",
                    shown(Some(v))
                ))
            }
        },
    };
    if alias.is_none() && version.is_none() {
        return Err("ref: needs ref.alias or ref.version".into());
    }

    let t = object(o, "trigger")?;
    allow_only(t, "trigger.", &["type", "source"])?;
    let kind = match t.get("type") {
        Some(Value::String(s)) if s.parse::<TriggerType>().is_ok() => s.clone(),
        other => {
            return Err(format!(
                "trigger.type: must be one of {}, got {}",
                TriggerType::names(),
                shown(other)
            ))
        }
    };
    let source = match t.get("source") {
        Some(v @ Value::Object(_)) => v.clone(),
        other => {
            return Err(format!(
                "trigger.source: must be an object, got {}",
                shown(other)
            ))
        }
    };

    let p = object(o, "principal")?;
    allow_only(p, "principal.", &["sub", "roles"])?;
    let sub = str_field(p, "principal.", "sub", 1, 256)?;
    let roles = match p.get("roles") {
        Some(Value::Array(a)) if a.len() <= 256 => a
            .iter()
            .enumerate()
            .map(|(i, r)| match r.as_str() {
                Some(s) if (1..=256).contains(&s.chars().count()) => Ok(s.to_string()),
                _ => Err(format!(
                    "principal.roles[{i}]: must be a string of 1..=256 characters"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(a)) => {
            return Err(format!(
                "principal.roles: at most 256 roles, got {}",
                a.len()
            ))
        }
        other => {
            return Err(format!(
                "principal.roles: must be an array of strings, got {}",
                shown(other)
            ))
        }
    };

    let deadline_ms = match o.get("deadline_ms") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "deadline_ms: must be an integer >= 1, got {}",
                    shown(Some(v))
                ))
            }
        },
        None => return Err("deadline_ms: missing".into()),
    };
    let event = event.ok_or_else(|| "event: missing".to_string())?;
    check_event_text(event.get())?;
    let event = RawJson(event.to_owned());

    Ok(InvocationRequest {
        activation_id,
        request_id,
        tenant,
        namespace,
        reference: FunctionRef {
            function,
            alias,
            version,
        },
        trigger: Trigger { kind, source },
        principal: Principal { sub, roles },
        deadline_ms,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "activation_id": "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b",
            "request_id": "req_0123456789",
            "tenant": "t_abc",
            "namespace": "payments",
            "ref": {"function": "reconcile", "alias": "prod"},
            "trigger": {"type": "http", "source": {}},
            "principal": {"sub": "user:1", "roles": ["role:app"]},
            "deadline_ms": 1730000003000u64,
            "event": {"x": 1}
        })
    }

    fn envelope(body: Value) -> Vec<u8> {
        json!({"schema": "cs.envelope.v1", "id": "msg_1", "ts_ms": 5, "tenant": "t_abc",
               "type": "InvocationRequest", "body": body})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_good_request_decodes_as_object_or_string() {
        let (env, req) = decode(&envelope(good())).unwrap();
        assert_eq!(env.ts_ms, 5);
        assert_eq!(req.reference.alias.as_deref(), Some("prod"));
        let as_string = Value::String(String::from_utf8(envelope(good())).unwrap()).to_string();
        assert_eq!(decode(as_string.as_bytes()).unwrap().1, req);
    }

    #[test]
    fn each_violation_names_its_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("event");
                }),
                "event: missing",
            ),
            (
                Box::new(|v| v["activation_id"] = json!("nope")),
                "activation_id: must be a UUID",
            ),
            (
                Box::new(|v| v["request_id"] = json!("short")),
                "request_id:",
            ),
            (Box::new(|v| v["tenant"] = json!("ab")), "tenant:"),
            (
                Box::new(|v| v["namespace"] = json!("x/prod")),
                "namespace: must be made of [A-Za-z0-9._-]",
            ),
            (
                Box::new(|v| v["ref"]["function"] = json!("pay:1")),
                "ref.function: must be made of",
            ),
            (
                Box::new(|v| v["ref"]["alias"] = json!("prod live")),
                "ref.alias: must be made of",
            ),
            (
                Box::new(|v| v["trigger"]["type"] = json!("cron")),
                "trigger.type:",
            ),
            (
                Box::new(|v| {
                    v["ref"].as_object_mut().unwrap().remove("alias");
                }),
                "ref: needs",
            ),
            (Box::new(|v| v["ref"]["version"] = json!(0)), "ref.version:"),
            (Box::new(|v| v["extra"] = json!(1)), "extra: unknown field"),
            (
                Box::new(|v| v["principal"]["roles"] = json!([""])),
                "principal.roles[0]:",
            ),
            (Box::new(|v| v["deadline_ms"] = json!(0)), "deadline_ms:"),
            (
                Box::new(|v| {
                    v["trigger"].as_object_mut().unwrap().remove("source");
                }),
                "trigger.source:",
            ),
        ];
        for (mutate, want) in cases {
            let mut v = good();
            mutate(&mut v);
            let err = decode(&envelope(v)).unwrap_err();
            assert!(
                err.message().starts_with(want),
                "want {want:?}, got {err:?}"
            );
        }
    }

    #[test]
    fn the_event_is_kept_as_written() {
        let event = r#"{"z":1,"a":{"y":[{"k2":0,"k1":1}],"b":null},"m":"é\u00e9"}"#;
        let body = serde_json::to_string(&good()).unwrap();
        let body = body.replace(r#""event":{"x":1}"#, &format!(r#""event":{event}"#));
        let payload = format!(
            r#"{{"schema":"cs.envelope.v1","id":"msg_1","ts_ms":5,"tenant":"t_abc","type":"InvocationRequest","body":{body}}}"#
        );
        let (_, req) = decode(payload.as_bytes()).unwrap();
        assert_eq!(req.event.get(), event);
        // Double-encoded: the same text once the outer string is decoded.
        let as_string = Value::String(payload.clone()).to_string();
        assert_eq!(decode(as_string.as_bytes()).unwrap().1.event.get(), event);
        // An unpaired surrogate escape is not Unicode text: refused, naming the field; a pair
        // is kept as written.
        for (escaped, ok) in [
            (r#""\ud800""#, false),
            (r#"{"k\uDFFF":1}"#, false),
            (r#""\ud83d\ude00""#, true),
        ] {
            let p = payload.replace(event, escaped);
            match decode(p.as_bytes()) {
                Ok((_, r)) => assert!(ok && r.event.get() == escaped, "{escaped}"),
                Err(e) => assert!(
                    !ok && e.message().starts_with("event: not Unicode JSON text"),
                    "{escaped}: {e}"
                ),
            }
        }
        // Not JSON inside: refused, naming the field.
        let bad = r#"{"schema":"cs.envelope.v1","id":"m","tenant":"t_abc","type":"InvocationRequest","body":{"event":nope}}"#;
        assert!(decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn envelope_errors() {
        assert!(decode(b"not json")
            .unwrap_err()
            .message()
            .starts_with("payload is not JSON"));
        assert!(decode(b"[1]")
            .unwrap_err()
            .message()
            .starts_with("envelope:"));
        let mut e: Value = serde_json::from_slice(&envelope(good())).unwrap();
        e["tenant"] = json!("other");
        assert!(decode(e.to_string().as_bytes())
            .unwrap_err()
            .message()
            .starts_with("tenant:"));
    }
}
