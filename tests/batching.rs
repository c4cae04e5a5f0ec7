//! Batched answers and publishes against the codeQ emulator over real gRPC: Results that are
//! ready together go out as `ResultBatch`es, creates queued together as `CreateTaskBatch`es.
//! The emulator acks each event after a random delay (`handler_jitter`), so batches are
//! answered out of order, and codeQ's 4 MiB message limit is enforced as codeQ does (a larger
//! message fails the stream).
//!
//! The tests run on one thread (tokio's current-thread runtime): tasks woken together all run
//! before the stream's task does, so what is "ready at the same moment" is deterministic.

use codeq_emulator::{Emulator, EmulatorConfig, EnqueueOptions, TaskStatus};
use cs_invoker_pool::pipeline::Answer;
use cs_invoker_pool::queue::producer::{ProducerClient, ProducerConfig};
use cs_invoker_pool::queue::worker::{TaskHandler, TaskInfo, Worker, WorkerConfig};
use sandbox_proto::messages::{InvocationResult, Status};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn emulator_config() -> EmulatorConfig {
    let mut c = EmulatorConfig::fast();
    c.handler_jitter = Duration::from_millis(5);
    c
}

/// Holds every task until `n` have arrived, then answers them all at once (so their answers
/// are ready together): `fail` FAILED, `lose` after its lease expired (it allows one attempt,
/// so codeQ dead-letters it and refuses its answer), the rest COMPLETED.
struct Together {
    emu: Arc<Emulator>,
    gate: tokio::sync::Barrier,
    fail: String,
    lose: String,
}

impl TaskHandler for Together {
    async fn handle(&self, task: TaskInfo) -> Answer {
        let name = String::from_utf8_lossy(&task.payload).into_owned();
        if name == self.lose {
            self.emu.expire_lease(&task.id);
            let emu = self.emu.clone();
            let id = task.id.clone();
            let lost = emu
                .wait_until(Duration::from_secs(10), || {
                    emu.task(&id).is_some_and(|t| t.status == TaskStatus::Dlq)
                })
                .await;
            assert!(lost, "the emulator did not dead-letter the expired task");
        }
        self.gate.wait().await;
        if name == self.fail {
            return Answer::Failed {
                error: "Error: boom".into(),
            };
        }
        Answer::Completed(InvocationResult {
            activation_id: name.clone(),
            request_id: format!("req-{name}"),
            status: Status::Success,
            duration_ms: 1,
            result: None,
            error: None,
        })
    }
}

#[tokio::test]
async fn results_ready_together_go_in_batches_and_a_refused_one_only_drops_itself() {
    let emu = Arc::new(Emulator::start(emulator_config()).await.expect("emulator"));
    let n = 40;
    let names: Vec<String> = (0..n).map(|i| format!("task-{i:02}")).collect();
    let ids: HashMap<String, String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let opts = EnqueueOptions {
                max_attempts: if i == 23 { 1 } else { 5 },
                ..EnqueueOptions::default()
            };
            let id = emu.enqueue("cs.invoke", name.as_bytes(), opts);
            (name.clone(), id)
        })
        .collect();
    let handler = Arc::new(Together {
        emu: emu.clone(),
        gate: tokio::sync::Barrier::new(n),
        fail: names[7].clone(),
        lose: names[23].clone(),
    });
    let mut cfg = WorkerConfig::new(emu.worker_url(), "worker-token", "batch-worker");
    cfg.slots = n;
    cfg.lease_seconds = 30;
    let worker = Worker::start(cfg, handler);
    for name in &names {
        let id = &ids[name];
        let want = if *name == names[7] {
            TaskStatus::Failed
        } else if *name == names[23] {
            TaskStatus::Dlq
        } else {
            TaskStatus::Completed
        };
        let t = emu
            .wait_for_status(id, want, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if want == TaskStatus::Failed {
            assert_eq!(t.error.as_deref(), Some("Error: boom"));
        } else if want == TaskStatus::Completed {
            let json: serde_json::Value =
                serde_json::from_slice(t.result_json.as_deref().unwrap_or_default())
                    .expect("result_json");
            // Each task got its own result, not a neighbour's from the same batch.
            assert_eq!(json["activation_id"], name.as_str(), "{name}");
        }
    }
    // The lost task's answer, inside the batch, was refused; the others were not.
    let c = worker.counters();
    assert!(
        emu.wait_until(Duration::from_secs(5), || c
            .answers_refused
            .load(Ordering::Relaxed)
            == 1)
            .await,
        "refused answers: {}",
        c.answers_refused.load(Ordering::Relaxed)
    );
    assert_eq!(c.completed.load(Ordering::Relaxed), n as u64 - 1);
    assert_eq!(c.failed.load(Ordering::Relaxed), 1);
    // The 40 answers went out in far fewer messages than answers.
    let events = c.answer_events.load(Ordering::Relaxed);
    assert!(events <= 4, "{events} answer events for {n} answers");
    worker.shutdown(Duration::from_secs(1));
    worker.join().await;
}

