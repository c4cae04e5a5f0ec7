//! Writes the committed seed corpora, `fuzz/corpus/<target>/`, from real inputs: the
//! `examples/hello` bundle, the manifests and bundles the tests build, a valid `cs.invoke`
//! envelope, `packaging/config.yaml`, and each message of the pipe protocol as the supervisor
//! and the child really send it. Run from the repository root (`make fuzz-seeds`):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Every file is named by a digest of its content, as libFuzzer names what it adds, so
//! regenerating is idempotent.

use sandbox_proto::bundle::{self, Bundle};
use sandbox_proto::manifest::Manifest;
use sandbox_proto::messages::{CtxPrincipal, CtxRef, CtxTrigger, HttpResult, InvocationCtx};
use sandbox_proto::protocol::*;
use sandbox_proto::settings::ConfineSettings;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("fuzz/corpus");
    let hello = bundle::load_path(&root.join("examples/hello")).expect("examples/hello loads");
    let config = std::fs::read(root.join("packaging/config.yaml")).expect("packaging/config.yaml");

    write(&out, "frame_to_child", &to_child_seeds(&hello));
    write(&out, "frame_from_child", &from_child_seeds());
    write(&out, "bundle_tar", &bundle_seeds(&hello));
    write(&out, "manifest", &manifest_seeds(&hello));
    write(&out, "invoke_request", &request_seeds());
    write(&out, "config_yaml", &config_seeds(&config));
}

fn write(out: &Path, target: &str, seeds: &[Vec<u8>]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for s in seeds {
        let name = bundle::sha256_hex(s)[..40].to_string();
        std::fs::write(dir.join(name), s).expect("seed written");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn frame<T: Frame>(m: &T) -> Vec<u8> {
    encode(m).expect("a seed message encodes")
}

fn ctx() -> String {
    serde_json::to_string(&InvocationCtx {
        activation_id: "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b".into(),
        request_id: "req_0123456789".into(),
        deadline_ms: 1_730_000_003_000,
        tenant: "t_abc".into(),
        namespace: "payments".into(),
        function: "hello".into(),
        version: 3,
        reference: CtxRef {
            alias: Some("prod".into()),
            version: 3,
        },
        trigger: CtxTrigger {
            kind: "http".into(),
        },
        principal: CtxPrincipal {
            sub: "user:1".into(),
            roles: vec!["role:app".into()],
        },
        traceparent: None,
    })
    .expect("ctx serialises")
}

/// What the supervisor sends a child, one message per seed, then the whole conversation.
fn to_child_seeds(hello: &Bundle) -> Vec<Vec<u8>> {
    let init = ToChild::Init(Init {
        protocol_version: PROTOCOL_VERSION,
        child_id: 1,
        confine: Some(ConfineSettings::new(65534, 65534)),
    });
    let load = ToChild::LoadBundle(LoadBundle {
        sha256: hello.sha256.clone(),
        entry: hello.entry().to_string(),
        files: hello.files.clone(),
        memory_limit_bytes: hello.memory_mb() << 20,
        limits: OutputLimits::default(),
        env: vec![("API_URL".into(), "https://api.example.com".into())],
        bytecode: None,
        want_bytecode: true,
    });
    let invoke = ToChild::Invoke(Invoke {
        invocation_id: 1,
        event_json: r#"{"name":"Sous"}"#.into(),
        ctx_json: ctx(),
        budget_us: 2_900_000,
    });
    let replies = [
        Ok(HostValue::Kv(Some("41".into()))),
        Ok(HostValue::Kv(None)),
        Ok(HostValue::Done),
        Ok(HostValue::Http {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"ok":true}"#.to_vec(),
        }),
        Err(HostError::denied("kv.set on \"other:1\"")),
    ]
    .map(|result| ToChild::HostReply(HostReply { id: 1, result }));
    let unconfined = ToChild::Init(Init {
        protocol_version: PROTOCOL_VERSION,
        child_id: 2,
        confine: None,
    });

    let mut seeds: Vec<Vec<u8>> = [&init, &unconfined, &load, &invoke]
        .into_iter()
        .chain(replies.iter())
        .map(frame)
        .collect();
    let conversation: Vec<u8> = [&init, &load, &invoke, &replies[0], &replies[2]]
        .into_iter()
        .flat_map(frame)
        .collect();
    seeds.push(conversation);
    seeds
}

/// What a child sends the supervisor, one message per seed, then a whole invocation.
fn from_child_seeds() -> Vec<Vec<u8>> {
    let ready = FromChild::Ready(Ready {
        protocol_version: PROTOCOL_VERSION,
        pid: 4242,
    });
    let loaded = FromChild::Loaded(Ok(Loaded {
        load_us: 812,
        from_bytecode: false,
        bytecode: Some(b"CSQJSBC\0".to_vec()),
        bytecode_rejected: None,
    }));
    let load_failed = FromChild::Loaded(Err(GuestError {
        kind: ErrorKind::Exception,
        message: "SyntaxError: unexpected token in expression: ')'".into(),
        stack: Some("    at function.js:3:14\n".into()),
    }));
    let ops = [
        HostOp::KvGet {
            key: "greetings:sous".into(),
        },
        HostOp::KvSet {
            key: "greetings:sous".into(),
            value_json: "42".into(),
            ttl_seconds: Some(3600),
        },
        HostOp::KvDel {
            key: "greetings:sous".into(),
        },
        HostOp::CodeqPublish {
            topic: "greetings.sent".into(),
            payload_json: r#"{"name":"Sous","greetings":42}"#.into(),
        },
        HostOp::HttpFetch {
            url: "https://api.example.com/v1/items?limit=2".into(),
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(br#"{"q":1}"#.to_vec()),
            timeout_ms: Some(1500),
        },
        HostOp::CadenceHeartbeat,
    ];
    let mut calls: Vec<FromChild> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| FromChild::HostCall(HostCall { id: i as u64, op }))
        .collect();
    calls.push(FromChild::HostCancel(HostCancel { id: 4 }));
    let log = FromChild::Log(LogLine {
        level: LogLevel::Info,
        line: "[info] greeting Sous (#42) for tenant t_abc".into(),
    });
    let done = FromChild::Outcome(Outcome {
        invocation_id: 1,
        result: Ok(HttpResult {
            status_code: 200,
            headers: [("content-type".to_string(), "application/json".to_string())].into(),
            body: r#"{"message":"Hello, Sous!"}"#.into(),
            is_base64_encoded: false,
        }),
        result_truncated: false,
        logs_truncated: false,
        memory_peak_bytes: 1 << 20,
        exec_us: 950,
        cpu_us: 900,
    });
    let failed = FromChild::Outcome(Outcome {
        invocation_id: 2,
        result: Err(GuestError {
            kind: ErrorKind::MemoryLimit,
            message: "out of memory".into(),
            stack: None,
        }),
        result_truncated: false,
        logs_truncated: true,
        memory_peak_bytes: 64 << 20,
        exec_us: 120_000,
        cpu_us: 119_000,
    });
    let fatal = FromChild::Fatal(Fatal {
        step: "seccomp".into(),
        message: "cannot load the filter: Invalid argument".into(),
    });

    let mut seeds: Vec<Vec<u8>> = [&ready, &loaded, &load_failed, &log, &done, &failed, &fatal]
        .into_iter()
        .chain(calls.iter())
        .map(frame)
        .collect();
    let invocation: Vec<u8> = [
        &ready, &loaded, &log, &calls[0], &calls[1], &calls[3], &done,
    ]
    .into_iter()
    .flat_map(frame)
    .collect();
    seeds.push(invocation);
    seeds
}

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(n, c)| (n.to_string(), c.as_bytes().to_vec()))
        .collect()
}

