//! The command line of `cs-invoker-pool` (clap), in the library rather than `main.rs` so that
//! the man pages and shell completions the packages ship are generated from this very
//! definition (`cs-invoker-pool-docs`, run at package time) instead of being written by hand.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cs-invoker-pool",
    version,
    about = "Runs untrusted cs-js functions for Sous in pre-forked, confined QuickJS children"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
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

/// The clap command, for the man page and completion generators.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_is_consistent() {
        super::command().debug_assert();
    }
}
