//! The `cs-invoker-pool` command.

use clap::{Parser, Subcommand};
use cs_invoker_pool::run::{self, RunArgs, EXIT_USAGE};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cs-invoker-pool",
    version,
    about = "Runs untrusted cs-js functions for Sous in pre-forked, confined QuickJS children"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one function locally through the real pool and sandbox child, print its
    /// InvocationResult as one JSON line. Exit 0 on success, 1 on error or timeout, 2 on a
    /// usage error.
    Run {
        /// A directory holding function.js and manifest.json, a tar bundle, or a lone .js file
        /// (default manifest: timeout 3000 ms, memory 64 MiB, no capabilities).
        path: PathBuf,
        /// The event, as JSON (default {}).
        #[arg(long, conflicts_with = "event_file")]
        event: Option<String>,
        /// Read the event from a JSON file.
        #[arg(long, value_name = "FILE")]
        event_file: Option<PathBuf>,
        #[arg(long, default_value = "local")]
        tenant: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Function name (default: the file or directory name).
        #[arg(long)]
        function: Option<String>,
        /// Trigger type: http, schedule, cadence or api.
        #[arg(long, default_value = "api")]
        trigger: String,
        /// Override the manifest's limits.timeoutMs.
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Override the manifest's limits.memoryMb.
        #[arg(long, value_name = "MB")]
        memory_mb: Option<u64>,
        /// The sandbox-child binary (default: $CS_SANDBOX_CHILD_BIN, else beside this binary).
        #[arg(long, value_name = "PATH")]
        child_bin: Option<PathBuf>,
        /// Back cs.kv with a KVRocks or redis server (redis://[:password@]host:port) instead
        /// of memory, so a local run reads and writes the same keys as production.
        #[arg(long, value_name = "URL")]
        kv_url: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let code = match cli.command {
        Command::Run {
            path,
            event,
            event_file,
            tenant,
            namespace,
            function,
            trigger,
            timeout_ms,
            memory_mb,
            child_bin,
            kv_url,
        } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cs-invoker-pool: cannot start the runtime: {e}");
                    std::process::exit(1);
                }
            };
            let args = RunArgs {
                path,
                event,
                event_file,
                tenant,
                namespace,
                function,
                trigger,
                timeout_ms,
                memory_mb,
                child_bin,
                kv_url,
            };
            match rt.block_on(run::run(args)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("cs-invoker-pool run: {}", e.0);
                    EXIT_USAGE
                }
            }
        }
    };
    std::process::exit(code);
}