/// examples/hello as the control plane packs it, a multi-module bundle like the tests', the
/// lone-script form `run` packs, and GNU and PAX variants with a long name (other packers).
fn bundle_seeds(hello: &Bundle) -> Vec<Vec<u8>> {
    let hello_files: BTreeMap<String, Vec<u8>> = hello
        .files
        .iter()
        .map(|f| (f.path.clone(), f.contents.clone()))
        .collect();
    let entry_manifest = json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "src/main.js",
        "handler": "default", "limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 1}
    })
    .to_string();
    let multi = files(&[
        (
            "src/main.js",
            "import { v } from './v.js'; export default () => ({ body: v });",
        ),
        ("src/v.js", "export const v = 'from-entry';"),
        (
            "function.js",
            "export default () => ({ body: 'wrong-module' });",
        ),
        ("manifest.json", &entry_manifest),
    ]);
    let script = files(&[
        ("manifest.json", &Manifest::default_for_script().to_json()),
        (
            "function.js",
            "export default (event) => ({ body: event });",
        ),
    ]);
    let mut seeds = vec![
        bundle::pack(&hello_files).expect("hello packs"),
        bundle::pack(&multi).expect("multi packs"),
        bundle::pack(&script).expect("script packs"),
    ];

    let long = format!("lib/{}/deep.js", "nested".repeat(20));
    let long_manifest = json!({"schema": "cs.function.script.v1", "entry": long}).to_string();
    let long_files = [
        ("manifest.json", long_manifest.as_bytes()),
        (long.as_str(), b"export default () => 1" as &[u8]),
    ];
    // GNU: the long name travels in a ././@LongLink entry.
    let mut gnu = tar::Builder::new(Vec::new());
    for (name, data) in long_files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        gnu.append_data(&mut h, name, data).expect("gnu entry");
    }
    seeds.push(gnu.into_inner().expect("gnu tar"));
    // PAX: the long name travels in an extended header (what GNU tar --format=posix writes).
    let mut pax = tar::Builder::new(Vec::new());
    for (name, data) in long_files {
        pax.append_pax_extensions([("path", name.as_bytes()), ("mtime", b"0".as_slice())])
            .expect("pax header");
        let mut h = tar::Header::new_ustar();
        h.set_path("x.js").expect("short name");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        pax.append(&h, data).expect("pax entry");
    }
    seeds.push(pax.into_inner().expect("pax tar"));
    seeds
}

