//! The emulator driven by real tonic clients over real gRPC on 127.0.0.1.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use codeq_emulator::pb::producerpb;
use codeq_emulator::pb::workerpb::{self, server_event::Event as WOut, worker_event::Event as WIn};
use codeq_emulator::{
    Emulator, EmulatorConfig, EnqueueOptions, Listen, ProducerGrant, TaskStatus, WorkerGrant,
    DEFAULT_PRODUCER_TOKEN as PT, DEFAULT_TENANT, DEFAULT_WORKER_TOKEN as WT,
};
use support::{create, Producer, Worker, LONG, SHORT};
use tonic::Code;

const CMD: &str = "cs.invoke";

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

async fn worker(emu: &Emulator, id: &str) -> Worker {
    Worker::connect(&emu.worker_url(), WT, id)
        .await
        .expect("worker handshake")
}

fn opts() -> EnqueueOptions {
    EnqueueOptions::default()
}

#[tokio::test]
async fn worker_handshake_statuses() {
    let config = EmulatorConfig::fast()
        .with_denied_token("revoked")
        .with_worker_token("w-b", WorkerGrant::only("tenant-b", ["x"]));
    let emu = start(config).await;
    let url = emu.worker_url();

    let ok = Worker::connect(&url, WT, "w1").await.expect("good token");
    assert_eq!(ok.hello.worker_id, "w1");
    assert_eq!(ok.hello.tenant_id, DEFAULT_TENANT);
    // Empty worker_id: the token's subject stands in, as in codeQ.
    let anon = Worker::connect(&url, "w-b", "").await.expect("good token");
    assert_eq!(anon.hello.worker_id, "worker-subject");
    assert_eq!(anon.hello.tenant_id, "tenant-b");

    let code = |r: Result<Worker, tonic::Status>| r.err().map(|s| s.code());
    assert_eq!(
        code(Worker::connect(&url, "nope", "w").await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(Worker::connect(&url, "", "w").await),
        Some(Code::Unauthenticated)
    );
    // "Bearer " is not stripped: the token is raw.
    assert_eq!(
        code(Worker::connect(&url, &format!("Bearer {WT}"), "w").await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(Worker::connect(&url, "revoked", "w").await),
        Some(Code::PermissionDenied)
    );
    // A producer token lacks worker permission.
    assert_eq!(
        code(Worker::connect(&url, PT, "w").await),
        Some(Code::PermissionDenied)
    );
    let not_hello = WIn::Ready(workerpb::Ready {
        commands: vec![CMD.into()],
        lease_seconds: 10,
        count: 1,
    });
    assert_eq!(
        code(Worker::connect_with_first(&url, not_hello).await),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(emu.worker_streams_opened(), 2);
}

#[tokio::test]
async fn producer_handshake_statuses() {
    let emu = start(EmulatorConfig::fast().with_denied_token("revoked")).await;
    let url = emu.producer_url();
    let ok = Producer::connect(&url, PT).await.expect("good token");
    assert_eq!(ok.hello.tenant_id, DEFAULT_TENANT);
    assert_eq!(ok.hello.subject, "producer-subject");

    let code = |r: Result<Producer, tonic::Status>| r.err().map(|s| s.code());
    assert_eq!(
        code(Producer::connect(&url, "nope").await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(Producer::connect(&url, WT).await),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(Producer::connect(&url, "revoked").await),
        Some(Code::PermissionDenied)
    );
    let not_hello = producerpb::producer_event::Event::Create(create(1, CMD, "{}", 0));
    assert_eq!(
        code(Producer::connect_with_first(&url, not_hello).await),
        Some(Code::FailedPrecondition)
    );
}

#[tokio::test]
async fn protocol_errors_arrive_as_server_errors() {
    let config = EmulatorConfig::fast()
        .with_worker_token("only-x", WorkerGrant::only(DEFAULT_TENANT, ["x"]));
    let emu = start(config).await;
    let mut w = Worker::connect(&emu.worker_url(), "only-x", "w")
        .await
        .unwrap();
    w.ready(&["y"], 10, 1).await;
    match w.expect(LONG).await {
        WOut::Error(e) => {
            assert_eq!(e.code, "PermissionDenied");
            assert_eq!(e.message, "event type not allowed");
        }
        other => panic!("expected ServerError, got {other:?}"),
    }
    w.send(WIn::Hello(workerpb::Hello {
        token: "only-x".into(),
        worker_id: "w".into(),
    }))
    .await;
    match w.expect(LONG).await {
        WOut::Error(e) => {
            assert_eq!(e.code, "FailedPrecondition");
            assert_eq!(e.message, "already-authenticated");
        }
        other => panic!("expected ServerError, got {other:?}"),
    }
}

#[tokio::test]
async fn ready_expires_silently_and_a_new_ready_gets_a_later_task() {
    let mut config = EmulatorConfig::fast();
    config.ready_expiry = Duration::from_millis(200);
    let emu = start(config).await;
    let mut w = worker(&emu, "w1").await;

    w.ready(&[CMD], 30, 1).await;
    assert!(
        emu.wait_until(LONG, || emu.waiting_ready_polls() == 1)
            .await
    );
    // Expiry sends nothing at all.
    w.expect_silence(Duration::from_millis(400)).await;
    assert_eq!(emu.expired_ready_polls(), 1);
    assert_eq!(emu.waiting_ready_polls(), 0);

    // No Ready outstanding: an enqueued task is not pushed.
    let id = emu.enqueue(CMD, r#"{"n":1}"#, opts());
    w.expect_silence(SHORT).await;
    assert_eq!(emu.task(&id).unwrap().status, TaskStatus::Pending);

    w.ready(&[CMD], 30, 1).await;
    let task = w.expect_task().await;
    assert_eq!(task.id, id);
    assert_eq!(task.status, "IN_PROGRESS");
    assert_eq!(task.worker_id, "w1");
    assert_eq!(task.tenant_id, DEFAULT_TENANT);
    assert_eq!(task.payload, br#"{"n":1}"#);
    assert!(task.lease_until.ends_with('Z'), "{}", task.lease_until);
    assert!(task.created_at.is_some());

    // A waiting Ready is woken by an enqueue, well before its expiry.
    w.ready(&[CMD], 30, 1).await;
    assert!(
        emu.wait_until(LONG, || emu.waiting_ready_polls() == 1)
            .await
    );
    let started = Instant::now();
    let id2 = emu.enqueue(CMD, "{}", opts());
    assert_eq!(w.expect_task().await.id, id2);
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn ready_count_picks_assignment_or_batch() {
    let emu = start(EmulatorConfig::fast()).await;
    let mut w = worker(&emu, "w1").await;
    for i in 0..5 {
        emu.enqueue(CMD, format!(r#"{{"i":{i}}}"#), opts());
    }
    w.ready(&[CMD], 30, 3).await;
    assert_eq!(w.expect_batch().await.len(), 3);
    // Fewer available than asked: a shorter batch, at once.
    w.ready(&[CMD], 30, 10).await;
    assert_eq!(w.expect_batch().await.len(), 2);
    // count 1 and count 0 both mean one TaskAssignment.
    emu.enqueue(CMD, "{}", opts());
    emu.enqueue(CMD, "{}", opts());
    w.ready(&[CMD], 30, 1).await;
    w.expect_task().await;
    w.ready(&[CMD], 30, 0).await;
    w.expect_task().await;
    // An empty queue with count > 1: the batch waits for the first task, then carries 1.
    w.ready(&[CMD], 30, 4).await;
    assert!(
        emu.wait_until(LONG, || emu.waiting_ready_polls() == 1)
            .await
    );
    emu.enqueue(CMD, "{}", opts());
    assert_eq!(w.expect_batch().await.len(), 1);
    // Other commands are not claimed.
    emu.enqueue("other", "{}", opts());
    w.ready(&[CMD], 30, 1).await;
    w.expect_silence(Duration::from_millis(450)).await;
}

#[tokio::test]
async fn result_acks_come_out_of_order_with_exact_errors() {
    let mut config = EmulatorConfig::fast();
    config.handler_jitter = Duration::from_millis(40);
    let emu = start(config).await;
    let mut w = worker(&emu, "w1").await;
    let mut other = worker(&emu, "w2").await;

    let ids: Vec<String> = (0..12).map(|_| emu.enqueue(CMD, "{}", opts())).collect();
    w.ready(&[CMD], 30, 12).await;
    let batch = w.expect_batch().await;
    assert_eq!(batch.len(), 12);
    let foreign = emu.enqueue(CMD, "{}", opts());
    other.ready(&[CMD], 30, 1).await;
    assert_eq!(other.expect_task().await.id, foreign);

    // Eight good results, then the bad ones, all pipelined.
    for id in &ids[..8] {
        w.complete(id, r#"{"statusCode":200}"#).await;
    }
    w.complete(&ids[8], "").await;
    w.complete(&ids[9], "[1,2]").await;
    w.complete(&ids[10], "null").await;
    w.fail(&ids[11], "  ").await;
    w.complete("no-such-task", "{}").await;
    w.complete(&foreign, "{}").await;
    w.send(WIn::Result(workerpb::Result {
        task_id: ids[11].clone(),
        status: "DONE".into(),
        result_json: Vec::new(),
        error: String::new(),
    }))
    .await;

    let mut order = Vec::new();
    let mut acks: HashMap<String, Vec<workerpb::ResultAck>> = HashMap::new();
    for _ in 0..15 {
        let ack = w.expect_result_ack().await;
        order.push(ack.task_id.clone());
        acks.entry(ack.task_id.clone()).or_default().push(ack);
    }
    let sent: Vec<String> = ids[..8].to_vec();
    let got_good: Vec<String> = order
        .iter()
        .filter(|id| sent.contains(id))
        .cloned()
        .collect();
    assert_ne!(got_good, sent, "acks should not all arrive in send order");
    for id in &ids[..8] {
        assert!(acks[id][0].ok, "{:?}", acks[id]);
    }
    let err = |id: &str| acks[id][0].error_message.clone();
    assert_eq!(err(&ids[8]), "result required when status=COMPLETED");
    assert_eq!(err(&ids[9]), "invalid result_json");
    assert_eq!(err(&ids[10]), "result required when status=COMPLETED");
    assert_eq!(err("no-such-task"), "task not found");
    assert_eq!(err(&foreign), "not-owner");
    let mut eleven: Vec<String> = acks[&ids[11]]
        .iter()
        .map(|a| a.error_message.clone())
        .collect();
    eleven.sort();
    assert_eq!(
        eleven,
        vec![
            "error required when status=FAILED".to_string(),
            r#"invalid status (must be COMPLETED or FAILED): "DONE""#.to_string(),
        ]
    );

    // A second result for a completed task.
    w.complete(&ids[0], "{}").await;
    assert_eq!(w.expect_result_ack().await.error_message, "not-in-progress");
    let done = emu.task(&ids[0]).unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.result_value().unwrap()["statusCode"], 200);

    // FAILED is terminal: never delivered again.
    w.fail(&ids[11], "TimeoutError: too slow").await;
    assert!(w.expect_result_ack().await.ok);
    let failed = emu.task(&ids[11]).unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("TimeoutError: too slow"));
    // The rejected ones are still in progress; ResultBatch acks come back in order.
    w.send(WIn::ResultBatch(workerpb::ResultBatch {
        results: vec![
            workerpb::Result {
                task_id: ids[8].clone(),
                status: "COMPLETED".into(),
                result_json: b"{}".to_vec(),
                error: String::new(),
            },
            workerpb::Result {
                task_id: ids[11].clone(),
                status: "COMPLETED".into(),
                result_json: b"{}".to_vec(),
                error: String::new(),
            },
        ],
    }))
    .await;
    match w.expect(LONG).await {
        WOut::ResultAckBatch(b) => {
            assert_eq!(b.acks.len(), 2);
            assert!(b.acks[0].ok);
            assert_eq!(b.acks[0].task_id, ids[8]);
            assert_eq!(b.acks[1].error_message, "not-in-progress");
        }
        other => panic!("expected ResultAckBatch, got {other:?}"),
    }
}

#[tokio::test]
async fn lease_expiry_requeues_counts_an_attempt_then_dead_letters() {
    let mut config = EmulatorConfig::fast();
    config.second = Duration::from_millis(100);
    let emu = start(config).await;
    let mut w = worker(&emu, "w1").await;
    let id = emu.enqueue(
        CMD,
        "{}",
        EnqueueOptions {
            max_attempts: 2,
            ..opts()
        },
    );
    w.ready(&[CMD], 1, 1).await;
    let first = w.expect_task().await;
    assert_eq!(first.attempts, 0);
    let requeued = emu
        .wait_for_task(&id, LONG, |t| t.status == TaskStatus::Pending)
        .await
        .unwrap();
    assert_eq!(requeued.attempts, 1);
    assert_eq!(requeued.worker_id, None);

    w.ready(&[CMD], 1, 1).await;
    let second = w.expect_task().await;
    assert_eq!(second.id, id);
    assert_eq!(second.attempts, 1);
    assert_eq!(emu.task(&id).unwrap().deliveries, 2);
    // A result after the lease ran out is refused.
    let dead = emu
        .wait_for_status(&id, TaskStatus::Dlq, LONG)
        .await
        .unwrap();
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.error.as_deref(), Some("LEASE_EXPIRED"));
    w.complete(&id, "{}").await;
    assert_eq!(w.expect_result_ack().await.error_message, "not-in-progress");
}

#[tokio::test]
async fn nack_backs_off_and_dead_letters_at_max_attempts() {
    let mut config = EmulatorConfig::fast();
    config.second = Duration::from_millis(50);
    config.backoff_base_seconds = 1;
    config.backoff_max_seconds = 3;
    let emu = start(config).await;
    let mut w = worker(&emu, "w1").await;
    let id = emu.enqueue(
        CMD,
        "{}",
        EnqueueOptions {
            max_attempts: 4,
            ..opts()
        },
    );

    // Server backoff (delay 0): 1, then 2 wire seconds.
    for (attempt, expected_delay) in [(1, 1), (2, 2)] {
        w.ready(&[CMD], 30, 1).await;
        assert_eq!(w.expect_task().await.id, id);
        w.nack(&id, 0, "kv unreachable").await;
        let ack = w.expect_nack_ack().await;
        assert!(ack.ok, "{ack:?}");
        assert!(!ack.dlq);
        assert_eq!(ack.applied_delay_seconds, expected_delay);
        let t = emu.task(&id).unwrap();
        assert_eq!(t.attempts, attempt);
        assert_eq!(t.status, TaskStatus::Pending);
        assert!(t.visible_at.is_some());
    }
    // A client delay is honoured (and capped at the backoff maximum).
    w.ready(&[CMD], 30, 1).await;
    w.expect_task().await;
    w.nack(&id, 60, "later").await;
    assert_eq!(w.expect_nack_ack().await.applied_delay_seconds, 3);
    let nacked_at = Instant::now();
    w.ready(&[CMD], 30, 1).await;
    assert_eq!(w.expect_task().await.id, id);
    assert!(nacked_at.elapsed() >= Duration::from_millis(140));

    // The fourth failed attempt dead-letters.
    w.nack(&id, 0, "").await;
    let ack = w.expect_nack_ack().await;
    assert!(ack.ok && ack.dlq, "{ack:?}");
    let t = emu.task(&id).unwrap();
    assert_eq!(t.status, TaskStatus::Dlq);
    assert_eq!(t.attempts, 4);
    assert_eq!(t.error.as_deref(), Some("MAX_ATTEMPTS"));
    assert_eq!(
        t.nack_reasons,
        vec!["kv unreachable", "kv unreachable", "later"]
    );

    // Acks for tasks that are gone or not ours.
    w.nack(&id, 0, "").await;
    assert_eq!(w.expect_nack_ack().await.error_message, "not-owner");
    w.nack("missing", 0, "").await;
    assert_eq!(w.expect_nack_ack().await.error_message, "not-found");
    w.ready(&[CMD], 30, 1).await;
    w.expect_silence(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn heartbeat_keeps_a_task_leased_past_its_first_lease() {
    let mut config = EmulatorConfig::fast();
    config.second = Duration::from_millis(100);
    let emu = start(config).await;
    let mut w = worker(&emu, "w1").await;
    let mut other = worker(&emu, "w2").await;
    let id = emu.enqueue(CMD, "{}", opts());
    w.ready(&[CMD], 2, 1).await;
    w.expect_task().await;
    let first_lease = emu.task(&id).unwrap().lease_until.unwrap();

    // Six heartbeats of now+300 ms, 100 ms apart: 600 ms, three times the first lease.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.heartbeat(&id, 3).await;
        let ack = w.expect_heartbeat_ack().await;
        assert!(ack.ok, "{ack:?}");
        assert_eq!(ack.task_id, id);
    }
    assert!(Instant::now() > first_lease + Duration::from_millis(300));
    let t = emu.task(&id).unwrap();
    assert_eq!(t.status, TaskStatus::InProgress);
    assert_eq!(t.attempts, 0);
    assert!(t.lease_until.unwrap() > first_lease);

    other.heartbeat(&id, 3).await;
    assert_eq!(
        other.expect_heartbeat_ack().await.error_message,
        "not-owner"
    );
    other.heartbeat("missing", 3).await;
    assert_eq!(
        other.expect_heartbeat_ack().await.error_message,
        "not-found"
    );

    // Without heartbeats the lease runs out.
    let t = emu
        .wait_for_status(&id, TaskStatus::Pending, LONG)
        .await
        .unwrap();
    assert_eq!(t.attempts, 1);
    w.complete(&id, "{}").await;
    assert_eq!(w.expect_result_ack().await.error_message, "not-in-progress");
}

#[tokio::test]
async fn abandon_returns_the_task_at_once_without_an_attempt() {
    let emu = start(EmulatorConfig::fast()).await;
    let mut a = worker(&emu, "a").await;
    let mut b = worker(&emu, "b").await;
    let id = emu.enqueue(CMD, "{}", opts());
    a.ready(&[CMD], 30, 1).await;
    a.expect_task().await;
    b.abandon(&id).await;
    assert_eq!(b.expect_abandon_ack().await.error_message, "not-owner");
    a.abandon(&id).await;
    assert!(a.expect_abandon_ack().await.ok);
    let t = emu.task(&id).unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0));
    b.ready(&[CMD], 30, 1).await;
    assert_eq!(b.expect_task().await.worker_id, "b");
    a.abandon(&id).await;
    assert_eq!(a.expect_abandon_ack().await.error_message, "not-owner");
}

#[tokio::test]
async fn producer_idempotency_key_dedups_and_acks_by_seq() {
    let emu = start(EmulatorConfig::fast()).await;
    let mut p = Producer::connect(&emu.producer_url(), PT).await.unwrap();
    let keyed = |seq| producerpb::CreateTask {
        idempotency_key: "result:act-1".into(),
        ..create(seq, "cs.results", r#"{"status":"success"}"#, 0)
    };
    p.create(keyed(7)).await;
    p.create(keyed(8)).await;
    p.create(create(9, "", "{}", 0)).await;
    p.create(producerpb::CreateTask {
        delay_seconds: -1,
        ..create(10, CMD, "{}", 0)
    })
    .await;
    let mut acks = HashMap::new();
    for _ in 0..4 {
        let ack = p.expect_create_ack().await;
        acks.insert(ack.seq, ack);
    }
    assert!(acks[&7].ok && acks[&8].ok);
    assert_eq!(acks[&7].task_id, acks[&8].task_id);
    assert_eq!(acks[&9].error_message, "command is required");
    assert_eq!(acks[&10].error_message, "delaySeconds must be >= 0");
    let tasks = emu.tasks("cs.results");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].tenant_id, DEFAULT_TENANT);
    assert_eq!(tasks[0].idempotency_key.as_deref(), Some("result:act-1"));
    // Also through the helper, and still after the task completed.
    let same = emu.enqueue(
        "cs.results",
        "{}",
        EnqueueOptions {
            idempotency_key: Some("result:act-1".into()),
            ..opts()
        },
    );
    assert_eq!(same, acks[&7].task_id);

    // A batch is acked as one CreateAckBatch, in order.
    p.send(producerpb::producer_event::Event::CreateBatch(
        producerpb::CreateTaskBatch {
            tasks: vec![create(20, CMD, "{}", 0), keyed(21), create(22, CMD, "", 0)],
        },
    ))
    .await;
    match p.expect().await {
        producerpb::server_event::Event::CreateAckBatch(b) => {
            let seqs: Vec<u64> = b.acks.iter().map(|a| a.seq).collect();
            assert_eq!(seqs, vec![20, 21, 22]);
            assert!(b.acks.iter().all(|a| a.ok));
            assert_eq!(b.acks[1].task_id, acks[&7].task_id);
            // An empty payload is stored as JSON null, as codeQ does.
            assert_eq!(emu.task(&b.acks[2].task_id).unwrap().payload, b"null");
        }
        other => panic!("expected CreateAckBatch, got {other:?}"),
    }
    assert_eq!(emu.tasks(CMD).len(), 2);
}

#[tokio::test]
async fn claims_go_by_priority_then_fifo() {
    let emu = start(EmulatorConfig::fast()).await;
    let mut p = Producer::connect(&emu.producer_url(), PT).await.unwrap();
    let spec = [
        ("a", 1),
        ("b", 5),
        ("c", 1),
        ("d", 5),
        ("e", 9),
        ("f", 0),
        ("g", 42),
    ];
    let mut ids = HashMap::new();
    for (seq, (name, prio)) in spec.iter().enumerate() {
        // One at a time, so creation order is the FIFO order.
        p.create(create(seq as u64, CMD, &format!(r#""{name}""#), *prio))
            .await;
        let ack = p.expect_create_ack().await;
        ids.insert(ack.task_id, *name);
    }
    let mut w = worker(&emu, "w1").await;
    // Priority is clamped to 0..=9: "g" (42) ranks with "e" (9), after it.
    w.ready(&[CMD], 30, 4).await;
    let first: Vec<&str> = w.expect_batch().await.iter().map(|t| ids[&t.id]).collect();
    assert_eq!(first, vec!["e", "g", "b", "d"]);
    let mut rest = Vec::new();
    for _ in 0..3 {
        w.ready(&[CMD], 30, 1).await;
        rest.push(ids[&w.expect_task().await.id]);
    }
    assert_eq!(rest, vec!["a", "c", "f"]);
}

#[tokio::test]
async fn delay_and_run_at_hold_tasks_back() {
    let mut config = EmulatorConfig::fast();
    config.second = Duration::from_millis(100);
    let emu = start(config).await;
    let mut p = Producer::connect(&emu.producer_url(), PT).await.unwrap();
    let created = Instant::now();
    p.create(producerpb::CreateTask {
        delay_seconds: 3,
        ..create(1, CMD, r#""delayed""#, 9)
    })
    .await;
    let delayed = p.expect_create_ack().await.task_id;
    let run_at = SystemTime::now() + Duration::from_millis(500);
    let secs = run_at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    p.create(producerpb::CreateTask {
        run_at: Some(prost_types::Timestamp {
            seconds: secs.as_secs() as i64,
            nanos: secs.subsec_nanos() as i32,
        }),
        ..create(2, CMD, r#""scheduled""#, 9)
    })
    .await;
    let scheduled = p.expect_create_ack().await.task_id;
    let now_id = emu.enqueue(CMD, r#""now""#, opts());

    let mut w = worker(&emu, "w1").await;
    w.ready(&[CMD], 30, 1).await;
    assert_eq!(w.expect_task().await.id, now_id);
    w.ready(&[CMD], 30, 1).await;
    assert_eq!(w.expect_task().await.id, delayed);
    assert!(created.elapsed() >= Duration::from_millis(290));
    w.ready(&[CMD], 30, 1).await;
    assert_eq!(w.expect_task().await.id, scheduled);
    assert!(created.elapsed() >= Duration::from_millis(490));
}

#[tokio::test]
async fn reconnecting_with_the_same_worker_id_keeps_the_lease() {
    let emu = start(EmulatorConfig::fast()).await;
    let id = emu.enqueue(CMD, "{}", opts());
    let other_id = emu.enqueue(CMD, "{}", opts());
    {
        let mut w = worker(&emu, "w-stable").await;
        w.ready(&[CMD], 30, 2).await;
        assert_eq!(w.expect_batch().await.len(), 2);
    } // stream dropped: no cleanup.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(emu.task(&id).unwrap().status, TaskStatus::InProgress);

    let mut stranger = worker(&emu, "w-other").await;
    stranger.complete(&id, "{}").await;
    assert_eq!(
        stranger.expect_result_ack().await.error_message,
        "not-owner"
    );

    let mut again = worker(&emu, "w-stable").await;
    again.complete(&id, r#"{"ok":true}"#).await;
    assert!(again.expect_result_ack().await.ok);
    assert_eq!(emu.task(&id).unwrap().status, TaskStatus::Completed);
    again.heartbeat(&other_id, 30).await;
    assert!(again.expect_heartbeat_ack().await.ok);
}

#[tokio::test]
async fn restart_on_the_same_port_keeps_tasks_and_leases() {
    let mut emu = start(EmulatorConfig::fast()).await;
    let addr = emu.addr();
    let id = emu.enqueue(CMD, "{}", opts());
    let mut w = worker(&emu, "w1").await;
    w.ready(&[CMD], 30, 1).await;
    w.expect_task().await;
    // A Ready left waiting when the server goes away.
    w.ready(&[CMD], 30, 1).await;

    emu.shutdown().await;
    assert!(!emu.is_running());
    match w.next_raw(LONG).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable),
        Some(Ok(None)) => {}
        other => panic!("expected the stream to end, got {other:?}"),
    }
    assert!(Worker::connect(&emu.worker_url(), WT, "w1").await.is_err());

    emu.restart().await.unwrap();
    assert_eq!(emu.addr(), addr);
    let mut w = worker(&emu, "w1").await;
    w.complete(&id, "{}").await;
    assert!(w.expect_result_ack().await.ok);
    assert_eq!(emu.worker_streams_opened(), 2);
}

#[tokio::test]
async fn split_addresses_serve_one_stream_each() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = EmulatorConfig {
        listen: Listen::Split {
            worker: any,
            producer: any,
        },
        ..EmulatorConfig::fast()
    }
    .with_producer_token("p2", ProducerGrant::new("tenant-2"))
    .with_worker_token("w2", WorkerGrant::any("tenant-2"));
    let emu = start(config).await;
    assert_ne!(emu.worker_addr(), emu.producer_addr());
    let mut p = Producer::connect(&emu.producer_url(), "p2").await.unwrap();
    p.create(create(1, CMD, "{}", 0)).await;
    let id = p.expect_create_ack().await.task_id;
    assert_eq!(emu.task(&id).unwrap().tenant_id, "tenant-2");
    // The worker port has no producer service.
    assert!(Producer::connect(&emu.worker_url(), "p2").await.is_err());
    // Tenants are separate queues.
    let mut default_tenant = Worker::connect(&emu.worker_url(), WT, "w1").await.unwrap();
    default_tenant.ready(&[CMD], 30, 1).await;
    default_tenant
        .expect_silence(Duration::from_millis(400))
        .await;
    let mut w = Worker::connect(&emu.worker_url(), "w2", "w2")
        .await
        .unwrap();
    w.ready(&[CMD], 30, 1).await;
    let task = w.expect_task().await;
    assert_eq!((task.id, task.tenant_id), (id, "tenant-2".to_string()));
}
