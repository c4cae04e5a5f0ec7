//! `codeq-emulator`: the emulator as a standalone server, for benchmarks and VM tests.
//!
//! Logs go to stderr (RUST_LOG, default `info`); once listening, one line
//! `LISTENING worker=ADDR producer=ADDR` goes to stdout so a script that passed port 0 can
//! find the port. Runs until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use codeq_emulator::{Emulator, EmulatorConfig, Listen, ProducerGrant, WorkerGrant};

#[derive(Parser)]
#[command(
    name = "codeq-emulator",
    version,
    about = "Emulates codeQ's worker and producer gRPC streams (cs-invoker-pool contract §2)"
)]
struct Args {
    /// Address of both streams (or of the worker stream with --producer-listen).
    #[arg(long, default_value = "127.0.0.1:9091")]
    listen: SocketAddr,
    /// Serve the producer stream on this separate address.
    #[arg(long)]
    producer_listen: Option<SocketAddr>,
    /// A worker token (repeatable).
    #[arg(long = "worker-token", required = true)]
    worker_tokens: Vec<String>,
    /// A producer token (repeatable).
    #[arg(long = "producer-token", required = true)]
    producer_tokens: Vec<String>,
    /// Tenant of every token.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Ready long-poll expiry, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    ready_expiry_ms: u64,
    /// Lease reaper interval, milliseconds.
    #[arg(long, default_value_t = 1_000)]
    reap_interval_ms: u64,
    /// Lease when Ready.lease_seconds is 0, seconds.
    #[arg(long, default_value_t = 30)]
    default_lease_seconds: i32,
    /// max_attempts when a create leaves it 0.
    #[arg(long, default_value_t = 5)]
    max_attempts: i32,
    /// Backoff base, seconds (0: failed attempts requeue at once).
    #[arg(long, default_value_t = 5)]
    backoff_base_seconds: i32,
    /// Backoff cap, seconds.
    #[arg(long, default_value_t = 900)]
    backoff_max_seconds: i32,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codeq-emulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let mut config = EmulatorConfig {
        listen: match args.producer_listen {
            Some(producer) => Listen::Split {
                worker: args.listen,
                producer,
            },
            None => Listen::Shared(args.listen),
        },
        default_tenant: args.tenant.clone(),
        ready_expiry: Duration::from_millis(args.ready_expiry_ms),
        reap_interval: Duration::from_millis(args.reap_interval_ms),
        default_lease_seconds: args.default_lease_seconds,
        default_max_attempts: args.max_attempts,
        backoff_base_seconds: args.backoff_base_seconds,
        backoff_max_seconds: args.backoff_max_seconds,
        ..EmulatorConfig::default()
    };
    config.worker_tokens.clear();
    config.producer_tokens.clear();
    for token in args.worker_tokens {
        config
            .worker_tokens
            .insert(token, WorkerGrant::any(args.tenant.clone()));
    }
    for token in args.producer_tokens {
        config
            .producer_tokens
            .insert(token, ProducerGrant::new(args.tenant.clone()));
    }
    let mut emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("codeq-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "LISTENING worker={} producer={}",
        emulator.worker_addr(),
        emulator.producer_addr()
    );
    wait_for_signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM (the VM test and benchmark harness stop it with either).
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
