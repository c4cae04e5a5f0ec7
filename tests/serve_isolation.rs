//! Tenant isolation and fairness through `serve` (issue 10): the daemon against the codeQ
//! emulator and a real `redis-server`. One tenant cannot run another's code, starve the
//! others, poison the shared codeQ streams, or make a task get stuck.

#[macro_use]
mod support;

use codeq_emulator::{Emulator, EnqueueOptions, TaskStatus};
use cs_invoker_pool::pipeline::Answer;
use cs_invoker_pool::queue::worker::{TaskHandler, TaskInfo, Worker, WorkerConfig};
use redis::Commands;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::serve::*;

fn record(raw: &mut redis::Connection, tenant: &str, aid: &str) -> Option<Value> {
    let s: Option<String> = raw.get(format!("cs:act:{tenant}:{aid}:meta")).unwrap();
    s.map(|s| serde_json::from_str(&s).unwrap())
}

/// #1: tenant `acme` with namespace `x/prod` and tenant `acme/x` with namespace `prod` joined
/// to the same string key; the second ran the first's bundle. Names now hold only
/// `[A-Za-z0-9._-]`: both requests are refused before anything is read or run, and names that
/// differ only where a separator could be are kept apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_alias_another_tenants_function() {
    let redis = server!();
    let mut raw = redis.raw();
    let who =
        "export default (e, ctx) => ({ body: ctx.tenant + '|' + ctx.namespace + '|' + OWNER });";
    for (tenant, ns, owner) in [
        ("acme", "x/prod", "first"),
        ("acme/x", "prod", "second"),
        ("acme", "x.prod", "third"),
        ("acme.x", "prod", "fourth"),
    ] {
        publish_as(
            &mut raw,
            tenant,
            ns,
            "pay",
            &format!("const OWNER = '{owner}'; {who}"),
            &manifest(5000, 1, json!({})),
        );
    }
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-names", "");
    d.wait_ready().await;

    let mut refused = Vec::new();
    for (tenant, ns) in [("acme", "x/prod"), ("acme/x", "prod")] {
        let (aid, p) = invocation_as(tenant, ns, "pay", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        refused.push((tenant, aid, id));
    }
    for (tenant, aid, id) in &refused {
        let t = finished(&emu, id, 20).await;
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        let e = t.error.unwrap_or_default();
        assert!(
            e.starts_with("validation failed:") && e.contains("[A-Za-z0-9._-]"),
            "{e}"
        );
        assert!(results_for(&emu, aid).is_empty(), "nothing ran");
        assert!(record(&mut raw, tenant, aid).is_none());
    }
    assert_eq!(emu.tasks("cs.dlq.invoke").len(), 2);

    // Dots are allowed, and `acme`+`x.prod` is not `acme.x`+`prod`.
    for (tenant, ns, owner) in [("acme", "x.prod", "third"), ("acme.x", "prod", "fourth")] {
        let (_, p) = invocation_as(tenant, ns, "pay", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        let t = finished(&emu, &id, 20).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
        assert_eq!(
            t.result_value().unwrap()["result"]["body"],
            json!(format!("{tenant}|{ns}|{owner}"))
        );
    }
}

/// #3: eight queued activations of a busy `maxConcurrency: 1` function on a replica with
/// `max_inflight: 4` used to hold every slot while they waited for their version; another
/// tenant's trivial call then waited seconds. A waiting activation now holds nothing shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_function_does_not_delay_another_tenants_call() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_as(
        &mut raw,
        "t_busy01",
        "jobs",
        "busy",
        "export default (e) => { const end = Date.now() + 600; while (Date.now() < end) {} return 'done'; };",
        &manifest(5000, 1, json!({})),
    );
    publish_as(
        &mut raw,
        "t_quick1",
        "web",
        "quick",
        "export default () => 'quick';",
        &manifest(5000, 4, json!({})),
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-fair", "");
    d.wait_ready().await;
    // Warm the quick function (bundle cache, a child bound to it).
    let (_, warm) = invocation_as("t_quick1", "web", "quick", json!({}));
    let warm = emu.enqueue("cs.invoke", warm, EnqueueOptions::default());
    assert_eq!(
        finished(&emu, &warm, 20).await.status,
        TaskStatus::Completed
    );

    let busy: Vec<String> = (0..8)
        .map(|_| {
            let (_, p) = invocation_as("t_busy01", "jobs", "busy", json!({}));
            emu.enqueue("cs.invoke", p, EnqueueOptions::default())
        })
        .collect();
    // Let the replica claim them: one runs, the rest wait for their version.
    assert!(
        emu.wait_until(Duration::from_secs(10), || {
            emu.tasks("cs.invoke")
                .iter()
                .filter(|t| busy.contains(&t.id) && t.status == TaskStatus::InProgress)
                .count()
                >= 5
        })
        .await,
        "the busy tasks are claimed\n{}",
        d.log()
    );
    let (aid, p) = invocation_as("t_quick1", "web", "quick", json!({}));
    let sent = Instant::now();
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    let took = sent.elapsed();
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    let rec = record(&mut raw, "t_quick1", &aid).unwrap();
    let wait_ms = rec["wait_ms"].as_u64().unwrap();
    assert!(wait_ms <= 20, "waited {wait_ms} ms for capacity: {rec}");
    assert!(
        took < Duration::from_millis(400),
        "answered after {took:?} while the busy function is saturated"
    );
    // The busy function still runs all of its tasks, one at a time.
    for b in &busy {
        let t = finished(&emu, b, 30).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    }
}