/// The manifests of examples/hello, of the tests (`tests/pipeline.rs`, `tests/cli_bundles.rs`,
/// the full one of the manifest unit tests) and of a lone script.
fn manifest_seeds(hello: &Bundle) -> Vec<Vec<u8>> {
    let hello_manifest = hello
        .files
        .iter()
        .find(|f| f.path == "manifest.json")
        .expect("hello has a manifest")
        .contents
        .clone();
    let tests: [Value; 3] = [
        json!({
            "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
            "handler": "default",
            "limits": {"timeoutMs": 5000, "memoryMb": 64, "maxConcurrency": 2},
            "capabilities": {"kv": {"prefixes": ["runs:", "data:"], "ops": ["get", "set", "del"]},
                             "codeq": {"publishTopics": ["orders.*"]}},
        }),
        json!({
            "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "src/main.js",
            "handler": "default", "limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 1}
        }),
        json!({
            "schema": "cs.function.script.v1", "runtime": "cs-js", "runtimeVersion": "cs-js@1",
            "entry": "function.js", "handler": "default",
            "limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 2},
            "capabilities": {"kv": {"prefixes": ["ctr:"], "ops": ["get", "set"]},
                             "codeq": {"publishTopics": ["jobs.*"]},
                             "http": {"allowHosts": ["api.example.com"], "timeoutMs": 1500}}
        }),
    ];
    let mut seeds = vec![
        hello_manifest,
        Manifest::default_for_script().to_json().into_bytes(),
    ];
    seeds.extend(
        tests
            .iter()
            .map(|v| serde_json::to_vec_pretty(v).expect("json")),
    );
    seeds
}

fn request(reference: Value, trigger: &str) -> Value {
    json!({
        "activation_id": "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b",
        "request_id": "req-6f1c2b3a",
        "tenant": "t_abc",
        "namespace": "payments",
        "ref": reference,
        "trigger": {"type": trigger, "source": {"path": "/reconcile"}},
        "principal": {"sub": "user-1", "roles": ["admin"]},
        "deadline_ms": 1_730_000_003_000u64,
        "event": {"order": 17, "items": [{"sku": "a-1", "qty": 2}], "note": null},
    })
}

fn envelope(body: Value) -> Value {
    json!({
        "schema": "cs.envelope.v1", "id": "msg_5b1f0e2c", "ts_ms": 1_730_000_000_000u64,
        "tenant": "t_abc", "type": "InvocationRequest", "body": body,
    })
}

/// Valid `cs.invoke` payloads as the tests' producers send them: by alias, by version, both,
/// each trigger type, and the double-encoded (JSON string) form.
fn request_seeds() -> Vec<Vec<u8>> {
    let by_alias = envelope(request(
        json!({"function": "reconcile", "alias": "prod"}),
        "http",
    ));
    let mut seeds = vec![
        by_alias.to_string().into_bytes(),
        Value::String(by_alias.to_string()).to_string().into_bytes(),
        envelope(request(
            json!({"function": "reconcile", "version": 3}),
            "api",
        ))
        .to_string()
        .into_bytes(),
        envelope(request(
            json!({"function": "reconcile", "alias": "prod", "version": 7}),
            "schedule",
        ))
        .to_string()
        .into_bytes(),
    ];
    seeds.push(
        serde_json::to_vec_pretty(&envelope(request(
            json!({"function": "nightly", "alias": "latest"}),
            "cadence",
        )))
        .expect("json"),
    );
    seeds
}

/// packaging/config.yaml, the same with each environment override set, and a minimal file.
fn config_seeds(config: &[u8]) -> Vec<Vec<u8>> {
    let mut with_env = config.to_vec();
    for v in [
        "hunter2",
        "ptok",
        "wtok",
        "127.0.0.1:6379",
        "127.0.0.1:8082",
        "127.0.0.1:9091",
        "127.0.0.1:9092",
        "64",
        "400",
    ] {
        with_env.push(0);
        with_env.extend_from_slice(v.as_bytes());
    }
    let minimal =
        b"cs_invoker_pool:\n  workers:\n    max_inflight: 8\n  cache:\n    bytes_max: 64MiB\n"
            .to_vec();
    vec![config.to_vec(), with_env, minimal]
}
