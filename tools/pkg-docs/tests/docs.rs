//! `cs-invoker-pool-docs`, the tool `make pkg-docs` runs: the man pages and shell completions it
//! writes cover every subcommand and option of both command lines (read from the same clap
//! definitions the binaries parse with), and the bash completion really completes.

use std::path::{Path, PathBuf};
use std::process::Command;

const DOCS: &str = env!("CARGO_BIN_EXE_cs-invoker-pool-docs");

fn generate() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("docs");
    let r = Command::new(DOCS)
        .arg(&out)
        .args(["--date", "2026-11-29"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    (dir, out)
}

/// Each command and subcommand, as `(page name, command)`.
fn pages() -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    for mut cmd in [
        cs_invoker_pool::cli::command(),
        sandbox_child::cli::command(),
    ] {
        cmd.build();
        let name = cmd.get_name().to_string();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            out.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        out.push((name, cmd));
    }
    out
}

#[test]
fn every_subcommand_has_a_page_listing_its_options() {
    let (_tmp, out) = generate();
    let pages = pages();
    assert_eq!(
        pages.len(),
        7,
        "{:?}",
        pages.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    for (name, cmd) in pages {
        let page = std::fs::read_to_string(out.join("man").join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(
            page.starts_with(".ie") || page.contains("\n.TH "),
            "{name}: {page}"
        );
        assert!(page.contains(".SH \"SEE ALSO\""), "{name} has no SEE ALSO");
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes.
                let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&flag), "{name}.1 lacks --{long}");
            }
        }
    }
}

#[test]
fn sandbox_child_page_carries_what_run_shares_with_production() {
    let (_tmp, out) = generate();
    let page = std::fs::read_to_string(out.join("man/sandbox-child.1")).unwrap();
    for want in [
        "SIGKILL backstop",
        "CS_REQUIRE_SANDBOX=1",
        "EXIT STATUS",
        "159",
    ] {
        assert!(page.contains(want), "sandbox-child.1 lacks {want:?}");
    }
}

/// Completes `words` (the last one being typed) with the bash completion in `file`.
fn bash_complete(file: &Path, cmd: &str, words: &[&str]) -> Vec<String> {
    let script = r#"
        file=$1 cmd=$2; shift 2
        source "$file" || exit 9
        fn=$(complete -p "$cmd" | sed -E 's/.*-F ([^ ]+).*/\1/')
        COMP_WORDS=("$cmd" "$@"); COMP_CWORD=$#
        prev=$cmd; [ $# -ge 2 ] && prev=${COMP_WORDS[$(( $# - 1 ))]}
        "$fn" "$cmd" "${COMP_WORDS[$#]}" "$prev"
        printf '%s\n' "${COMPREPLY[@]}""#;
    let r = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "_"])
        .arg(file)
        .arg(cmd)
        .args(words)
        .output()
        .expect("bash");
    assert!(r.status.success(), "{r:?}");
    String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_options_and_values() {
    let (_tmp, out) = generate();
    let bash = out.join("completions/bash");
    let child = bash.join("sandbox-child.bash");
    let invoker = bash.join("cs-invoker-pool.bash");
    // Subcommands, then a subcommand's options (clap-rs/clap#6421 broke these for binary names
    // with a hyphen; the generator works around it), then a value list.
    let got = bash_complete(&child, "sandbox-child", &[""]);
    assert!(
        got.contains(&"run".to_string()) && got.contains(&"pipe".to_string()),
        "{got:?}"
    );
    assert_eq!(
        bash_complete(&child, "sandbox-child", &["run", "f.js", "--ex"]),
        ["--explain"]
    );
    assert_eq!(
        bash_complete(&child, "sandbox-child", &["run", "f.js", "--trigger", "ca"]),
        ["cadence"]
    );
    assert_eq!(
        bash_complete(&invoker, "cs-invoker-pool", &["check"]),
        ["check-config"]
    );
    assert_eq!(
        bash_complete(&invoker, "cs-invoker-pool", &["run", "f.js", "--kv"]),
        ["--kv-url"]
    );
    for f in [
        "zsh/_cs-invoker-pool",
        "zsh/_sandbox-child",
        "fish/cs-invoker-pool.fish",
        "fish/sandbox-child.fish",
    ] {
        let text = std::fs::read_to_string(out.join("completions").join(f)).unwrap();
        assert!(
            text.contains("explain") || text.contains("check-config"),
            "{f}"
        );
    }
}
