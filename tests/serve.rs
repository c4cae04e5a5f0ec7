//! `cs-invoker-pool serve` end to end: the daemon binary as a child process, the codeQ emulator
//! (real gRPC, shortened timings) and a real `redis-server`. Tasks are enqueued on `cs.invoke`
//! as a Sous producer would; what the daemon answers, publishes and writes is read back from
//! the emulator and the store.

#[macro_use]
mod support;

use codeq_emulator::{Emulator, EnqueueOptions, TaskStatus, TaskView};
use redis::Commands;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use support::serve::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_answered_published_and_recorded() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-answers", "");
    d.wait_ready().await;

    let (ok_aid, ok) = invocation("hello", json!({"name": "Sous"}));
    let (err_aid, err) = invocation("throws", json!({}));
    let (to_aid, to) = invocation("spins", json!({}));
    let ids: Vec<String> = [ok, err, to]
        .into_iter()
        .map(|p| emu.enqueue("cs.invoke", p, EnqueueOptions::default()))
        .collect();
    let invalid = emu.enqueue(
        "cs.invoke",
        b"{\"schema\":\"cs.envelope.v1\"}".to_vec(),
        EnqueueOptions::default(),
    );

    // success: COMPLETED with the InvocationResult, which cs.results carries too.
    let t = finished(&emu, &ids[0], 20).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    let result = t.result_value().unwrap();
    assert_eq!(result["activation_id"], json!(ok_aid));
    assert_eq!(result["status"], json!("success"));
    assert_eq!(result["result"]["body"], json!("hi Sous"));
    let published = results_for(&emu, &ok_aid);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["type"], json!("InvocationResult"));
    assert_eq!(published[0]["body"], result);
    let rec: Value = serde_json::from_str(
        &raw.get::<_, String>(format!("cs:act:{T}:{ok_aid}:meta"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["status"], json!("success"));
    let corr: Value = serde_json::from_str(
        &raw.get::<_, String>(format!("cs:req:{T}:req-{}:result", &ok_aid[..8]))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(corr, result);

    // error and timeout: FAILED with "{type}: {message}", the result published.
    let t = finished(&emu, &ids[1], 20).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("Exception: RangeError: boom"));
    assert_eq!(
        results_for(&emu, &err_aid)[0]["body"]["error"]["type"],
        json!("Exception")
    );
    let t = finished(&emu, &ids[2], 20).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error.as_deref().unwrap().starts_with("Timeout: "),
        "{t:?}"
    );
    assert_eq!(
        results_for(&emu, &to_aid)[0]["body"]["status"],
        json!("timeout")
    );

    // invalid: FAILED, dead-lettered with the request, never retried.
    let t = finished(&emu, &invalid, 20).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .starts_with("validation failed: "),
        "{t:?}"
    );
    let dlq = emu.tasks("cs.dlq.invoke");
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].payload_value().unwrap()["body"]["request"],
        json!({"schema": "cs.envelope.v1"})
    );
    assert_eq!(t.deliveries, 1);

    // Every claim was answered on a stream whose Readys expired silently in between.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(emu.expired_ready_polls() > 0, "no Ready expired");
    let (late_aid, late) = invocation("hello", json!({"name": "later"}));
    let id = emu.enqueue("cs.invoke", late, EnqueueOptions::default());
    assert_eq!(finished(&emu, &id, 10).await.status, TaskStatus::Completed);
    assert_eq!(results_for(&emu, &late_aid).len(), 1);

    // The metrics saw it.
    let (code, metrics) = d.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("cs_invocations_total{"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cs_invocations_total{")
                && l.contains("function=\"hello\"")
                && l.contains("status=\"success\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    assert_eq!(d.get("/healthz").unwrap().0, 200);
    // The log is JSON, one event per line, with the activation fields.
    let log = d.log();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["activation_id"] == json!(ok_aid))
        .unwrap_or_else(|| panic!("no JSON log line for {ok_aid}:\n{log}"));
    for k in ["request_id", "tenant", "namespace", "function"] {
        assert!(line[k].is_string(), "{k} missing: {line}");
    }

    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_activation_is_heartbeated_and_not_redelivered() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-long", "");
    d.wait_ready().await;
    // 5 s of work with a 2 s lease.
    let (aid, p) = invocation("slow", json!({"ms": 5000}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 30).await;
    assert_eq!(t.status, TaskStatus::Completed, "{}", d.log());
    assert_eq!(t.deliveries, 1, "redelivered: {t:?}");
    assert_eq!(t.attempts, 0);
    assert_eq!(results_for(&emu, &aid).len(), 1);
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_s_task_is_finished_by_another_once() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut first = Daemon::start(&emu, &redis, "w-first", "");
    first.wait_ready().await;
    let (aid, p) = invocation("slow", json!({"ms": 1500}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    emu.wait_for_status(&id, TaskStatus::InProgress, Duration::from_secs(10))
        .await
        .unwrap();
    // Mid-activation: the running record is there.
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw
        .get::<_, Option<String>>(format!("cs:act:{T}:{aid}:status"))
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "no running record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await.unwrap();

    let mut second = Daemon::start(&emu, &redis, "w-second", "");
    second.wait_ready().await;
    let t = finished(&emu, &id, 30).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", second.log());
    assert_eq!(t.worker_id.as_deref(), Some("w-second"));
    assert!(t.deliveries >= 2);
    let status: String = raw.get(format!("cs:act:{T}:{aid}:status")).unwrap();
    assert_eq!(status, "success");
    assert_eq!(results_for(&emu, &aid).len(), 1);
    second.signal(libc::SIGTERM);
    assert!(second
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_queue_outages_are_ridden_out() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    let mut emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-outage", "");
    d.wait_ready().await;

    // The store freezes: tasks are nacked, nothing terminal is written, /readyz is 503.
    redis.pause();
    let (aid, p) = invocation("hello", json!({"name": "outage"}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    emu.wait_for_task(&id, Duration::from_secs(20), |t| !t.nack_reasons.is_empty())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store"), "{body}");
    redis.resume();
    let t = finished(&emu, &id, 30).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert!(t.attempts >= 1);
    assert_eq!(results_for(&emu, &aid).len(), 1);
    let status: String = raw.get(format!("cs:act:{T}:{aid}:status")).unwrap();
    assert_eq!(status, "success");

    // The emulator restarts: the daemon reconnects (same worker id) and continues.
    emu.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    emu.restart().await.unwrap();
    let (aid, p) = invocation("hello", json!({"name": "again"}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 30).await;
    assert_eq!(t.status, TaskStatus::Completed, "{}", d.log());
    assert_eq!(results_for(&emu, &aid).len(), 1);
    assert!(emu.worker_streams_opened() >= 2);
    d.wait_ready().await;
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_abandons_the_rest() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-drain", "");
    d.wait_ready().await;
    // One that finishes within the 3 s drain, one that cannot.
    let (short_aid, short) = invocation("slow", json!({"ms": 1000}));
    let (_, long) = invocation("slow", json!({"ms": 15000}));
    let s = emu.enqueue("cs.invoke", short, EnqueueOptions::default());
    let l = emu.enqueue("cs.invoke", long, EnqueueOptions::default());
    emu.wait_for_status(&s, TaskStatus::InProgress, Duration::from_secs(10))
        .await
        .unwrap();
    emu.wait_for_status(&l, TaskStatus::InProgress, Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    d.signal(libc::SIGTERM);
    // Draining: not ready any more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some((code, _)) = d.get("/readyz") {
        assert_eq!(code, 503);
    }
    let st = d
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("serve exits");
    assert!(st.success(), "exit {st}:\n{}", d.log());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(emu.task(&s).unwrap().status, TaskStatus::Completed);
    assert_eq!(results_for(&emu, &short_aid).len(), 1);
    // The long one went back to the queue at once (no lease to wait out).
    let t = emu.task(&l).unwrap();
    assert_eq!(t.status, TaskStatus::Pending, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_or_config_is_a_clear_error_at_start() {
    let redis = server!();
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start_with(&emu, &redis, "w-bad", "", "not-the-token", &[]);
    let st = d
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("serve exits");
    assert_eq!(st.code(), Some(1));
    let log = d.log();
    assert!(log.contains("worker_token"), "{log}");
    assert!(log.contains("Unauthenticated"), "{log}");

    let mut d = Daemon::start(&emu, &redis, "w-bad2", "  max_inflight_typo: 3\n");
    let st = d
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("serve exits");
    assert_eq!(st.code(), Some(1));
    assert!(
        d.log().contains("cs_invoker_pool.max_inflight_typo"),
        "{}",
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_unconfined_only_when_the_configuration_says_so() {
    let redis = server!();
    let emu = Emulator::start(emulator_config()).await.unwrap();
    // No per-child cgroups without consent: refused at start, naming the way out.
    let mut d = Daemon::start_with(
        &emu,
        &redis,
        "w-nocg",
        "  sandbox:\n    cgroup: none\n",
        "worker-token",
        &[("CS_REQUIRE_SANDBOX", "0")],
    );
    let st = d
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("serve exits");
    assert_eq!(st.code(), Some(1), "{}", d.log());
    assert!(d.log().contains("allow_unconfined"), "{}", d.log());

    // Consent given: it runs, and says loudly that it is unconfined.
    let consent = "  sandbox:\n    cgroup: none\n    allow_unconfined: true\n";
    let mut d = Daemon::start_with(
        &emu,
        &redis,
        "w-consent",
        consent,
        "worker-token",
        &[("CS_REQUIRE_SANDBOX", "0")],
    );
    d.wait_ready().await;
    assert!(d.log().contains("UNCONFINED"), "{}", d.log());
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());

    // CS_REQUIRE_SANDBOX=1 is never weakened by the configuration.
    let mut d = Daemon::start_with(
        &emu,
        &redis,
        "w-env",
        consent,
        "worker-token",
        &[("CS_REQUIRE_SANDBOX", "1")],
    );
    let st = d
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("serve exits");
    assert_eq!(st.code(), Some(1), "{}", d.log());
    assert!(d.log().contains("CS_REQUIRE_SANDBOX"), "{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_claims_up_to_its_free_slots_and_never_more() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_all(&mut raw);
    // codeQ's own Ready timing (30 s) on both sides: a miscounted ask then stays wrong for
    // the whole test instead of healing at the next expiry.
    let mut cfg = emulator_config();
    cfg.ready_expiry = Duration::from_secs(30);
    let emu = Emulator::start(cfg).await.unwrap();
    // max_inflight is 4 in the test configuration.
    let mut d = Daemon::start_with(
        &emu,
        &redis,
        "w-slots",
        "",
        "worker-token",
        &[("CS_CODEQ_READY_EXPIRY_MS", "31000")],
    );
    d.wait_ready().await;
    // A Ready answered with fewer tasks than it asked for is spent: the worker must ask again
    // for the rest of its slots.
    let (_, quick) = invocation("hello", json!({"name": "x"}));
    let q = emu.enqueue("cs.invoke", quick, EnqueueOptions::default());
    assert_eq!(finished(&emu, &q, 10).await.status, TaskStatus::Completed);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let ids: Vec<String> = (0..6)
        .map(|_| {
            let (_, p) = invocation("slow", json!({"ms": 1500}));
            emu.enqueue("cs.invoke", p, EnqueueOptions::default())
        })
        .collect();
    let in_progress = || {
        ids.iter()
            .filter(|id| {
                emu.task(id)
                    .map(|t| t.status == TaskStatus::InProgress)
                    .unwrap_or(false)
            })
            .count()
    };
    assert!(
        emu.wait_until(Duration::from_secs(5), || in_progress() == 4)
            .await,
        "never 4 at once: {} in progress\n{}",
        in_progress(),
        d.log()
    );
    let mut most = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(800) {
        most = most.max(in_progress());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 4, "more tasks claimed than slots");
    for id in &ids {
        let t = finished(&emu, id, 30).await;
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.deliveries, 1, "task {id} delivered twice\n{}", d.log());
    }
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
}

/// `process.env` is the version's `config.env` (Sous `VersionConfig.env`), from before the
/// module's top-level code runs; two versions of the same bundle with different env never
/// share a warm child; `{}` when the meta has none; a malformed one is a BundleError. And the
/// event reaches the function with its keys in the producer's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_env_is_the_version_config_env_and_the_event_keeps_its_order() {
    let redis = server!();
    let mut raw = redis.raw();
    let src = "const atLoad = process.env.GREETING; \
               export default () => ({ body: JSON.stringify({ atLoad, env: process.env }) });";
    let m = manifest(5000, 8, json!({}));
    publish_version(&mut raw, T, NS, "envy", 1, src, &m, &json!({}));
    publish_version(
        &mut raw,
        T,
        NS,
        "envy",
        2,
        src,
        &m,
        &json!({"env": {"GREETING": "hola", "N": "1"}, "timeout_ms": 5000}),
    );
    publish_version(
        &mut raw,
        T,
        NS,
        "envy",
        3,
        src,
        &m,
        &json!({"env": {"GREETING": 7}}),
    );
    publish(
        &mut raw,
        "echo",
        "export default (e) => ({ body: JSON.stringify(e) });",
        5000,
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-env", "");
    d.wait_ready().await;

    let body = |t: &TaskView| -> Value {
        serde_json::from_str(
            t.result_value().unwrap()["result"]["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    };
    for (version, want) in [
        (
            2,
            json!({"atLoad": "hola", "env": {"GREETING": "hola", "N": "1"}}),
        ),
        (1, json!({"env": {}})),
        (
            2,
            json!({"atLoad": "hola", "env": {"GREETING": "hola", "N": "1"}}),
        ),
    ] {
        let (_, p) = invocation_with("envy", json!({"version": version}), "api", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        let t = finished(&emu, &id, 20).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
        assert_eq!(body(&t), want, "version {version}");
    }
    let (_, p) = invocation_with("envy", json!({"version": 3}), "api", json!({}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Failed);
    let e = t.error.unwrap_or_default();
    assert!(
        e.starts_with("BundleError: ") && e.contains("config.env.GREETING must be a string"),
        "{e}"
    );

    // The event's keys arrive in the producer's order (the payload written by hand: serde_json
    // values would sort them).
    let event = r#"{"zeta":{"y":1,"b":[{"d":1,"c":2}]},"alpha":true}"#;
    let (_, p) = invocation("echo", json!("EVENT"));
    let p = String::from_utf8(p).unwrap().replace(r#""EVENT""#, event);
    let id = emu.enqueue("cs.invoke", p.into_bytes(), EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    assert_eq!(t.result_value().unwrap()["result"]["body"], json!(event));
}

/// `cs.cadence.heartbeat()` extends the codeQ lease of the task now (a Heartbeat), only for a
/// cadence trigger; it counts in the ActivationRecord and in `cs_cadence_heartbeat_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadence_heartbeat_extends_the_lease_of_the_task() {
    let redis = server!();
    let mut raw = redis.raw();
    publish(
        &mut raw,
        "cadence",
        "export default async () => { \
           const sleep = (ms) => new Promise((r) => setTimeout(r, ms)); \
           let denied = null; \
           await sleep(700); \
           try { cs.cadence.heartbeat(); cs.cadence.heartbeat(); } catch (e) { denied = e.message; } \
           await sleep(900); \
           return { body: JSON.stringify({ denied }) }; };",
        10_000,
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    // A 30 s lease: the daemon's own heartbeats come every 10 s, so within this 1.6 s
    // activation only the function's can move the lease.
    let mut d = Daemon::start_opts(
        &emu,
        &redis,
        &Opts {
            worker_id: "w-cadence",
            lease_seconds: 30,
            ..Opts::default()
        },
    );
    d.wait_ready().await;

    let (aid, p) = invocation_with("cadence", json!({"alias": "prod"}), "cadence", json!({}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let claimed = emu
        .wait_for_task(&id, Duration::from_secs(20), |t| t.lease_until.is_some())
        .await
        .unwrap();
    let first = claimed.lease_until.unwrap();
    let moved = emu
        .wait_for_task(&id, Duration::from_secs(20), |t| {
            t.status.is_terminal() || t.lease_until.is_some_and(|l| l > first)
        })
        .await
        .unwrap();
    let second = moved
        .lease_until
        .unwrap_or_else(|| panic!("finished before any heartbeat: {moved:?}\n{}", d.log()));
    // Extended by the call made ~700 ms after the claim (the lease becomes now + lease).
    assert!(
        second.duration_since(first) >= Duration::from_millis(400),
        "lease moved by {:?}",
        second.duration_since(first)
    );
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    assert_eq!(
        t.result_value().unwrap()["result"]["body"],
        json!(r#"{"denied":null}"#)
    );
    let rec: Value = serde_json::from_str(
        &raw.get::<_, String>(format!("cs:act:{T}:{aid}:meta"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["host_calls"]["heartbeats"], json!(2), "{rec}");
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("\ncs_cadence_heartbeat_total 2\n"),
        "{metrics}"
    );

    // Any other trigger: denied with the capability error, which the function can catch.
    let (aid, p) = invocation_with("cadence", json!({"alias": "prod"}), "api", json!({}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    let body: Value = serde_json::from_str(
        t.result_value().unwrap()["result"]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let denied = body["denied"].as_str().unwrap_or_default();
    assert!(
        denied.starts_with("CS_RUNTIME_CAPABILITY_DENIED: cs.cadence.heartbeat"),
        "{body}"
    );
    let rec: Value = serde_json::from_str(
        &raw.get::<_, String>(format!("cs:act:{T}:{aid}:meta"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["host_calls"]["denied"], json!(1), "{rec}");
    assert!(rec["host_calls"].get("heartbeats").is_none(), "{rec}");
}
