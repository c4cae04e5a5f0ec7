//! `cs-invoker-pool-docs OUT_DIR [--date YYYY-MM-DD]`: writes the man pages and the shell
//! completions of `cs-invoker-pool` and `sandbox-child`, generated from their clap definitions
//! ([`cs_invoker_pool::cli`], [`sandbox_child::cli`]), so what the packages ship can never
//! drift from what the binaries accept. `make deb rpm` run it; it is never packaged.
//!
//! Output, under OUT_DIR:
//! - `man/<command>.1` and `man/<command>-<subcommand>.1` (clap_mangen for the title, synopsis,
//!   description, options and subcommands; the EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO
//!   sections below are ours). The Makefile compresses them (`gzip -9n`), as Debian and Fedora
//!   expect.
//! - `completions/bash/<command>`, `completions/zsh/_<command>`,
//!   `completions/fish/<command>.fish` (clap_complete).

use clap_complete::Shell;
use roff::{roman, Roff};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cs-invoker-pool-docs OUT_DIR [--date YYYY-MM-DD]";

fn main() -> ExitCode {
    let mut out = None;
    let mut date = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--date" => match args.next() {
                Some(d) => date = d,
                None => return usage("--date needs a value"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if a.starts_with('-') => return usage(&format!("unknown flag '{a}'")),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => return usage(&format!("unexpected argument '{a}'")),
        }
    }
    let Some(out) = out else {
        return usage("missing OUT_DIR");
    };
    match generate(&out, &date) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cs-invoker-pool-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("cs-invoker-pool-docs: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// Writes every page and completion; the paths written.
fn generate(out: &Path, date: &str) -> Result<Vec<PathBuf>, String> {
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir).map_err(|e| format!("{}: {e}", man_dir.display()))?;
    let mut written = Vec::new();
    for cmd in [
        cs_invoker_pool::cli::command(),
        sandbox_child::cli::command(),
    ] {
        let mut cmd = cmd;
        cmd.build();
        man_pages(&cmd, &man_dir, date, &mut written)?;
        completions(&mut cmd, out, &mut written)?;
    }
    Ok(written)
}

/// The page of `cmd` and, recursively, of each of its visible subcommands.
fn man_pages(
    cmd: &clap::Command,
    dir: &Path,
    date: &str,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    // `help` is clap's own subcommand: completed, but no page of its own.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, dir, date, written)?;
    }
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    // clap_mangen's page (title, name, synopsis, description, options, subcommands, version);
    // `after_help` is left out, because the sections below say it in man page form.
    let man = clap_mangen::Man::new(cmd.clone().after_help(None).after_long_help(None))
        .date(date)
        .source(format!("cs-invoker-pool {}", env!("CARGO_PKG_VERSION")))
        .manual("Sous");
    let mut page = Vec::new();
    man.render(&mut page).map_err(|e| format!("{name}: {e}"))?;
    let mut extra = Roff::new();
    for (title, text) in sections(&name) {
        extra.control("SH", [title]);
        prose(&mut extra, &text);
    }
    // roff starts every rendering with the same two-line apostrophe preamble: once is enough.
    let extra = extra.render();
    let preamble: String = extra.lines().take(2).map(|l| format!("{l}\n")).collect();
    page.extend_from_slice(
        extra
            .strip_prefix(preamble.as_str())
            .unwrap_or(&extra)
            .as_bytes(),
    );
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
    written.push(path);
    Ok(())
}

