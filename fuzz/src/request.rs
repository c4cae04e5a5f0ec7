//! The `cs.invoke` payload decoder (`cs_invoker_pool::pipeline::request::decode`): a
//! `cs.envelope.v1` envelope, as an object or a JSON string holding one, around a `cs.invoke.v1`
//! InvocationRequest.

use cs_invoker_pool::pipeline::request;
use serde_json::Value;

/// A refusal becomes the dead-letter reason and a log line: it must stay short whatever the
/// payload holds.
const MAX_REASON_BYTES: usize = 1024;

pub fn check(data: &[u8]) {
    let (env, req) = match request::decode(data) {
        Ok(ok) => ok,
        Err(reason) => {
            let reason = reason.message();
            assert!(!reason.is_empty());
            assert!(
                reason.len() <= MAX_REASON_BYTES,
                "a {}-byte refusal: {reason:.200}",
                reason.len()
            );
            return;
        }
    };
    assert_eq!(env.tenant, req.tenant, "one tenant on both levels");
    let chars = |s: &str| s.chars().count();
    assert!((1..=128).contains(&chars(&env.id)));
    assert_eq!(req.activation_id.len(), 36, "{:?}", req.activation_id);
    assert!((8..=64).contains(&chars(&req.request_id)));
    assert!((3..=64).contains(&chars(&req.tenant)));
    assert!((1..=64).contains(&chars(&req.namespace)));
    assert!((1..=64).contains(&chars(&req.reference.function)));
    assert!(req.reference.alias.is_some() || req.reference.version.is_some());
    assert!(req.reference.version.is_none_or(|v| v >= 1));
    assert!(req
        .trigger
        .kind
        .parse::<sandbox_proto::messages::Trigger>()
        .is_ok());
    assert!(req.trigger.source.is_object());
    assert!(req.principal.roles.len() <= 256);
    assert!(req.deadline_ms >= 1);

    // The event is kept as the producer's text, which is one well-formed JSON value; and the
    // request serialises back to itself (the same event, as JSON values).
    assert!(serde_json::from_str::<Value>(req.event.get()).is_ok());
    let again = serde_json::to_value(&req).expect("a request serialises");
    assert_eq!(request::validate(&again).as_ref(), Ok(&req));

    // A producer that double-encodes the same envelope gets the same request.
    if let Ok(top @ Value::Object(_)) = serde_json::from_slice::<Value>(data) {
        let wrapped = Value::String(top.to_string()).to_string();
        let (env2, req2) = request::decode(wrapped.as_bytes()).expect("the string form decodes");
        assert_eq!(env2, env);
        assert_eq!(req2, req);
    }
}
