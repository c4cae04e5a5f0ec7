//! The command line of the `sandbox-child` binary, as a clap [`Command`](clap::Command).
//!
//! Kept apart from `main.rs` (which runs the commands) and in the library so that one
//! definition serves three readers: the binary's own parser, `--help`, and the man page and
//! shell completions the packages ship (generated at package time by the `cs-invoker-pool-docs`
//! tool, never written by hand).
//!
//! `sandbox-child pipe` is what the supervisor starts for every child, so `main.rs` recognises
//! that exact argument list before any parser runs: the time to `Ready` is not spent in clap.
//! `pipe` is still declared here so that `--help`, the man page and the completions know it,
//! and so that `pipe` with extra arguments is refused like any other usage error.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit status of a usage error (and of `run` when it refuses or confinement fails).
pub const EXIT_USAGE: u8 = 2;

/// What `sandbox-child run` does and does not share with a production child. The top-level
/// `--help` ends with it, `run --help` starts with it, and the man pages carry it.
pub const RUN_DETAILS: &str = "\
The process confines itself like a pool child before the function's code is loaded: the
bundle and the event are read first (they are your own files), the engine is created, then
the confinement is applied, and only then is the module loaded and invoked.

The same as production:
  - confinement: fds other than 0-2 closed, empty environment, PDEATHSIG (the parent
    here is your shell), new mount/IPC/UTS/network/cgroup namespaces, an empty
    read-only root, the unprivileged user cs-sandbox (else nobody), no capabilities,
    no_new_privs;
  - the seccomp allowlist compiled into this binary;
  - rlimits: address space, stack, nofile 3 (no new fd), core 0, nproc 1 -- except
    fsize, which is unlimited here so that stdout/stderr may be redirected to a file;
  - engine limits: the bundle's memoryMb as the allocator limit, the result, error,
    stack and log size limits, the interrupt at the timeout.

Still different (this is a development aid, not the production sandbox):
  - no supervisor, so no capability checks: cs.kv is an in-memory map open to every
    key, cs.codeq.publish prints the message to stderr, cs.http.fetch always throws
    and fetch() always rejects;
  - the engine's own interrupt is the only deadline: there is no SIGKILL backstop, so
    code that never yields to the interrupt (some builtins) can overrun;
  - only the engine's allocator limit applies: there is no cgroup memory limit.
Use `cs-invoker-pool run` for the real thing.

When this host cannot confine (not root, no seccomp, no namespaces), the function runs
unconfined after an `unconfined: <reason>` line on stderr -- unless CS_REQUIRE_SANDBOX=1,
when it refuses with exit status 2.";

/// The exit statuses of `sandbox-child run`.
pub const RUN_EXIT_STATUS: &str = "\
Exit status: 0 success, 1 error or timeout, 2 usage error or confinement failure, 159 a
syscall blocked by seccomp (the blocked syscall is named on stderr and stdout holds no
result line).";

/// `sandbox-child`: the confined QuickJS process of cs-invoker-pool.
#[derive(Debug, Parser)]
#[command(
    name = "sandbox-child",
    version,
    about = "The confined QuickJS child of cs-invoker-pool; `run` executes one function for its author",
    long_about = "The confined QuickJS child of cs-invoker-pool. The supervisor starts it as \
`sandbox-child pipe`; function authors use `sandbox-child run` to execute one function, \
confined like a pool child, and read its result.",
    arg_required_else_help = true,
    disable_help_subcommand = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the cs-invoker-pool frame protocol on stdin/stdout. Started by the supervisor;
    /// not meant to be run by hand.
    Pipe,
    /// Run a function once, in this process, and print one InvocationResult JSON line on
    /// stdout; log lines go to stderr.
    #[command(
        long_about = format!(
            "Run a function once, in this process, and print one InvocationResult JSON line \
on stdout; log lines go to stderr.\n\n{RUN_DETAILS}"
        ),
        after_help = RUN_EXIT_STATUS
    )]
    Run(RunArgs),
}