/// bash, zsh and fish completions of `cmd` (subcommands and options included).
fn completions(
    cmd: &mut clap::Command,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let name = cmd.get_name().to_string();
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = clap_complete::generate_to(shell, cmd, &name, &dir)
            .map_err(|e| format!("{name} {shell} completion: {e}"))?;
        if shell == Shell::Bash {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&path, fix_bash_hyphenated_bin(&text, &name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        written.push(path);
    }
    Ok(())
}

/// Works around clap_complete's bash generator for a binary name with a hyphen
/// (clap-rs/clap#6421, open in clap_complete 4.6.12): the loop that walks the words names the
/// state of `sandbox-child run` `sandbox__child__subcmd__run`, but the `case` arms that list
/// each subcommand's options spell the binary's own hyphen as the subcommand separator
/// (`sandbox__subcmd__child__subcmd__run`), so no arm ever matches and nothing after a
/// subcommand completes. Respelling the arms' prefix the loop's way fixes it; once upstream is
/// fixed the mangled form no longer occurs and this does nothing. package-check completes
/// through the packaged file to prove it.
fn fix_bash_hyphenated_bin(script: &str, bin: &str) -> String {
    if !bin.contains('-') {
        return script.to_string();
    }
    let mangled = format!("{}__subcmd__", bin.replace('-', "__subcmd__"));
    let loop_form = format!("{}__subcmd__", bin.replace('-', "__"));
    script.replace(&mangled, &loop_form)
}

/// Text with blank-line paragraphs and `- ` items (the style of the `--help` texts) as roff:
/// `.PP` paragraphs and `.IP` bullets; lines inside one paragraph or item are joined (roff
/// fills them).
fn prose(roff: &mut Roff, text: &str) {
    let mut para: Vec<String> = Vec::new();
    let mut item = false;
    let flush = |roff: &mut Roff, para: &mut Vec<String>, item: bool| {
        if para.is_empty() {
            return;
        }
        if item {
            roff.control("IP", ["\\(bu", "2"]);
        } else {
            roff.control("PP", []);
        }
        roff.text([roman(para.join(" "))]);
        para.clear();
    };
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            flush(roff, &mut para, item);
            item = false;
        } else if let Some(rest) = t.strip_prefix("- ") {
            flush(roff, &mut para, item);
            item = true;
            para.push(rest.to_string());
        } else if item && !line.starts_with("    ") {
            // An unindented line after a list: a new paragraph.
            flush(roff, &mut para, item);
            item = false;
            para.push(t.to_string());
        } else {
            para.push(t.to_string());
        }
    }
    flush(roff, &mut para, item);
}

/// The sections clap knows nothing about, per page.
fn sections(page: &str) -> Vec<(&'static str, String)> {
    let invoker_files = "\
- /etc/cs-invoker-pool/config.yaml: the configuration `serve` reads by default (a conffile,
    kept on upgrade); `check-config` validates it.