/// #2: a message codeQ refuses for its own content (here: over its 4 MiB limit, with the
/// invoker configured to believe the limit is higher) used to be re-sent by the producer's
/// outbox on every reconnection, failing every other tenant's publishes for good. It is now
/// given up: the function gets an error, everyone else's results keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_codeq_refuses_does_not_poison_the_producer_stream() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_as(
        &mut raw,
        "t_big001",
        "ns",
        "big",
        r#"export default () => {
             try { cs.codeq.publish("events.big", { blob: "y".repeat(5 << 20) }); return "sent"; }
             catch (e) { return "refused: " + e.message; }
           };"#,
        &manifest(10_000, 1, json!({"codeq": {"publishTopics": ["events.*"]}})),
    );
    publish(
        &mut raw,
        "hello",
        "export default (e) => ({ statusCode: 200, body: 'hi ' + e.name });",
        5000,
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start_opts(
        &emu,
        &redis,
        &Opts {
            worker_id: "w-poison",
            codeq_extra: "    max_message_bytes: 16777216\n",
            ..Opts::default()
        },
    );
    d.wait_ready().await;

    let (_, p) = invocation_as("t_big001", "ns", "big", json!({}));
    let big = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &big, 30).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    // The handler returned a string: the body is its JSON.
    let body: String = serde_json::from_str(
        t.result_value().unwrap()["result"]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body,
        "refused: cs.codeq.publish: the queue refused the message"
    );
    assert!(emu.tasks("events.big").is_empty());
    // Everyone else's results are published, several times over.
    for i in 0..5 {
        let (aid, p) = invocation("hello", json!({"name": i}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        assert_eq!(finished(&emu, &id, 20).await.status, TaskStatus::Completed);
        assert!(
            emu.wait_until(Duration::from_secs(10), || results_for(&emu, &aid).len()
                == 1)
                .await,
            "result {i} published\n{}",
            d.log()
        );
    }
    assert!(d.log().contains("that message is given up"), "{}", d.log());
}

/// #8: a task payload over the gRPC decode limit used to fail the worker stream, and the task
/// stayed IN_PROGRESS (redelivered to the same fate after each lease). It is now received,
/// answered FAILED and dead-lettered (bounded, with its size and sha256), and the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_task_is_answered_and_dead_lettered_not_lost() {
    let redis = server!();
    let mut raw = redis.raw();
    publish(
        &mut raw,
        "hello",
        "export default (e) => ({ statusCode: 200, body: 'hi ' + e.name });",
        5000,
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-oversized", "");
    d.wait_ready().await;
    let (_, p) = invocation("hello", json!({"name": "x".repeat(5 << 20)}));
    let size = p.len();
    let big = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &big, 20).await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}\n{}", d.log());
    let e = t.error.unwrap_or_default();
    assert!(
        e.starts_with("validation failed: payload of") && e.contains("max_task_bytes"),
        "{e}"
    );
    let dlq = emu.tasks("cs.dlq.invoke");
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0].payload.len() < 4 << 20,
        "{} bytes",
        dlq[0].payload.len()
    );
    let body = &dlq[0].payload_value().unwrap()["body"];
    assert_eq!(body["request_truncated"], json!(true));
    assert_eq!(body["request_bytes"], json!(size));
    assert_eq!(body["request_sha256"].as_str().unwrap().len(), 64);
    // The stream survived: the next task runs at once.
    let (_, p) = invocation("hello", json!({"name": "next"}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    assert_eq!(finished(&emu, &id, 10).await.status, TaskStatus::Completed);
    assert_eq!(emu.worker_streams_opened(), 1, "{}", d.log());
}

/// A handler that answers at once.
struct Instant0;

impl TaskHandler for Instant0 {
    async fn handle(&self, _task: TaskInfo) -> Answer {
        Answer::Failed {
            error: "handled".into(),
        }
    }
}

/// Issue 10, "drain drops a delivery": a worker told to drain while a task is being delivered
/// used to reset its stream with the delivery unread; the task then waited for its lease to
/// expire (and lost an attempt). Every task delivered during a drain is now Abandoned (back
/// to Pending at once) or handled — never left IN_PROGRESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_never_leaves_a_delivered_task_in_progress() {
    let mut cfg = emulator_config();
    cfg.ready_expiry = Duration::from_millis(300);
    let emu = Emulator::start(cfg).await.unwrap();
    for round in 0..12 {
        let mut wcfg = WorkerConfig::new(
            emu.worker_addr().to_string(),
            "worker-token",
            format!("w-drain-{round}"),
        );
        wcfg.lease_seconds = 30;
        wcfg.slots = 2;
        wcfg.ready_expiry = Duration::from_millis(300);
        let worker = Worker::start(wcfg, Arc::new(Instant0));
        worker.wait_connected(Duration::from_secs(5)).await.unwrap();
        // Idle, one Ready outstanding: a task and the drain arrive together.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let id = emu.enqueue("cs.invoke", b"{}".to_vec(), EnqueueOptions::default());
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(round as u64)).await;
        }
        worker.shutdown(Duration::from_secs(3));
        tokio::time::timeout(Duration::from_secs(10), worker.join())
            .await
            .expect("the worker finishes its drain");
        let t = emu.task(&id).unwrap();
        assert!(
            matches!(t.status, TaskStatus::Pending | TaskStatus::Failed),
            "round {round}: {t:?}"
        );
        if t.status == TaskStatus::Pending {
            assert_eq!(
                t.attempts, 0,
                "round {round}: an abandon costs no attempt: {t:?}"
            );
        }
        // Consume it so the next round starts with an empty queue.
        if t.status == TaskStatus::Pending {
            let mut wcfg = WorkerConfig::new(
                emu.worker_addr().to_string(),
                "worker-token",
                format!("w-sweep-{round}"),
            );
            wcfg.ready_expiry = Duration::from_millis(300);
            let sweeper = Worker::start(wcfg, Arc::new(Instant0));
            emu.wait_for_status(&id, TaskStatus::Failed, Duration::from_secs(5))
                .await
                .unwrap();
            sweeper.shutdown(Duration::from_millis(100));
            sweeper.join().await;
        }
    }
}

/// Low: an address the gRPC client cannot use at all is a refusal (a configuration error that
/// stops `serve`), not an outage to wait out; a silent address is an outage. Decided on the
/// error's type, not on the words of its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_codeq_address_is_a_refusal_not_an_outage() {
    use cs_invoker_pool::queue::producer::{ProducerClient, ProducerConfig};
    use cs_invoker_pool::queue::WaitError;
    let wait = Duration::from_secs(2);
    let p = ProducerClient::start(ProducerConfig::new("bad host:9092", "t"));
    assert!(
        matches!(p.wait_connected(wait).await, Err(WaitError::Refused(m)) if m.contains("bad producer address"))
    );
    let w = Worker::start(
        WorkerConfig::new("bad host:9091", "t", "w-bad-addr"),
        Arc::new(Instant0),
    );
    assert!(
        matches!(w.wait_connected(wait).await, Err(WaitError::Refused(m)) if m.contains("bad worker address"))
    );
    let silent = format!("127.0.0.1:{}", free_port());
    let p = ProducerClient::start(ProducerConfig::new(silent, "t"));
    assert!(matches!(
        p.wait_connected(Duration::from_millis(500)).await,
        Err(WaitError::Unreachable(_))
    ));
}
