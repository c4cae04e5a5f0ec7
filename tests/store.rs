//! The KVRocks store against a real `redis-server` started by the tests on a free port (see
//! `tests/support/redis.rs`; skipped with a printed reason when `redis-server` is missing,
//! a failure under `CS_REQUIRE_REDIS=1`).
//!
//! What is written is checked with a raw client: exact JSON, `TYPE` and `TTL` of every key of
//! contract §4.

#[macro_use]
mod support;

use cs_invoker_pool::secret::Secret;
use cs_invoker_pool::store::{
    chunk_logs, ActivationRecord, ActivationRef, ActivationStatus, ActivationTrigger, AliasRecord,
    Begin, HostCallsRecord, RedisStore, RunningWrite, Store, StoreConfig, StoreError, Terminal,
    UserKv, VersionMeta, LOG_CHUNK_BYTES, MAX_BUNDLE_BYTES,
};
use sandbox_proto::messages::{ErrorBody, ErrorType, HttpResult, InvocationResult, Status};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

const T: &str = "t_acme01";
const NS: &str = "payments";
const FN: &str = "reconcile";
const WEEK: i64 = 604_800;

fn config(server: &RedisServer) -> StoreConfig {
    StoreConfig {
        addr: server.addr(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        ..StoreConfig::default()
    }
}

fn raw_get(raw: &mut redis::Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(raw).unwrap()
}

fn raw_json(raw: &mut redis::Connection, key: &str) -> Value {
    let bytes = raw_get(raw, key).unwrap_or_else(|| panic!("{key} is missing"));
    serde_json::from_slice(&bytes).unwrap()
}

fn raw_type(raw: &mut redis::Connection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query(raw).unwrap()
}

fn raw_ttl(raw: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(raw).unwrap()
}

fn raw_set(raw: &mut redis::Connection, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(raw)
        .unwrap();
}

/// `TTL` of `key` is within a few seconds below `ttl`.
fn assert_ttl(raw: &mut redis::Connection, key: &str, ttl: i64) {
    let got = raw_ttl(raw, key);
    assert!(
        got <= ttl && got >= ttl - 5,
        "TTL of {key} is {got}, expected about {ttl}"
    );
}

/// The InvocationResult a terminal record stands for (what the correlation key holds). A
/// `running` record has none (a result is never `running`); the store refuses its terminal
/// write by the record's status, so the result's is only a stand-in.
fn result_of(r: &ActivationRecord) -> InvocationResult {
    InvocationResult {
        activation_id: r.activation_id.clone(),
        request_id: r.request_id.clone(),
        status: r.status.terminal().unwrap_or(Status::Error),
        duration_ms: r.duration_ms.unwrap_or(0),
        result: r.result.clone(),
        error: r.error.clone(),
    }
}

/// The terminal write of `record` with no log lines.
async fn terminal(store: &RedisStore, record: &ActivationRecord) -> Result<bool, StoreError> {
    let result = result_of(record);
    store
        .write_terminal(&Terminal {
            record,
            logs: &[],
            result: &result,
        })
        .await
}

fn running(aid: &str) -> ActivationRecord {
    ActivationRecord {
        activation_id: aid.to_string(),
        request_id: "req-00000001".to_string(),
        tenant: T.to_string(),
        namespace: NS.to_string(),
        function: FN.to_string(),
        reference: ActivationRef {
            function: FN.to_string(),
            alias: Some("prod".to_string()),
            version: Some(3),
        },
        trigger: ActivationTrigger {
            kind: "http".to_string(),
            source: Some(json!({"path": "/x"})),
        },
        status: ActivationStatus::Running,
        start_ms: 1_730_000_000_000,
        end_ms: None,
        duration_ms: None,
        result_truncated: false,
        result: None,
        error: None,
        cold_start: false,
        start_kind: None,
        wait_ms: Some(2),
        child_id: None,
        memory_peak_bytes: None,
        cpu_ms: None,
        host_calls: None,
        trace_id: None,
    }
}

fn success(aid: &str, duration_ms: u64) -> ActivationRecord {
    let mut r = running(aid);
    r.status = ActivationStatus::Success;
    r.end_ms = Some(r.start_ms + duration_ms);
    r.duration_ms = Some(duration_ms);
    r.result = Some(HttpResult {
        status_code: 200,
        headers: BTreeMap::from([("content-type".to_string(), "text/plain".to_string())]),
        body: "ok".to_string(),
        is_base64_encoded: false,
    });
    r.cold_start = true;
    r.start_kind = Some("stem".to_string());
    r.child_id = Some(7);
    r.memory_peak_bytes = Some(1 << 20);
    r.host_calls = Some(HostCallsRecord {
        count: 2,
        denied: 0,
        bytes_in: 10,
        bytes_out: 20,
        time_ms: 3,
        heartbeats: 0,
    });
    r
}

fn failure(aid: &str) -> ActivationRecord {
    let mut r = running(aid);
    r.status = ActivationStatus::Error;
    r.end_ms = Some(r.start_ms + 5);
    r.duration_ms = Some(5);
    r.error = Some(ErrorBody {
        kind: ErrorType::Exception,
        message: "Error: boom".to_string(),
        stack: None,
    });
    r
}

fn aid(n: u32) -> String {
    format!("0b6f3c1e-0000-4000-8000-{n:012}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_spec_4_has_its_value_format_and_ttl() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();

    // A function published the way the control plane does it.
    let bundle = b"bundle bytes (the store does not parse them)".to_vec();
    let sha = hex::encode(Sha256::digest(&bundle));
    raw_set(
        &mut raw,
        "cs:fn:t_acme01:payments:reconcile:alias:prod",
        br#"{"alias":"prod","version":3,"updated_at_ms":1730000000000}"#,
    );
    raw_set(
        &mut raw,
        "cs:fn:t_acme01:payments:reconcile:ver:3:meta",
        json!({"version":3,"sha256":sha,"config":{"timeout_ms":1000},"published_at_ms":1730000000001u64})
            .to_string()
            .as_bytes(),
    );
    raw_set(
        &mut raw,
        "cs:fn:t_acme01:payments:reconcile:ver:3:bundle",
        &bundle,
    );
    assert_eq!(
        store.alias(T, NS, FN, "prod").await.unwrap(),
        Some(AliasRecord {
            alias: "prod".into(),
            version: 3,
            updated_at_ms: 1_730_000_000_000
        })
    );
    assert_eq!(
        store.version_meta(T, NS, FN, 3).await.unwrap(),
        Some(VersionMeta {
            version: 3,
            sha256: sha.clone(),
            config: json!({"timeout_ms":1000}),
            published_at_ms: 1_730_000_000_001
        })
    );
    assert_eq!(store.bundle(T, NS, FN, 3).await.unwrap(), Some(bundle));

    // Running record: meta JSON + plain status, both with the activation TTL.
    let a = aid(1);
    let meta_key = format!("cs:act:{T}:{a}:meta");
    let status_key = format!("cs:act:{T}:{a}:status");
    assert_eq!(
        store.write_running(&running(&a)).await.unwrap(),
        RunningWrite::Started
    );
    assert_eq!(
        raw_json(&mut raw, &meta_key),
        json!({
            "activation_id": a, "request_id": "req-00000001", "tenant": T,
            "namespace": NS, "function": FN,
            "ref": {"function": FN, "alias": "prod", "version": 3},
            "trigger": {"type": "http", "source": {"path": "/x"}},
            "status": "running", "start_ms": 1730000000000u64, "result_truncated": false,
            "cold_start": false, "wait_ms": 2
        })
    );
    assert_eq!(raw_get(&mut raw, &status_key).unwrap(), b"running");
    for k in [&meta_key, &status_key] {
        assert_eq!(raw_type(&mut raw, k), "string");
        assert_ttl(&mut raw, k, WEEK);
    }
    assert_eq!(
        store.activation_meta(T, &a).await.unwrap(),
        Some(running(&a))
    );
    assert_eq!(
        store.activation_status(T, &a).await.unwrap(),
        Some(ActivationStatus::Running)
    );

    // Terminal record.
    assert!(terminal(&store, &success(&a, 12)).await.unwrap());
    assert_eq!(
        raw_json(&mut raw, &meta_key),
        json!({
            "activation_id": a, "request_id": "req-00000001", "tenant": T,
            "namespace": NS, "function": FN,
            "ref": {"function": FN, "alias": "prod", "version": 3},
            "trigger": {"type": "http", "source": {"path": "/x"}},
            "status": "success", "start_ms": 1730000000000u64,
            "end_ms": 1730000000012u64, "duration_ms": 12, "result_truncated": false,
            "result": {"statusCode": 200, "headers": {"content-type": "text/plain"},
                       "body": "ok", "isBase64Encoded": false},
            "cold_start": true, "start_kind": "stem", "wait_ms": 2, "child_id": 7,
            "memory_peak_bytes": 1048576,
            "host_calls": {"count": 2, "denied": 0, "bytes_in": 10, "bytes_out": 20, "time_ms": 3}
        })
    );
    assert_eq!(raw_get(&mut raw, &status_key).unwrap(), b"success");
    for k in [&meta_key, &status_key] {
        assert_eq!(raw_type(&mut raw, k), "string");
        assert_ttl(&mut raw, k, WEEK);
    }
    assert_eq!(
        store.activation_meta(T, &a).await.unwrap(),
        Some(success(&a, 12))
    );

    // Log chunks and their index.
    let lines: Vec<String> = (0..3000)
        .map(|i| format!("[info] line {i:05} {}", "x".repeat(40)))
        .collect();
    let n = store.write_logs(T, &a, &lines).await.unwrap();
    assert!(n >= 3, "{n} chunks");
    let mut text = String::new();
    for i in 0..n {
        let key = format!("cs:log:{T}:{a}:{i:012}");
        assert_eq!(key.len(), format!("cs:log:{T}:{a}:").len() + 12);
        assert_eq!(raw_type(&mut raw, &key), "string");
        assert_ttl(&mut raw, &key, WEEK);
        let chunk = String::from_utf8(raw_get(&mut raw, &key).unwrap()).unwrap();
        assert!(chunk.len() <= LOG_CHUNK_BYTES);
        assert!(chunk.ends_with('\n'), "chunk {i} ends on a line boundary");
        text.push_str(&chunk);
    }
    assert_eq!(
        text,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    let index = format!("cs:log:{T}:{a}:chunks");
    assert_eq!(raw_type(&mut raw, &index), "zset");
    assert_ttl(&mut raw, &index, WEEK);
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut raw)
        .unwrap();
    let expected: Vec<(String, f64)> = (0..n).map(|i| (i.to_string(), i as f64)).collect();
    assert_eq!(members, expected, "score = member = chunk number");

    // The correlation key.
    let result = InvocationResult {
        activation_id: a.clone(),
        request_id: "req-00000001".into(),
        status: Status::Success,
        duration_ms: 12,
        result: success(&a, 12).result,
        error: None,
    };
    store.write_result(T, &result).await.unwrap();
    let key = format!("cs:req:{T}:req-00000001:result");
    assert_eq!(
        raw_json(&mut raw, &key),
        json!({
            "activation_id": a, "request_id": "req-00000001", "status": "success",
            "duration_ms": 12,
            "result": {"statusCode": 200, "headers": {"content-type": "text/plain"},
                       "body": "ok", "isBase64Encoded": false}
        })
    );
    assert_eq!(raw_type(&mut raw, &key), "string");
    assert_ttl(&mut raw, &key, 600);
    assert_eq!(store.result(T, "req-00000001").await.unwrap(), Some(result));

    // User KV: JSON text under cs:kv:{tenant}:{key}, with and without TTL.
    store.kv_set(T, "user:1", r#"{"a":1}"#, None).await.unwrap();
    assert_eq!(
        raw_get(&mut raw, &format!("cs:kv:{T}:user:1")).unwrap(),
        br#"{"a":1}"#
    );
    assert_eq!(raw_type(&mut raw, &format!("cs:kv:{T}:user:1")), "string");
    assert_eq!(raw_ttl(&mut raw, &format!("cs:kv:{T}:user:1")), -1);
    assert_eq!(
        store.kv_get(T, "user:1").await.unwrap().as_deref(),
        Some(r#"{"a":1}"#)
    );
    store.kv_set(T, "user:1", "[1,2]", Some(30)).await.unwrap();
    assert_ttl(&mut raw, &format!("cs:kv:{T}:user:1"), 30);
    store.kv_set(T, "user:1", "\"s\"", Some(0)).await.unwrap();
    assert_eq!(
        raw_ttl(&mut raw, &format!("cs:kv:{T}:user:1")),
        -1,
        "ttl 0 = no expiry"
    );
    // Tenant-scoped: another tenant does not see it.
    assert_eq!(store.kv_get("t_other01", "user:1").await.unwrap(), None);
    assert!(store.kv_del(T, "user:1").await.unwrap());
    assert!(!store.kv_del(T, "user:1").await.unwrap());
    assert_eq!(store.kv_get(T, "user:1").await.unwrap(), None);
    assert!(matches!(
        store.kv_set(T, "k", "not json", None).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_compare_and_set_wins_once() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    let a = aid(2);
    let meta_key = format!("cs:act:{T}:{a}:meta");
    let status_key = format!("cs:act:{T}:{a}:status");

    assert_eq!(
        store.write_running(&running(&a)).await.unwrap(),
        RunningWrite::Started
    );
    // A second running write (a redelivery of a `running` leftover) is allowed.
    assert_eq!(
        store.write_running(&running(&a)).await.unwrap(),
        RunningWrite::Started
    );
    assert!(terminal(&store, &success(&a, 12)).await.unwrap());
    let meta = raw_get(&mut raw, &meta_key).unwrap();
    let ttl_before = raw_ttl(&mut raw, &meta_key);

    // A second terminal write loses and changes nothing.
    assert!(!terminal(&store, &failure(&a)).await.unwrap());
    assert!(!terminal(&store, &success(&a, 99)).await.unwrap());
    assert_eq!(raw_get(&mut raw, &meta_key).unwrap(), meta);
    assert_eq!(raw_get(&mut raw, &status_key).unwrap(), b"success");
    assert!(raw_ttl(&mut raw, &meta_key) <= ttl_before);

    // A running write after the terminal one does not reopen the activation.
    assert_eq!(
        store.write_running(&running(&a)).await.unwrap(),
        RunningWrite::AlreadyTerminal(ActivationStatus::Success)
    );
    assert_eq!(raw_get(&mut raw, &meta_key).unwrap(), meta);
    assert_eq!(raw_get(&mut raw, &status_key).unwrap(), b"success");

    // Repeating exactly the winning write (a retry after a lost reply) still reports the win.
    assert!(terminal(&store, &success(&a, 12)).await.unwrap());
    assert_eq!(raw_get(&mut raw, &meta_key).unwrap(), meta);

    // A terminal write of status running is refused.
    assert!(matches!(
        terminal(&store, &running(&a)).await,
        Err(StoreError::Invalid(_))
    ));

    // No running record (terminal error before execution): the terminal write wins.
    let b = aid(3);
    assert!(terminal(&store, &failure(&b)).await.unwrap());
    assert_eq!(
        store.activation_status(T, &b).await.unwrap(),
        Some(ActivationStatus::Error)
    );
    assert_eq!(
        store.activation_meta(T, &b).await.unwrap(),
        Some(failure(&b))
    );
    assert!(!terminal(&store, &success(&b, 1)).await.unwrap());

    // The scripts survive SCRIPT FLUSH (EVALSHA → NOSCRIPT → EVAL).
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut raw)
        .unwrap();
    let c = aid(4);
    assert_eq!(
        store.write_running(&running(&c)).await.unwrap(),
        RunningWrite::Started
    );
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut raw)
        .unwrap();
    assert!(terminal(&store, &success(&c, 3)).await.unwrap());
}

/// The terminal write stores the log chunks, their index and the correlation key in the same
/// atomic step as the record: they exist exactly when the record turned terminal with this
/// write, and a losing write touches none of them.
#[tokio::test]
async fn the_terminal_write_carries_the_logs_and_the_correlation_key() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    let a = aid(40);
    store.write_running(&running(&a)).await.unwrap();
    let lines: Vec<String> = (0..3000)
        .map(|i| format!("[info] line {i:05} {}", "x".repeat(40)))
        .collect();
    let rec = success(&a, 12);
    let result = result_of(&rec);
    let t = Terminal {
        record: &rec,
        logs: &lines,
        result: &result,
    };
    assert!(store.write_terminal(&t).await.unwrap());
    let text = store.read_logs(T, &a).await.unwrap().concat();
    assert_eq!(
        text,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    let chunks = chunk_logs(&lines, LOG_CHUNK_BYTES).len();
    assert!(chunks >= 3);
    let index = format!("cs:log:{T}:{a}:chunks");
    assert_eq!(raw_type(&mut raw, &index), "zset");
    assert_ttl(&mut raw, &index, WEEK);
    for n in 0..chunks {
        assert_ttl(&mut raw, &format!("cs:log:{T}:{a}:{n:012}"), WEEK);
    }
    let corr = format!("cs:req:{T}:{}:result", rec.request_id);
    assert_eq!(
        serde_json::from_value::<InvocationResult>(raw_json(&mut raw, &corr)).unwrap(),
        result
    );
    assert_ttl(&mut raw, &corr, 600);

    // A losing write (another delivery's outcome) leaves all of it as the winner wrote it.
    let other = failure(&a);
    let other_result = result_of(&other);
    let other_lines = vec!["[error] from the loser".to_string()];
    assert!(!store
        .write_terminal(&Terminal {
            record: &other,
            logs: &other_lines,
            result: &other_result,
        })
        .await
        .unwrap());
    assert_eq!(store.read_logs(T, &a).await.unwrap().concat(), text);
    assert_eq!(
        serde_json::from_value::<InvocationResult>(raw_json(&mut raw, &corr)).unwrap(),
        result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_terminal_writes_exactly_one_wins() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    for round in 0..20 {
        let a = aid(100 + round);
        if round % 2 == 0 {
            store.write_running(&running(&a)).await.unwrap();
        } // odd rounds: no running record at all
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let store = store.clone();
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let rec = if w % 3 == 0 {
                    failure(&a)
                } else {
                    success(&a, 10 + w)
                };
                let won = terminal(&store, &rec).await.unwrap();
                (won, rec)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (won, rec) = t.await.unwrap();
            if won {
                winners.push(rec);
            }
        }
        // Writers 0, 3 and 6 write the same failure record: a repeat of the winning write
        // reports the win again, so count distinct records.
        let distinct: Vec<_> = winners.iter().fold(Vec::new(), |mut acc, r| {
            if !acc.contains(r) {
                acc.push(r.clone());
            }
            acc
        });
        assert_eq!(distinct.len(), 1, "round {round}: winners {distinct:?}");
        let stored: ActivationRecord =
            serde_json::from_slice(&raw_get(&mut raw, &format!("cs:act:{T}:{a}:meta")).unwrap())
                .unwrap();
        assert_eq!(stored, distinct[0]);
        assert_eq!(
            raw_get(&mut raw, &format!("cs:act:{T}:{a}:status")).unwrap(),
            stored.status.as_str().as_bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_chunks_cut_on_lines_and_the_index_is_replaced() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    let a = aid(5);

    // 1 MiB of logs (the cap), with one line longer than a chunk and multi-byte characters.
    let mut lines: Vec<String> = (0..15_000)
        .map(|i| format!("[info] {i} é {}", "y".repeat(50)))
        .collect();
    lines.insert(10, "z".repeat(LOG_CHUNK_BYTES + 1000));
    let n = store.write_logs(T, &a, &lines).await.unwrap();
    let chunks = store.read_logs(T, &a).await.unwrap();
    assert_eq!(chunks.len(), n);
    assert!(chunks.iter().all(|c| c.len() <= LOG_CHUNK_BYTES));
    assert_eq!(
        chunks.concat(),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    let total: usize = lines.iter().map(|l| l.len() + 1).sum();
    assert!(n >= total.div_ceil(LOG_CHUNK_BYTES), "{n} chunks");

    // Written again with fewer lines: the index lists only the new chunks.
    assert_eq!(
        store
            .write_logs(T, &a, &["[warn] once".to_string()])
            .await
            .unwrap(),
        1
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("cs:log:{T}:{a}:chunks"))
        .arg(0)
        .arg(-1)
        .query(&mut raw)
        .unwrap();
    assert_eq!(members, vec!["0"]);
    assert_eq!(store.read_logs(T, &a).await.unwrap(), vec!["[warn] once\n"]);

    // No lines: nothing written.
    let b = aid(6);
    assert_eq!(store.write_logs(T, &b, &[]).await.unwrap(), 0);
    assert_eq!(
        raw_type(&mut raw, &format!("cs:log:{T}:{b}:chunks")),
        "none"
    );
}

/// The error is `Corrupt` at `key`; returns its reason.
fn corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, key: &str) -> String {
    match r {
        Err(StoreError::Corrupt { key: k, why }) => {
            assert_eq!(k, key);
            why
        }
        other => panic!("expected Corrupt at {key}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_corrupt_and_invalid_are_distinct() {
    let server = server!();
    let mut raw = server.raw();
    let store = RedisStore::connect(config(&server)).await.unwrap();

    // Missing: Ok(None), never an error.
    assert_eq!(store.alias(T, NS, FN, "prod").await.unwrap(), None);
    assert_eq!(store.version_meta(T, NS, FN, 1).await.unwrap(), None);
    assert_eq!(store.bundle(T, NS, FN, 1).await.unwrap(), None);
    assert_eq!(store.activation_meta(T, &aid(7)).await.unwrap(), None);
    assert_eq!(store.activation_status(T, &aid(7)).await.unwrap(), None);
    assert_eq!(store.result(T, "req-missing").await.unwrap(), None);

    // Bad JSON, wrong shape, wrong type.
    let alias_key = format!("cs:fn:{T}:{NS}:{FN}:alias:prod");
    raw_set(&mut raw, &alias_key, b"{not json");
    corrupt(store.alias(T, NS, FN, "prod").await, &alias_key);
    raw_set(&mut raw, &alias_key, br#"{"alias":"prod"}"#);
    corrupt(store.alias(T, NS, FN, "prod").await, &alias_key);
    raw_set(&mut raw, &alias_key, br#"{"alias":"prod","version":0}"#);
    corrupt(store.alias(T, NS, FN, "prod").await, &alias_key);
    redis::cmd("DEL")
        .arg(&alias_key)
        .query::<()>(&mut raw)
        .unwrap();
    redis::cmd("ZADD")
        .arg(&alias_key)
        .arg(1)
        .arg("x")
        .query::<()>(&mut raw)
        .unwrap();
    let why = corrupt(store.alias(T, NS, FN, "prod").await, &alias_key);
    assert!(why.contains("WRONGTYPE"), "{why}");

    // Version meta that names another version or has no proper sha256.
    let meta_key = format!("cs:fn:{T}:{NS}:{FN}:ver:2:meta");
    raw_set(
        &mut raw,
        &meta_key,
        json!({"version":3,"sha256":"a".repeat(64),"config":{},"published_at_ms":1})
            .to_string()
            .as_bytes(),
    );
    corrupt(store.version_meta(T, NS, FN, 2).await, &meta_key);
    raw_set(
        &mut raw,
        &meta_key,
        json!({"version":2,"sha256":"xyz","config":{},"published_at_ms":1})
            .to_string()
            .as_bytes(),
    );
    corrupt(store.version_meta(T, NS, FN, 2).await, &meta_key);
    raw_set(
        &mut raw,
        &meta_key,
        json!({"version":2,"sha256":"AB".repeat(32),"config":{},"published_at_ms":1})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        store
            .version_meta(T, NS, FN, 2)
            .await
            .unwrap()
            .unwrap()
            .sha256,
        "ab".repeat(32),
        "sha256 is returned lower-case"
    );

    // A bundle over 16 MiB is refused from its STRLEN; exactly 16 MiB is read; empty is not
    // missing.
    let bundle_key = format!("cs:fn:{T}:{NS}:{FN}:ver:2:bundle");
    redis::cmd("SETRANGE")
        .arg(&bundle_key)
        .arg(MAX_BUNDLE_BYTES)
        .arg("x")
        .query::<()>(&mut raw)
        .unwrap();
    let why = corrupt(store.bundle(T, NS, FN, 2).await, &bundle_key);
    assert!(why.contains("16 MiB"), "{why}");
    redis::cmd("SETRANGE")
        .arg(format!("cs:fn:{T}:{NS}:{FN}:ver:4:bundle"))
        .arg(MAX_BUNDLE_BYTES - 1)
        .arg("x")
        .query::<()>(&mut raw)
        .unwrap();
    let big = store.bundle(T, NS, FN, 4).await.unwrap().unwrap();
    assert_eq!(big.len(), MAX_BUNDLE_BYTES);
    raw_set(&mut raw, &format!("cs:fn:{T}:{NS}:{FN}:ver:5:bundle"), b"");
    assert_eq!(store.bundle(T, NS, FN, 5).await.unwrap(), Some(Vec::new()));

    // A status that is not one of the four, a record stored under another activation's key.
    let a = aid(8);
    raw_set(&mut raw, &format!("cs:act:{T}:{a}:status"), b"done");
    corrupt(
        store.activation_status(T, &a).await,
        &format!("cs:act:{T}:{a}:status"),
    );
    assert!(matches!(
        store.write_running(&running(&a)).await,
        Err(StoreError::Corrupt { .. })
    ));
    raw_set(
        &mut raw,
        &format!("cs:act:{T}:{a}:meta"),
        serde_json::to_string(&running(&aid(9))).unwrap().as_bytes(),
    );
    corrupt(
        store.activation_meta(T, &a).await,
        &format!("cs:act:{T}:{a}:meta"),
    );

    // A ':' in the tenant (or a name) would let two tenants share keys: refused before any I/O.
    for r in [
        store.alias("t:x", NS, FN, "prod").await.map(|_| ()),
        store.alias(T, "a:b", FN, "prod").await.map(|_| ()),
        store.activation_meta("", &a).await.map(|_| ()),
        store.kv_get("t:x", "k").await.map(|_| ()),
        store.kv_get(T, "").await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error() {
    let Some(server) = RedisServer::start_with_password("s3cret-pw") else {
        return;
    };
    for password in [Some("wrong".to_string()), None] {
        let cfg = StoreConfig {
            password: password.clone().map(Secret::from),
            ..config(&server)
        };
        let err = RedisStore::connect(cfg.clone()).await.unwrap_err();
        match &err {
            StoreError::Unavailable(msg) => {
                assert!(
                    msg.contains("refused the credentials"),
                    "password {password:?}: {msg}"
                );
                assert!(!msg.contains("s3cret-pw"));
            }
            other => panic!("password {password:?}: {other:?}"),
        }
        // Every call says the same, and the password never appears in Debug output.
        let store = RedisStore::new(cfg).unwrap();
        let e = store.alias(T, NS, FN, "prod").await.unwrap_err();
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        assert!(!format!("{store:?}").contains("wrong"));
    }
    let store = RedisStore::connect(StoreConfig {
        password: Some("s3cret-pw".into()),
        ..config(&server)
    })
    .await
    .unwrap();
    store.kv_set(T, "k", "1", None).await.unwrap();
    assert_eq!(store.kv_get(T, "k").await.unwrap().as_deref(), Some("1"));
}

/// One call of every kind, each timed; `Ok` = the call succeeded.
async fn every_call(
    store: &RedisStore,
    n: u32,
) -> Vec<(&'static str, Duration, Result<(), StoreError>)> {
    let a = aid(1000 + n);
    let mut out = Vec::new();
    macro_rules! call {
        ($name:expr, $e:expr) => {{
            let t = Instant::now();
            let r = $e.await.map(|_| ());
            out.push(($name, t.elapsed(), r));
        }};
    }
    call!("ping", store.ping());
    call!("alias", store.alias(T, NS, FN, "prod"));
    call!("version_meta", store.version_meta(T, NS, FN, 1));
    call!("bundle", store.bundle(T, NS, FN, 1));
    call!("activation_meta", store.activation_meta(T, &a));
    call!("activation_status", store.activation_status(T, &a));
    call!("write_running", store.write_running(&running(&a)));
    let rec = running(&a);
    call!(
        "begin",
        store.begin(&Begin {
            record: &rec,
            write: true,
            alias: Some(("prod", None)),
        })
    );
    call!("write_terminal", terminal(store, &success(&a, 1)));
    call!(
        "write_logs",
        store.write_logs(T, &a, &["[info] x".to_string()])
    );
    let result = InvocationResult {
        activation_id: a.clone(),
        request_id: format!("req-{n:08}"),
        status: Status::Success,
        duration_ms: 1,
        result: None,
        error: None,
    };
    call!("write_result", store.write_result(T, &result));
    call!("kv_set", store.kv_set(T, "k", "1", Some(60)));
    call!("kv_get", store.kv_get(T, "k"));
    call!("kv_del", store.kv_del(T, "k"));
    out
}

fn assert_all_unavailable(calls: &[(&str, Duration, Result<(), StoreError>)], bound: Duration) {
    let slowest = calls.iter().max_by_key(|c| c.1).unwrap();
    eprintln!(
        "{} calls unavailable; slowest {} took {:?}; e.g. {:?}",
        calls.len(),
        slowest.0,
        slowest.1,
        calls[1].2
    );
    for (name, took, r) in calls {
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "{name}: expected Unavailable, got {r:?}"
        );
        assert!(*took < bound, "{name} took {took:?} (bound {bound:?})");
    }
}

fn assert_all_ok(calls: &[(&str, Duration, Result<(), StoreError>)]) {
    for (name, _, r) in calls {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_quickly_and_a_restarted_one_is_used_again() {
    let mut server = server!();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    assert_all_ok(&every_call(&store, 1).await);
    // Not found is not unavailable.
    assert_eq!(store.alias(T, NS, FN, "nope").await, Ok(None));

    server.stop();
    let t = Instant::now();
    let calls = every_call(&store, 2).await;
    // Connection refused: immediate, well inside connect_timeout (300 ms).
    assert_all_unavailable(&calls, Duration::from_millis(1000));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for (_, _, r) in &calls {
        assert!(r.as_ref().unwrap_err().is_transient());
    }
    let msg = store.ping().await.unwrap_err().to_string();
    assert!(msg.contains(&server.addr()), "{msg}");

    // Many concurrent calls during the outage all come back, none hangs.
    let t = Instant::now();
    let results = futures_join(&store, 64).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(StoreError::Unavailable(_)))));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    server.restart();
    assert_all_ok(&every_call(&store, 3).await);
    assert_eq!(store.alias(T, NS, FN, "nope").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_while_idle_is_reconnected_without_a_failed_call() {
    let mut server = server!();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    store.kv_set(T, "k", "1", None).await.unwrap();
    server.restart(); // the store's connection is now dead, and it has not noticed
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        store.kv_get(T, "k").await,
        Ok(None),
        "fresh server, no data"
    );
    let a = aid(20);
    assert_eq!(
        store.write_running(&running(&a)).await,
        Ok(RunningWrite::Started)
    );
    assert_eq!(terminal(&store, &success(&a, 1)).await, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_is_bounded_by_the_timeouts() {
    let server = server!();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    assert_all_ok(&every_call(&store, 4).await);

    server.pause();
    let t = Instant::now();
    let calls = every_call(&store, 5).await;
    // Each call: at most one connect (300 ms) and one reply wait (300 ms) plus slack.
    assert_all_unavailable(&calls, Duration::from_millis(1500));
    let concurrent = futures_join(&store, 64).await;
    assert!(concurrent
        .iter()
        .all(|r| matches!(r, Err(StoreError::Unavailable(_)))));
    let elapsed = t.elapsed();
    server.resume();
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");

    // Back: calls succeed again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no recovery after SIGCONT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_ok(&every_call(&store, 6).await);
}

/// `n` concurrent reads.
async fn futures_join(
    store: &RedisStore,
    n: usize,
) -> Vec<Result<Option<AliasRecord>, StoreError>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.alias(T, NS, FN, &format!("a{i}")).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_at_start_is_used_once_it_is_up() {
    let mut server = server!();
    server.stop();
    let store = RedisStore::new(config(&server)).unwrap(); // no I/O
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(RedisStore::connect(config(&server)).await.is_err());
    server.restart();
    store.ping().await.unwrap();
}

/// Steps 2, 3 and 6 in one script: the status and alias reads, and the running write only
/// while the alias holds exactly what it held when last read, never over a terminal status.
#[tokio::test]
async fn begin_writes_running_only_while_the_alias_is_unchanged_and_the_status_open() {
    let server = server!();
    let store = RedisStore::connect(config(&server)).await.unwrap();
    let mut raw = server.raw();
    let alias_key = format!("cs:fn:{T}:{NS}:{FN}:alias:prod");
    raw_set(
        &mut raw,
        &alias_key,
        br#"{"alias":"prod","version":3,"updated_at_ms":5}"#,
    );
    let a = aid(7001);
    let (status_a, meta_a) = (
        format!("cs:act:{T}:{a}:status"),
        format!("cs:act:{T}:{a}:meta"),
    );
    let rec = running(&a);
    assert_eq!(rec.reference.version, Some(3));

    // Never read before: the reads only.
    let first = store
        .begin(&Begin {
            record: &rec,
            write: true,
            alias: Some(("prod", None)),
        })
        .await
        .unwrap();
    assert!(!first.running);
    assert_eq!(first.status, Ok(None));
    let seen = first.alias.unwrap().unwrap().unwrap();
    assert_eq!(seen.record.version, 3);
    assert_eq!(raw_get(&mut raw, &status_a), None);

    // With what was seen: the running record is written by the same script.
    let second = store
        .begin(&Begin {
            record: &rec,
            write: true,
            alias: Some(("prod", Some(&seen))),
        })
        .await
        .unwrap();
    assert!(second.running);
    assert_eq!(raw_get(&mut raw, &status_a).unwrap(), b"running");
    let meta = raw_json(&mut raw, &meta_a);
    assert_eq!(meta["status"], "running");
    assert_eq!(meta["ref"]["version"], 3);
    assert_ttl(&mut raw, &meta_a, WEEK);
    assert_ttl(&mut raw, &status_a, WEEK);

    // The alias moved (same version, another record): nothing written, the new record read.
    let b = aid(7002);
    raw_set(
        &mut raw,
        &alias_key,
        br#"{"alias":"prod","version":4,"updated_at_ms":6}"#,
    );
    let moved = store
        .begin(&Begin {
            record: &running(&b),
            write: true,
            alias: Some(("prod", Some(&seen))),
        })
        .await
        .unwrap();
    assert!(!moved.running);
    assert_eq!(moved.alias.unwrap().unwrap().unwrap().record.version, 4);
    assert_eq!(raw_get(&mut raw, &format!("cs:act:{T}:{b}:status")), None);

    // A deleted alias reads as absent.
    redis::cmd("DEL")
        .arg(&alias_key)
        .query::<()>(&mut raw)
        .unwrap();
    let gone = store
        .begin(&Begin {
            record: &running(&b),
            write: true,
            alias: Some(("prod", Some(&seen))),
        })
        .await
        .unwrap();
    assert!(!gone.running);
    assert_eq!(gone.alias, Some(Ok(None)));

    // Terminal: reported, and the running write is refused.
    raw_set(&mut raw, &status_a, b"success");
    let done = store
        .begin(&Begin {
            record: &rec,
            write: true,
            alias: None,
        })
        .await
        .unwrap();
    assert_eq!(done.status, Ok(Some(ActivationStatus::Success)));
    assert!(!done.running);
    assert_eq!(raw_get(&mut raw, &status_a).unwrap(), b"success");

    // A corrupt alias record is reported as such (not an outage).
    raw_set(&mut raw, &alias_key, b"{not json");
    let bad = store
        .begin(&Begin {
            record: &running(&b),
            write: false,
            alias: Some(("prod", None)),
        })
        .await
        .unwrap();
    assert!(matches!(bad.alias, Some(Err(StoreError::Corrupt { .. }))));
}
