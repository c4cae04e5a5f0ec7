//! The pipeline's decisions in milliseconds: the in-memory store of [`crate::testing`] (with
//! faults injected), a [`FakeExecutor`] instead of sandbox children, a recording publisher.
//! What these doubles stand in for is tested for real in `tests/store.rs` (redis) and
//! `tests/pipeline.rs` (redis and real children).

use super::*;
use crate::host::local::LocalHost;
use crate::publish::unix_ms;
use crate::testing::{FakeExecutor, Fault, MemoryPublisher, MemoryStore, StoreOp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;

const T: &str = "t_acme01";
const NS: &str = "payments";
const FN: &str = "reconcile";
const OTHER: &str = "other";

type TestPipeline = Pipeline<MemoryStore, MemoryPublisher, FakeExecutor, LocalHost>;

struct Harness {
    pipeline: Arc<TestPipeline>,
    store: Arc<MemoryStore>,
    publisher: Arc<MemoryPublisher>,
    exec: Arc<FakeExecutor>,
}

impl Harness {
    fn new(cfg: PipelineConfig, exec: FakeExecutor) -> Harness {
        let store = Arc::new(MemoryStore::new());
        let publisher = Arc::new(MemoryPublisher::default());
        let exec = Arc::new(exec);
        let pipeline = Arc::new(Pipeline::new(
            cfg,
            store.clone(),
            publisher.clone(),
            exec.clone(),
            Arc::new(LocalHost::new()),
        ));
        Harness {
            pipeline,
            store,
            publisher,
            exec,
        }
    }

    /// Version 1 of `function`, alias `prod` → 1.
    fn publish(&self, function: &str, timeout_ms: u64, max_concurrency: u32) {
        let manifest = json!({
            "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
            "handler": "default",
            "limits": {"timeoutMs": timeout_ms, "memoryMb": 64, "maxConcurrency": max_concurrency},
            "capabilities": {},
        });
        let mut files = BTreeMap::new();
        files.insert(
            "function.js".to_string(),
            b"export default async () => ({ statusCode: 200 });".to_vec(),
        );
        files.insert(
            "manifest.json".to_string(),
            manifest.to_string().into_bytes(),
        );
        let bytes = bundle::pack(&files).expect("bundle packs");
        self.store
            .put_version((T, NS, function), 1, bytes, json!({}));
        self.store.put_alias((T, NS, function), "prod", 1);
    }

    fn results(&self) -> Vec<Value> {
        self.publisher
            .on_topic("cs.results")
            .into_iter()
            .map(|m| m.payload["body"].clone())
            .collect()
    }

    fn status(&self, aid: &str) -> Option<ActivationStatus> {
        self.store.activation(T, aid).map(|(_, s)| s)
    }
}

fn aid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The task payload of an activation of `function` by alias `prod`.
fn payload(aid: &str, function: &str, deadline_ms: u64) -> Vec<u8> {
    json!({
        "schema": "cs.envelope.v1", "id": format!("msg_{}", uuid::Uuid::new_v4()),
        "ts_ms": unix_ms(), "tenant": T, "type": "InvocationRequest",
        "body": {
            "activation_id": aid,
            "request_id": format!("req-{}", &aid[..8]),
            "tenant": T,
            "namespace": NS,
            "ref": {"function": function, "alias": "prod"},
            "trigger": {"type": "http", "source": {"path": "/reconcile"}},
            "principal": {"sub": "user-1", "roles": []},
            "deadline_ms": deadline_ms,
            "event": {"n": 1},
        },
    })
    .to_string()
    .into_bytes()
}

fn soon() -> u64 {
    unix_ms() + 10_000
}

fn is_retry(a: &Answer) -> bool {
    matches!(a, Answer::RetryLater { .. })
}

/// Counts what the pipeline tells a claim slot.
#[derive(Default)]
struct SlotSpy {
    waiting: AtomicU32,
    resumed: AtomicU32,
}

impl CapacityWait for SlotSpy {
    fn waiting(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }
    fn resumed(&self) {
        self.resumed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_new_activation_runs_once_and_a_redelivery_only_republishes() {
    let h = Harness::new(
        PipelineConfig::default(),
        FakeExecutor::returning("done").with_logs(&["line 1", "line 2"]),
    );
    h.publish(FN, 1000, 4);
    let a = aid();
    let first = h.pipeline.process(&payload(&a, FN, soon())).await;
    let Answer::Completed(result) = &first.answer else {
        panic!("{:?}", first.answer)
    };
    assert_eq!(
        result.result.as_ref().map(|r| r.body.as_str()),
        Some("done")
    );
    assert_eq!(h.status(&a), Some(ActivationStatus::Success));
    assert_eq!(
        h.store.logs(T, &a),
        Some(vec!["line 1".to_string(), "line 2".to_string()])
    );
    assert!(h.store.correlation(T, &result.request_id).is_some());

    let again = h.pipeline.process(&payload(&a, FN, soon())).await;
    assert_eq!(again.answer, first.answer);
    assert!(again
        .activation
        .is_some_and(|s| s.republished && !s.executed));
    assert_eq!(
        h.exec.started(),
        1,
        "a terminal activation never runs again"
    );
    let published = h.publisher.on_topic("cs.results");
    assert_eq!(published.len(), 1, "the idempotency key keeps one message");
    assert_eq!(
        published[0].idempotency_key.as_deref(),
        Some(format!("result:{a}").as_str())
    );
}

#[tokio::test]
async fn two_deliveries_racing_to_the_terminal_write_answer_with_the_winners_result() {
    // Each execution answers differently, so the loser's own result is recognisable.
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let exec = FakeExecutor::new(move |_| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        Ok(crate::testing::ok_result(&format!("run {i}")))
    })
    .gated();
    let h = Harness::new(PipelineConfig::default(), exec);
    h.publish(FN, 1000, 4);
    let a = aid();
    let (p1, p2) = (h.pipeline.clone(), h.pipeline.clone());
    let (x, y) = (payload(&a, FN, soon()), payload(&a, FN, soon()));
    let d1 = tokio::spawn(async move { p1.process(&x).await });
    let d2 = tokio::spawn(async move { p2.process(&y).await });
    assert!(h.exec.wait_started(2, Duration::from_secs(5)).await);
    h.exec.release(2);
    let (r1, r2) = (d1.await.unwrap(), d2.await.unwrap());

    let lost: Vec<bool> = [&r1, &r2]
        .iter()
        .map(|p| p.activation.as_ref().is_some_and(|s| s.lost_race))
        .collect();
    assert_eq!(
        lost.iter().filter(|l| **l).count(),
        1,
        "one winner, one loser"
    );
    assert_eq!(
        r1.answer, r2.answer,
        "the loser answers with the winner's result"
    );
    let (stored, status) = h.store.activation(T, &a).expect("terminal record");
    assert_eq!(status, ActivationStatus::Success);
    let Answer::Completed(answer) = &r1.answer else {
        panic!("{:?}", r1.answer)
    };
    assert_eq!(
        stored.result, answer.result,
        "the answer is the stored record's"
    );
    let results = h.results();
    assert_eq!(results.len(), 1, "one message on cs.results: {results:?}");
    assert_eq!(
        results[0]["result"]["body"],
        json!(answer.result.as_ref().map(|r| r.body.clone()))
    );
}

#[tokio::test]
async fn a_delivery_waiting_behind_its_twin_republishes_instead_of_running() {
    let h = Harness::new(
        PipelineConfig::default(),
        FakeExecutor::returning("once").gated(),
    );
    h.publish(FN, 1000, 1);
    let a = aid();
    let (p1, p2) = (h.pipeline.clone(), h.pipeline.clone());
    let x = payload(&a, FN, soon());
    let y = x.clone();
    let first = tokio::spawn(async move { p1.process(&x).await });
    assert!(h.exec.wait_started(1, Duration::from_secs(5)).await);
    // The twin passes step 2 (status running), then waits for the version's only permit.
    let spy = Arc::new(SlotSpy::default());
    let s = spy.clone();
    let twin = tokio::spawn(async move { p2.process_in_slot(&y, &*s).await });
    until("the twin waits for capacity", || {
        spy.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    h.exec.release(1);
    let (first, twin) = (first.await.unwrap(), twin.await.unwrap());
    assert!(matches!(first.answer, Answer::Completed(_)));
    assert_eq!(twin.answer, first.answer);
    assert!(twin
        .activation
        .is_some_and(|s| s.republished && !s.executed));
    assert_eq!(h.exec.started(), 1);
    assert_eq!(spy.resumed.load(Ordering::SeqCst), 1);
    assert_eq!(h.results().len(), 1);
}

/// A store outage at any step before the terminal write: retry later, and nothing terminal is
/// stored or published, so the redelivery runs the activation (and then succeeds).
#[tokio::test]
async fn an_outage_at_every_store_step_answers_retry_later_and_writes_nothing_terminal() {
    let cases = [
        (StoreOp::ActivationStatus, Fault::Unavailable, 0),
        (StoreOp::Alias, Fault::Unavailable, 0),
        (StoreOp::VersionMeta, Fault::Unavailable, 0),
        (StoreOp::Bundle, Fault::Unavailable, 0),
        (StoreOp::WriteRunning, Fault::Unavailable, 0),
        (StoreOp::WriteRunning, Fault::LoseReply, 0),
        (StoreOp::WriteTerminal, Fault::Unavailable, 1),
    ];
    for (op, fault, executed) in cases {
        let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
        h.publish(FN, 1000, 4);
        h.store.fail_nth(op, 1, fault);
        let a = aid();
        let p = h.pipeline.process(&payload(&a, FN, soon())).await;
        let Answer::RetryLater { cause, reason } = &p.answer else {
            panic!("{op:?} {fault:?}: {:?}", p.answer)
        };
        assert_eq!(*cause, RetryCause::Store, "{op:?}: {reason}");
        assert!(reason.contains("injected fault"), "{op:?}: {reason}");
        assert!(
            !h.status(&a).is_some_and(|s| s.is_terminal()),
            "{op:?} {fault:?}: nothing terminal is written"
        );
        assert!(
            h.results().is_empty(),
            "{op:?} {fault:?}: nothing is published"
        );
        assert_eq!(h.exec.started(), executed, "{op:?} {fault:?}");

        let again = h.pipeline.process(&payload(&a, FN, soon())).await;
        assert!(
            matches!(again.answer, Answer::Completed(_)),
            "{op:?} {fault:?}: the redelivery runs: {:?}",
            again.answer
        );
        assert_eq!(h.exec.started(), executed + 1, "{op:?} {fault:?}");
        assert_eq!(h.results().len(), 1);
    }
}

#[tokio::test]
async fn a_terminal_write_whose_reply_is_lost_is_republished_not_run_again() {
    let h = Harness::new(
        PipelineConfig::default(),
        FakeExecutor::returning("ok").with_logs(&["kept"]),
    );
    h.publish(FN, 1000, 4);
    h.store
        .fail_nth(StoreOp::WriteTerminal, 1, Fault::LoseReply);
    let a = aid();
    let p = h.pipeline.process(&payload(&a, FN, soon())).await;
    assert!(is_retry(&p.answer), "{:?}", p.answer);
    assert_eq!(h.status(&a), Some(ActivationStatus::Success), "applied");
    assert!(
        h.results().is_empty(),
        "not published before the write is known"
    );

    let again = h.pipeline.process(&payload(&a, FN, soon())).await;
    assert!(
        matches!(again.answer, Answer::Completed(_)),
        "{:?}",
        again.answer
    );
    assert!(again.activation.is_some_and(|s| s.republished));
    assert_eq!(h.exec.started(), 1, "the function ran once");
    assert_eq!(h.store.logs(T, &a), Some(vec!["kept".to_string()]));
    assert_eq!(h.results().len(), 1);
}

#[tokio::test]
async fn a_queue_outage_after_the_terminal_write_retries_and_republishes() {
    let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
    h.publish(FN, 1000, 4);
    h.publisher.fail.store(true, Ordering::SeqCst);
    let a = aid();
    let p = h.pipeline.process(&payload(&a, FN, soon())).await;
    let Answer::RetryLater { cause, reason } = &p.answer else {
        panic!("{:?}", p.answer)
    };
    assert_eq!(
        *cause,
        RetryCause::Queue,
        "a codeQ outage is not a store error"
    );
    assert!(
        reason.starts_with("publish to cs.results failed"),
        "{reason}"
    );
    assert_eq!(h.status(&a), Some(ActivationStatus::Success));

    h.publisher.fail.store(false, Ordering::SeqCst);
    let again = h.pipeline.process(&payload(&a, FN, soon())).await;
    assert!(matches!(again.answer, Answer::Completed(_)));
    assert_eq!(h.exec.started(), 1);
    assert_eq!(h.results().len(), 1);
}

/// The republishing path of a redelivery has store steps of its own: reading the stored
/// record and writing the correlation key.
#[tokio::test]
async fn an_outage_while_republishing_answers_retry_later() {
    for op in [StoreOp::ActivationMeta, StoreOp::WriteResult] {
        let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
        h.publish(FN, 1000, 4);
        let a = aid();
        let first = h.pipeline.process(&payload(&a, FN, soon())).await;
        assert!(matches!(first.answer, Answer::Completed(_)));
        h.store.fail_next(op, Fault::Unavailable);
        let again = h.pipeline.process(&payload(&a, FN, soon())).await;
        assert!(
            matches!(
                again.answer,
                Answer::RetryLater {
                    cause: RetryCause::Store,
                    ..
                }
            ),
            "{op:?}: {:?}",
            again.answer
        );
        assert_eq!(h.exec.started(), 1, "{op:?}");
        let third = h.pipeline.process(&payload(&a, FN, soon())).await;
        assert_eq!(third.answer, first.answer, "{op:?}");
    }
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_published_is_retried() {
    let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
    h.publisher.fail.store(true, Ordering::SeqCst);
    let p = h.pipeline.process(b"not json").await;
    let Answer::RetryLater { cause, reason } = &p.answer else {
        panic!("{:?}", p.answer)
    };
    assert_eq!(*cause, RetryCause::Queue);
    assert!(
        reason.starts_with("publish to cs.dlq.invoke failed"),
        "{reason}"
    );
    h.publisher.fail.store(false, Ordering::SeqCst);
    let p = h.pipeline.process(b"not json").await;
    assert!(matches!(p.answer, Answer::Failed { .. }), "{:?}", p.answer);
    assert_eq!(h.publisher.on_topic("cs.dlq.invoke").len(), 1);
}

#[tokio::test]
async fn past_the_waiting_bound_a_task_is_retried_later_instead_of_waiting() {
    let cfg = PipelineConfig {
        max_waiting_per_version: 1,
        ..PipelineConfig::default()
    };
    let h = Harness::new(cfg, FakeExecutor::returning("ok").gated());
    h.publish(FN, 5000, 1);
    let (p1, p2) = (h.pipeline.clone(), h.pipeline.clone());
    let (x, y) = (payload(&aid(), FN, soon()), payload(&aid(), FN, soon()));
    let running = tokio::spawn(async move { p1.process(&x).await });
    assert!(h.exec.wait_started(1, Duration::from_secs(5)).await);
    let spy = Arc::new(SlotSpy::default());
    let s = spy.clone();
    let waiting = tokio::spawn(async move { p2.process_in_slot(&y, &*s).await });
    until("one activation waits", || {
        spy.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    let c = aid();
    let third = h.pipeline.process(&payload(&c, FN, soon())).await;
    let Answer::RetryLater { cause, reason } = &third.answer else {
        panic!("{:?}", third.answer)
    };
    assert_eq!(*cause, RetryCause::Capacity);
    assert!(reason.contains("is saturated"), "{reason}");
    assert_eq!(h.status(&c), None, "the refused task wrote nothing");
    h.exec.release(2);
    assert!(matches!(
        running.await.unwrap().answer,
        Answer::Completed(_)
    ));
    assert!(matches!(
        waiting.await.unwrap().answer,
        Answer::Completed(_)
    ));
}

/// Step 5's order: an activation waiting for its own version's `maxConcurrency` holds no
/// replica slot, so another function runs meanwhile even when the replica has one slot left.
#[tokio::test]
async fn the_version_permit_is_taken_before_the_execution_slot() {
    let cfg = PipelineConfig {
        max_inflight: 2,
        ..PipelineConfig::default()
    };
    let h = Harness::new(cfg, FakeExecutor::returning("ok").gated());
    h.publish(FN, 5000, 1);
    h.publish(OTHER, 5000, 1);
    let (p1, p2, p3) = (h.pipeline.clone(), h.pipeline.clone(), h.pipeline.clone());
    let a1 = payload(&aid(), FN, soon());
    let a2 = payload(&aid(), FN, soon());
    let b1 = payload(&aid(), OTHER, soon());
    let t1 = tokio::spawn(async move { p1.process(&a1).await });
    assert!(h.exec.wait_started(1, Duration::from_secs(5)).await);
    let spy = Arc::new(SlotSpy::default());
    let s = spy.clone();
    let t2 = tokio::spawn(async move { p2.process_in_slot(&a2, &*s).await });
    until("the second activation of FN waits", || {
        spy.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        h.pipeline.inflight(),
        1,
        "the waiting activation holds no slot"
    );
    let t3 = tokio::spawn(async move { p3.process(&b1).await });
    assert!(
        h.exec.wait_started(2, Duration::from_secs(5)).await,
        "another function gets the free slot while FN's second activation waits"
    );
    assert_eq!(h.exec.seen()[1].function, OTHER);
    h.exec.release(3);
    for t in [t1, t2, t3] {
        let p = t.await.unwrap();
        assert!(matches!(p.answer, Answer::Completed(_)), "{:?}", p.answer);
    }
    assert_eq!(h.exec.max_running(), 2);
    assert_eq!(spy.resumed.load(Ordering::SeqCst), 1);
    assert_eq!(h.pipeline.inflight(), 0);
}

#[tokio::test]
async fn a_deadline_passed_on_arrival_is_a_timeout_recorded_without_running() {
    let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
    h.publish(FN, 1000, 4);
    let a = aid();
    let p = h.pipeline.process(&payload(&a, FN, unix_ms() - 1)).await;
    assert_eq!(
        p.answer,
        Answer::Failed {
            error: "Timeout: deadline passed before execution".into()
        }
    );
    assert_eq!(h.exec.started(), 0);
    let (record, status) = h.store.activation(T, &a).expect("recorded");
    assert_eq!(status, ActivationStatus::Timeout);
    assert_eq!(record.start_kind.as_deref(), Some("none"));
    let results = h.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "timeout");
}

#[tokio::test]
async fn waiting_for_capacity_ends_at_the_deadline_as_a_timeout() {
    let h = Harness::new(
        PipelineConfig::default(),
        FakeExecutor::returning("ok").gated(),
    );
    h.publish(FN, 5000, 1);
    let p1 = h.pipeline.clone();
    let x = payload(&aid(), FN, soon());
    let running = tokio::spawn(async move { p1.process(&x).await });
    assert!(h.exec.wait_started(1, Duration::from_secs(5)).await);
    let a = aid();
    let t0 = Instant::now();
    let p = h.pipeline.process(&payload(&a, FN, unix_ms() + 60)).await;
    let waited = t0.elapsed();
    let Answer::Failed { error } = &p.answer else {
        panic!("{:?}", p.answer)
    };
    assert!(
        error.starts_with("Timeout: deadline reached while waiting for capacity: version 1 of \"reconcile\" runs at most 1 at a time"),
        "{error}"
    );
    assert!(waited >= Duration::from_millis(40), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(h.status(&a), Some(ActivationStatus::Timeout));
    assert_eq!(h.exec.started(), 1);
    h.exec.release(1);
    assert!(matches!(
        running.await.unwrap().answer,
        Answer::Completed(_)
    ));
}

#[tokio::test]
async fn the_job_runs_to_the_earlier_of_the_request_deadline_and_the_timeout() {
    let h = Harness::new(PipelineConfig::default(), FakeExecutor::returning("ok"));
    h.publish(FN, 1_000, 4);
    h.publish(OTHER, 60_000, 4);
    let before = Instant::now();
    let p = h
        .pipeline
        .process(&payload(&aid(), FN, unix_ms() + 60_000))
        .await;
    assert!(matches!(p.answer, Answer::Completed(_)));
    let before_second = Instant::now();
    let p = h
        .pipeline
        .process(&payload(&aid(), OTHER, unix_ms() + 300))
        .await;
    assert!(matches!(p.answer, Answer::Completed(_)));
    let seen = h.exec.seen();
    let by_timeout = seen[0].deadline.duration_since(before);
    assert!(
        by_timeout > Duration::from_millis(900) && by_timeout < Duration::from_secs(5),
        "timeoutMs 1000 bounds a far deadline: {by_timeout:?}"
    );
    // Fixed by the request, however long the pipeline took to get there (rounding to the
    // millisecond aside).
    let by_request = seen[1].deadline.duration_since(before_second);
    assert!(
        by_request > Duration::from_millis(250) && by_request <= Duration::from_millis(350),
        "a request deadline 300 ms away bounds timeoutMs 60000: {by_request:?}"
    );
}

#[tokio::test]
async fn an_execution_that_timed_out_is_recorded_and_answered_as_a_timeout() {
    let h = Harness::new(
        PipelineConfig::default(),
        FakeExecutor::new(|_| Err(ExecError::new(ErrorType::Timeout, "deadline reached"))),
    );
    h.publish(FN, 1000, 4);
    let a = aid();
    let p = h.pipeline.process(&payload(&a, FN, soon())).await;
    assert_eq!(
        p.answer,
        Answer::Failed {
            error: "Timeout: deadline reached".into()
        }
    );
    assert_eq!(h.status(&a), Some(ActivationStatus::Timeout));
    assert_eq!(h.results()[0]["error"]["type"], "Timeout");
}