#[tokio::test]
async fn concurrent_publishes_are_batched_and_each_gets_its_own_ack() {
    let emu = Emulator::start(emulator_config()).await.expect("emulator");
    let producer = Arc::new(ProducerClient::start(ProducerConfig::new(
        emu.producer_url(),
        "producer-token",
    )));
    producer
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connected");
    let before = emu.messages_received();
    let n = 300;
    let mut handles = Vec::new();
    for i in 0..n {
        let p = producer.clone();
        handles.push(tokio::spawn(async move {
            // One create in the batch is refused by codeQ (no command): only it fails.
            let command = if i == 150 { "   " } else { "cs.results" };
            let payload = format!("{{\"n\":{i}}}").into_bytes();
            (i, p.create(command, payload, Some(format!("k-{i}"))).await)
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        let (i, r) = h.await.expect("join");
        if i == 150 {
            let e = r.expect_err("the create without a command is refused");
            assert!(!e.transient, "{e:?}");
            assert!(e.message.contains("command is required"), "{}", e.message);
            continue;
        }
        let id = r.unwrap_or_else(|e| panic!("create {i}: {e:?}"));
        // The ack matched by seq: the task id it carries is this create's task.
        let t = emu.task(&id).expect("task");
        assert_eq!(t.payload, format!("{{\"n\":{i}}}").into_bytes());
        assert_eq!(
            t.idempotency_key.as_deref(),
            Some(format!("k-{i}").as_str())
        );
        assert!(seen.insert(id), "two creates got the same task");
    }
    let msgs = emu.messages_received() - before;
    assert!(msgs < n as u64 / 2, "{msgs} messages for {n} creates");
}

#[tokio::test]
async fn a_batch_is_split_below_codeq_s_message_limit() {
    let emu = Emulator::start(emulator_config()).await.expect("emulator");
    let producer = Arc::new(ProducerClient::start(ProducerConfig::new(
        emu.producer_url(),
        "producer-token",
    )));
    producer
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connected");
    // Six creates of 1.5 MiB at once: 9 MiB in all, 4 MiB per message at most. One batch of
    // them all would fail the stream (and one create would be given up as poison).
    let mut handles = Vec::new();
    for i in 0..6u8 {
        let p = producer.clone();
        handles.push(tokio::spawn(async move {
            let payload = vec![b'a' + i; 3 << 19];
            (i, p.create("cs.results", payload, None).await)
        }));
    }
    for h in handles {
        let (i, r) = h.await.expect("join");
        let id = r.unwrap_or_else(|e| panic!("create {i}: {e:?}"));
        let t = emu.task(&id).expect("task");
        assert_eq!(t.payload.len(), 3 << 19);
        assert!(t.payload.iter().all(|b| *b == b'a' + i));
    }
    assert_eq!(producer.counters().poisoned.load(Ordering::Relaxed), 0);
    assert_eq!(emu.producer_streams_opened(), 1, "the stream never failed");
}