/// The trigger types a function can be invoked by (`ctx.trigger.type`): the one list, shared
/// with the supervisor.
pub use sandbox_proto::messages::Trigger;

/// Options of `sandbox-child run`.
#[derive(Debug, Args, PartialEq)]
pub struct RunArgs {
    /// A bundle directory (manifest.json + entry), a bundle .tar, or a lone .js file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The event, as JSON (default {}).
    #[arg(
        long,
        value_name = "JSON",
        allow_hyphen_values = true,
        conflicts_with = "event_file"
    )]
    pub event: Option<String>,
    /// Read the event from a JSON file.
    #[arg(long, value_name = "FILE")]
    pub event_file: Option<PathBuf>,
    /// The tenant the function sees in ctx.tenant.
    #[arg(long, value_name = "T", default_value = "local", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub tenant: String,
    /// The namespace the function sees in ctx.namespace.
    #[arg(long, value_name = "N", default_value = "default", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub namespace: String,
    /// The trigger type the function sees in ctx.trigger.type.
    #[arg(long, value_enum, default_value_t = Trigger::Api)]
    pub trigger: Trigger,
    /// Override the manifest's limits.timeoutMs (1..=900000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=900_000))]
    pub timeout_ms: Option<u64>,
    /// Override the manifest's limits.memoryMb (16..=4096).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(16..=4096))]
    pub memory_mb: Option<u64>,
    /// Print each confinement step on stderr as it is applied, then the report.
    #[arg(long)]
    pub explain: bool,
    /// Skip only the seccomp filter (to debug the policy); said loudly on stderr.
    #[arg(long, conflicts_with = "unconfined")]
    pub no_seccomp: bool,
    /// Skip confinement entirely, seccomp included (refused when CS_REQUIRE_SANDBOX=1).
    #[arg(long)]
    pub unconfined: bool,
    /// `process.env` of the function (repeatable), as a version's config.env gives it.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
}

/// Parses one `--env NAME=VALUE`.
fn env_pair(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("--env takes NAME=VALUE (got '{value}')")),
    }
}

/// The command line: the derived definition, with the top-level help ending in `run`'s own
/// option list (rendered by clap from the same definition, so it cannot drift) and what `run`
/// shares with production. The binary parses with it; the man page and completion generators
/// read it.
pub fn command() -> clap::Command {
    let base = <Cli as clap::CommandFactory>::command();
    let run_help = base
        .find_subcommand("run")
        .map(|run| {
            run.clone()
                .bin_name("sandbox-child run")
                .about(None)
                .long_about(None)
                .after_help(None)
                .render_help()
                .to_string()
        })
        .unwrap_or_default();
    base.after_help(format!(
        "sandbox-child run:\n\n{}\n\n{RUN_DETAILS}\n\n{RUN_EXIT_STATUS}",
        run_help.trim_end()
    ))
}

/// The outcome of parsing a command line that is not the `pipe` fast path.
#[derive(Debug)]
pub enum Parsed {
    /// A command to run.
    Command(Command),
    /// `--help`, `--version` or `help`: text for stdout, exit status 0.
    Info(String),
    /// A usage error: text for stderr (ending with a pointer to `--help`), exit status 2.
    Usage(String),
}

