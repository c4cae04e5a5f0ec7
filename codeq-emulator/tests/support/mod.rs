//! Thin test clients over the generated tonic clients: one stream each, Hello sent before the
//! call (the server answers headers only after it has read Hello, as codeQ does).

#![allow(dead_code)]

use std::time::Duration;

use codeq_emulator::pb::producerpb::{
    self, producer_stream_client::ProducerStreamClient, ProducerEvent,
};
use codeq_emulator::pb::workerpb::{
    self, server_event::Event as WOut, worker_event::Event as WIn,
    worker_stream_client::WorkerStreamClient, WorkerEvent,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

pub const SHORT: Duration = Duration::from_millis(150);
pub const LONG: Duration = Duration::from_secs(5);

pub struct Worker {
    tx: mpsc::Sender<WorkerEvent>,
    rx: Streaming<workerpb::ServerEvent>,
    pub hello: workerpb::HelloAck,
}

impl Worker {
    /// Opens a stream; `Err` carries the handshake's gRPC status.
    pub async fn connect(url: &str, token: &str, worker_id: &str) -> Result<Worker, Status> {
        Self::connect_with_first(
            url,
            WIn::Hello(workerpb::Hello {
                token: token.into(),
                worker_id: worker_id.into(),
            }),
        )
        .await
    }

    pub async fn connect_with_first(url: &str, first: WIn) -> Result<Worker, Status> {
        let mut client = WorkerStreamClient::connect(url.to_string())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        tx.send(WorkerEvent { event: Some(first) })
            .await
            .map_err(|_| Status::internal("send"))?;
        let mut rx = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        match rx.message().await? {
            Some(workerpb::ServerEvent {
                event: Some(WOut::HelloAck(hello)),
            }) => Ok(Worker { tx, rx, hello }),
            other => Err(Status::internal(format!(
                "expected HelloAck, got {other:?}"
            ))),
        }
    }

    pub async fn send(&self, event: WIn) {
        self.tx
            .send(WorkerEvent { event: Some(event) })
            .await
            .expect("worker stream closed");
    }

    pub async fn ready(&self, commands: &[&str], lease_seconds: i32, count: i32) {
        self.send(WIn::Ready(workerpb::Ready {
            commands: commands.iter().map(|c| c.to_string()).collect(),
            lease_seconds,
            count,
        }))
        .await;
    }

    pub async fn complete(&self, task_id: &str, json: &str) {
        self.send(WIn::Result(workerpb::Result {
            task_id: task_id.into(),
            status: "COMPLETED".into(),
            result_json: json.as_bytes().to_vec(),
            error: String::new(),
        }))
        .await;
    }

    pub async fn fail(&self, task_id: &str, error: &str) {
        self.send(WIn::Result(workerpb::Result {
            task_id: task_id.into(),
            status: "FAILED".into(),
            result_json: Vec::new(),
            error: error.into(),
        }))
        .await;
    }

    pub async fn nack(&self, task_id: &str, delay_seconds: i32, reason: &str) {
        self.send(WIn::Nack(workerpb::Nack {
            task_id: task_id.into(),
            delay_seconds,
            reason: reason.into(),
        }))
        .await;
    }

    pub async fn heartbeat(&self, task_id: &str, extend_seconds: i32) {
        self.send(WIn::Heartbeat(workerpb::Heartbeat {
            task_id: task_id.into(),
            extend_seconds,
        }))
        .await;
    }

    pub async fn abandon(&self, task_id: &str) {
        self.send(WIn::Abandon(workerpb::Abandon {
            task_id: task_id.into(),
        }))
        .await;
    }

    /// Next server event within `timeout`; `None` on timeout. Panics on a stream error.
    pub async fn next(&mut self, timeout: Duration) -> Option<WOut> {
        match tokio::time::timeout(timeout, self.rx.message()).await {
            Err(_) => None,
            Ok(Ok(Some(ev))) => ev.event,
            Ok(Ok(None)) => panic!("worker stream ended"),
            Ok(Err(status)) => panic!("worker stream failed: {status:?}"),
        }
    }

    /// Next raw item (for tests that expect the stream to end or fail).
    pub async fn next_raw(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<Option<workerpb::ServerEvent>, Status>> {
        tokio::time::timeout(timeout, self.rx.message()).await.ok()
    }

    pub async fn expect(&mut self, timeout: Duration) -> WOut {
        self.next(timeout).await.expect("no server event in time")
    }

    pub async fn expect_task(&mut self) -> workerpb::Task {
        match self.expect(LONG).await {
            WOut::Task(workerpb::TaskAssignment { task: Some(task) }) => task,
            other => panic!("expected TaskAssignment, got {other:?}"),
        }
    }

    pub async fn expect_batch(&mut self) -> Vec<workerpb::Task> {
        match self.expect(LONG).await {
            WOut::TaskBatch(batch) => batch.tasks,
            other => panic!("expected TaskBatch, got {other:?}"),
        }
    }

    pub async fn expect_result_ack(&mut self) -> workerpb::ResultAck {
        match self.expect(LONG).await {
            WOut::ResultAck(ack) => ack,
            other => panic!("expected ResultAck, got {other:?}"),
        }
    }

    pub async fn expect_nack_ack(&mut self) -> workerpb::NackAck {
        match self.expect(LONG).await {
            WOut::NackAck(ack) => ack,
            other => panic!("expected NackAck, got {other:?}"),
        }
    }

    pub async fn expect_heartbeat_ack(&mut self) -> workerpb::HeartbeatAck {
        match self.expect(LONG).await {
            WOut::HeartbeatAck(ack) => ack,
            other => panic!("expected HeartbeatAck, got {other:?}"),
        }
    }

    pub async fn expect_abandon_ack(&mut self) -> workerpb::AbandonAck {
        match self.expect(LONG).await {
            WOut::AbandonAck(ack) => ack,
            other => panic!("expected AbandonAck, got {other:?}"),
        }
    }

    pub async fn expect_silence(&mut self, timeout: Duration) {
        if let Some(ev) = self.next(timeout).await {
            panic!("expected nothing, got {ev:?}");
        }
    }
}

pub struct Producer {
    tx: mpsc::Sender<ProducerEvent>,
    rx: Streaming<producerpb::ServerEvent>,
    pub hello: producerpb::HelloAck,
}

impl Producer {
    pub async fn connect(url: &str, token: &str) -> Result<Producer, Status> {
        Self::connect_with_first(
            url,
            producerpb::producer_event::Event::Hello(producerpb::Hello {
                token: token.into(),
            }),
        )
        .await
    }

    pub async fn connect_with_first(
        url: &str,
        first: producerpb::producer_event::Event,
    ) -> Result<Producer, Status> {
        let mut client = ProducerStreamClient::connect(url.to_string())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        tx.send(ProducerEvent { event: Some(first) })
            .await
            .map_err(|_| Status::internal("send"))?;
        let mut rx = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        match rx.message().await? {
            Some(producerpb::ServerEvent {
                event: Some(producerpb::server_event::Event::HelloAck(hello)),
            }) => Ok(Producer { tx, rx, hello }),
            other => Err(Status::internal(format!(
                "expected HelloAck, got {other:?}"
            ))),
        }
    }

    pub async fn send(&self, event: producerpb::producer_event::Event) {
        self.tx
            .send(ProducerEvent { event: Some(event) })
            .await
            .expect("producer stream closed");
    }

    pub async fn create(&self, task: producerpb::CreateTask) {
        self.send(producerpb::producer_event::Event::Create(task))
            .await;
    }

    pub async fn expect(&mut self) -> producerpb::server_event::Event {
        match tokio::time::timeout(LONG, self.rx.message()).await {
            Ok(Ok(Some(producerpb::ServerEvent { event: Some(ev) }))) => ev,
            other => panic!("expected a producer server event, got {other:?}"),
        }
    }

    pub async fn expect_create_ack(&mut self) -> producerpb::CreateAck {
        match self.expect().await {
            producerpb::server_event::Event::CreateAck(ack) => ack,
            other => panic!("expected CreateAck, got {other:?}"),
        }
    }
}

/// A CreateTask with the common fields.
pub fn create(seq: u64, command: &str, payload: &str, priority: i32) -> producerpb::CreateTask {
    producerpb::CreateTask {
        seq,
        command: command.into(),
        payload: payload.as_bytes().to_vec(),
        priority,
        ..Default::default()
    }
}
