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

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
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
        /// `process.env` of the function (repeatable): what a version's config.env gives it
        /// in production.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// A secret for cs.secrets.get(NAME), repeatable. Its value (and base64 forms) is
        /// replaced by [REDACTED:NAME] in the logs and the error, as in production.
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secret: Vec<String>,
        /// Let fetch and cs.http.fetch reach private and loopback addresses (a mock server on
        /// this machine) for hosts in the manifest's allowHosts. A development aid: production
        /// refuses them unless configured otherwise.
        #[arg(long)]
        allow_private_networks: bool,
    },
    /// Run the invoker daemon: claim cs.invoke tasks from codeQ, run them, answer and publish.
    /// Stops on SIGTERM/SIGINT after draining in-flight work.
    Serve {
        /// The YAML configuration (packaged default /etc/cs-invoker-pool/config.yaml).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/cs-invoker-pool/config.yaml"
        )]
        config: PathBuf,
    },
    /// Validate a configuration file and print the effective values (secrets redacted), without
    /// contacting anything. Exit 0 when valid, 1 otherwise.
    CheckConfig {
        /// The YAML configuration.
        file: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("CS_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(match cli.command {
                Command::Serve { .. } => "info",
                _ => "warn",
            })
        })
    };
    // `serve` logs one JSON object per line (SPEC §8); the other commands talk to a person.
    if matches!(cli.command, Command::Serve { .. }) {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(filter())
            .with(cs_invoker_pool::logging::JsonLines::new(std::io::stderr))
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter())
            .init();
    }
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
            env,
            secret,
            allow_private_networks,
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
                env,
                secrets: secret,
                allow_private_networks,
            };
            match rt.block_on(run::run(args)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("cs-invoker-pool run: {}", e.0);
                    EXIT_USAGE
                }
            }
        }
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { file } => match cs_invoker_pool::config::check_config(&file) {
            Ok(summary) => {
                println!("{summary}");
                0
            }
            Err(e) => {
                eprintln!("cs-invoker-pool check-config: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

fn serve(path: &std::path::Path) -> i32 {
    let cfg = match cs_invoker_pool::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cs-invoker-pool serve: {e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.workers.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cs-invoker-pool serve: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(cs_invoker_pool::serve::serve(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "cs-invoker-pool serve cannot start");
            eprintln!("cs-invoker-pool serve: {e}");
            1
        }
    }
}