- /etc/cs-invoker-pool/environment: secrets and overrides for the systemd unit (mode 0600).
- /usr/lib/systemd/system/cs-invoker-pool.service: the unit (Type=notify, Delegate=yes).
- /usr/share/doc/cs-invoker-pool/: README.md and packaging.md (configuration, debugging,
    the unit's directives)."
        .to_string();
    let invoker_env = "\
Environment variables override the configuration file; an empty value counts as unset.
- CS_KVROCKS_ADDR, CS_KVROCKS_PASSWORD: the KVRocks address and password.
- CS_CODEQ_WORKER_ADDR, CS_CODEQ_PRODUCER_ADDR, CS_CODEQ_WORKER_TOKEN,
    CS_CODEQ_PRODUCER_TOKEN: the codeQ streams and their tokens.
- CS_INVOKER_HTTP_ADDR: the address of /healthz, /readyz and /metrics.
- CS_INVOKER_MAX_INFLIGHT: cs_invoker_pool.workers.max_inflight.
- CS_CODEQ_READY_EXPIRY_MS: how long codeQ holds a Ready, as the client counts it (31 s,
    codeQ's long-poll); only for a codeQ with another long-poll.
- CS_SANDBOX_CHILD_BIN: the sandbox-child binary (default: the one beside this binary).
- CS_LOG: the log filter (default info for serve, warn otherwise).
- CS_REQUIRE_SANDBOX=1: refuse to run unconfined whatever the configuration says."
        .to_string();
    let see_also = |also: &str| {
        format!("{also}, systemctl(1), journalctl(1), /usr/share/doc/cs-invoker-pool/README.md")
    };
    match page {
        "cs-invoker-pool" => vec![
            (
                "EXIT STATUS",
                "\
- 0: success.
- 1: run: the function failed or timed out; serve: the daemon could not start or stopped on
    an error; check-config: the configuration is invalid.
- 2: a usage error."
                    .to_string(),
            ),
            ("ENVIRONMENT", invoker_env),
            ("FILES", invoker_files),
            (
                "SEE ALSO",
                see_also("cs-invoker-pool-run(1), cs-invoker-pool-serve(1), cs-invoker-pool-check-config(1), sandbox-child(1)"),
            ),
        ],
        "cs-invoker-pool-run" => vec![
            (
                "EXIT STATUS",
                "0 when the function succeeded, 1 on an error or a timeout (the result line says \
                 which), 2 on a usage error."
                    .to_string(),
            ),
            ("ENVIRONMENT", invoker_env),
            ("SEE ALSO", see_also("cs-invoker-pool(1), sandbox-child-run(1)")),
        ],
        "cs-invoker-pool-serve" => vec![
            (
                "EXIT STATUS",
                "0 after a clean stop (SIGTERM or SIGINT: claiming stops, in-flight activations \
                 finish within drain_seconds, the rest go back to codeQ); 1 when the daemon \
                 cannot start (the reason is logged) or stops on an error."
                    .to_string(),
            ),
            ("ENVIRONMENT", invoker_env),
            ("FILES", invoker_files),
            ("SEE ALSO", see_also("cs-invoker-pool(1), cs-invoker-pool-check-config(1)")),
        ],
        "cs-invoker-pool-check-config" => vec![
            (
                "EXIT STATUS",
                "0 when the file is valid (the effective values are printed, secrets \
                 redacted), 1 otherwise (every problem is named with its key)."
                    .to_string(),
            ),
            ("ENVIRONMENT", invoker_env),
            ("FILES", invoker_files),
            ("SEE ALSO", see_also("cs-invoker-pool(1), cs-invoker-pool-serve(1)")),
        ],
        "sandbox-child" => vec![
            ("RUN", sandbox_child::cli::RUN_DETAILS.to_string()),
            ("EXIT STATUS", run_exit_status()),
            ("SEE ALSO", see_also("sandbox-child-run(1), sandbox-child-pipe(1), cs-invoker-pool(1)")),
        ],
        "sandbox-child-run" => vec![
            ("EXIT STATUS", run_exit_status()),
            (
                "ENVIRONMENT",
                "CS_REQUIRE_SANDBOX=1: refuse to run unconfined (--unconfined, or a host that \
                 cannot confine) with exit status 2."
                    .to_string(),
            ),
            ("SEE ALSO", see_also("sandbox-child(1), cs-invoker-pool-run(1)")),
        ],
        "sandbox-child-pipe" => vec![(
            "SEE ALSO",
            see_also("sandbox-child(1), cs-invoker-pool-serve(1)"),
        )],
        _ => Vec::new(),
    }
}

fn run_exit_status() -> String {
    sandbox_child::cli::RUN_EXIT_STATUS
        .trim_start_matches("Exit status: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_makes_paragraphs_and_bullets() {
        let mut r = Roff::new();
        prose(&mut r, "One\ntwo.\n\nList:\n  - a\n    b;\n  - c\nAfter.");
        let s = r.to_roff();
        assert!(s.contains(".PP\nOne two.\n"), "{s}");
        assert!(s.contains(".IP \\(bu 2\na b;\n"), "{s}");
        assert!(s.contains(".IP \\(bu 2\nc\n.PP\nAfter.\n"), "{s}");
    }

    #[test]
    fn bash_arms_are_respelled_like_the_loop() {
        let s = "cmd=\"my__app__subcmd__run\"\n        my__subcmd__app__subcmd__run)\n";
        assert_eq!(
            fix_bash_hyphenated_bin(s, "my-app"),
            "cmd=\"my__app__subcmd__run\"\n        my__app__subcmd__run)\n"
        );
        assert_eq!(fix_bash_hyphenated_bin(s, "myapp"), s);
    }

    #[test]
    fn every_page_has_a_see_also() {
        let mut names = Vec::new();
        for cmd in [
            cs_invoker_pool::cli::command(),
            sandbox_child::cli::command(),
        ] {
            names.push(cmd.get_name().to_string());
            for s in cmd.get_subcommands() {
                names.push(format!("{}-{}", cmd.get_name(), s.get_name()));
            }
        }
        for n in names {
            assert!(
                sections(&n).iter().any(|(t, _)| *t == "SEE ALSO"),
                "{n} has no SEE ALSO"
            );
        }
    }
}
