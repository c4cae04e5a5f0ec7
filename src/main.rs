//! The `cs-invoker-pool` command. Its command line is defined in [`cs_invoker_pool::cli`].

use clap::Parser;
use cs_invoker_pool::cli::{Cli, Command};
use cs_invoker_pool::run::{self, RunArgs, EXIT_USAGE};

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
    // `serve` logs one JSON object per line (contract §8); the other commands talk to a person.
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