/// Parses `args` (without the program name).
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("sandbox-child"))
        .chain(args.into_iter().map(Into::into));
    let parsed = command()
        .try_get_matches_from(argv)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    match parsed {
        Ok(cli) => Parsed::Command(cli.command),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Parsed::Info(e.render().to_string())
                }
                // No arguments at all: the help, on stderr, as the usage error it is.
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Parsed::Usage(e.render().to_string().trim_end().to_string())
                }
                _ => {
                    let text = e.render().to_string();
                    Parsed::Usage(format!(
                        "sandbox-child: {}\n(see `sandbox-child --help`)",
                        text.trim_end().trim_start_matches("error: ")
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(v: &[&str]) -> Result<RunArgs, String> {
        let mut argv = vec!["run"];
        argv.extend_from_slice(v);
        match parse(argv) {
            Parsed::Command(Command::Run(a)) => Ok(a),
            Parsed::Command(other) => Err(format!("not run: {other:?}")),
            Parsed::Info(t) => Err(format!("info: {t}")),
            Parsed::Usage(t) => Err(t),
        }
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_run_flags() {
        let a = run_args(&[
            "fn.js",
            "--event",
            "{\"a\":1}",
            "--tenant=acme",
            "--trigger",
            "http",
            "--timeout-ms",
            "500",
            "--memory-mb=32",
        ])
        .unwrap();
        assert_eq!(a.path, PathBuf::from("fn.js"));
        assert_eq!(a.event.as_deref(), Some("{\"a\":1}"));
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.namespace, "default");
        assert_eq!(a.trigger, Trigger::Http);
        assert_eq!(a.timeout_ms, Some(500));
        assert_eq!(a.memory_mb, Some(32));
        // A JSON event may start with a dash.
        assert_eq!(
            run_args(&["fn.js", "--event", "-1"])
                .unwrap()
                .event
                .as_deref(),
            Some("-1")
        );
    }

    #[test]
    fn defaults() {
        let a = run_args(&["fn.js"]).unwrap();
        assert_eq!(a.tenant, "local");
        assert_eq!(a.namespace, "default");
        assert_eq!(a.trigger, Trigger::Api);
        assert_eq!((a.event, a.event_file), (None, None));
        assert_eq!((a.timeout_ms, a.memory_mb), (None, None));
    }

    #[test]
    fn refuses_bad_flags() {
        for bad in [
            &["--bogus", "x", "fn.js"][..],
            &[][..],
            &["fn.js", "--timeout-ms"][..],
            &["fn.js", "--timeout-ms", "0"][..],
            &["fn.js", "--timeout-ms", "900001"][..],
            &["fn.js", "--memory-mb", "8"][..],
            &["fn.js", "--memory-mb", "4097"][..],
            &["fn.js", "--trigger", "cron"][..],
            &["fn.js", "--tenant", ""][..],
            &["fn.js", "--namespace="][..],
            &["fn.js", "other.js"][..],
            &["fn.js", "--event", "{}", "--event-file", "e.json"][..],
        ] {
            let r = run_args(bad);
            let msg = r.expect_err(&format!("{bad:?} should be refused"));
            assert!(msg.contains("sandbox-child --help"), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn parses_confinement_switches() {
        let a = run_args(&["fn.js", "--explain", "--no-seccomp"]).unwrap();
        assert!(a.explain && a.no_seccomp && !a.unconfined);
        let a = run_args(&["--unconfined", "fn.js"]).unwrap();
        assert!(a.unconfined && !a.explain && !a.no_seccomp);
        let a = run_args(&["fn.js"]).unwrap();
        assert!(!a.explain && !a.no_seccomp && !a.unconfined);
        for bad in [
            &["fn.js", "--no-seccomp", "--unconfined"][..],
            &["fn.js", "--explain=1"][..],
            &["fn.js", "--seccomp"][..],
        ] {
            assert!(run_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pipe_takes_no_arguments() {
        assert!(matches!(parse(["pipe"]), Parsed::Command(Command::Pipe)));
        assert!(matches!(parse(["pipe", "x"]), Parsed::Usage(_)));
        assert!(matches!(parse(["frobnicate"]), Parsed::Usage(_)));
    }

    #[test]
    fn help_and_version_are_info() {
        for args in [
            &["--help"][..],
            &["-h"][..],
            &["help"][..],
            &["--version"][..],
        ] {
            assert!(matches!(parse(args), Parsed::Info(_)), "{args:?}");
        }
        // No arguments at all: the help, as a usage error (stderr, exit 2).
        match parse(Vec::<String>::new()) {
            Parsed::Usage(t) => assert!(t.contains("run"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
