//! `sandbox-child run` through the real binary: it confines itself like a pool child before the
//! function's code is loaded, `--explain` shows each step, `--no-seccomp` and `--unconfined`
//! do what they say, and the one-JSON-line result survives redirection to a file and a big
//! result.
//!
//! The confined cases need root (and a kernel with namespaces and seccomp). Without it they
//! skip with a printed reason, unless `CS_REQUIRE_SANDBOX=1`, when they fail.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_sandbox-child");
const REQUIRE: &str = "CS_REQUIRE_SANDBOX";

/// The steps `--explain` must show, in this order (others may come in between).
const STEPS: [&str; 7] = [
    "namespaces",
    "root",
    "identity",
    "capabilities",
    "no-new-privs",
    "rlimits",
    "seccomp",
];

fn required() -> bool {
    std::env::var(REQUIRE).as_deref() == Ok("1")
}

/// A fresh directory, readable by every user (the `nobody` case reads from it too).
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "run-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `src` as `<name>.js` in a fresh directory.
fn js(name: &str, src: &str) -> PathBuf {
    let p = scratch().join(format!("{name}.js"));
    std::fs::write(&p, src).unwrap();
    p
}

fn trivial() -> PathBuf {
    js(
        "trivial",
        "export default (e) => { console.log('log-line'); return { statusCode: 200, body: 'hi ' + e.n }; };",
    )
}

fn cmd(path: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg(path)
        .args(["--event", r#"{"n":7}"#])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |s: &str| s.chars().take(4000).collect::<String>();
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn exec(mut c: Command) -> Run {
    c.output().expect("cannot start sandbox-child").into()
}

/// The one result line of `stdout`, parsed.
fn result_line(stdout: &str, r: &dyn std::fmt::Debug) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one result line: {r:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// The `confine: <step>: ...` lines of stderr, as step names.
fn steps(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("confine: "))
        .filter_map(|l| l.split_once(": ").map(|(step, _)| step.to_string()))
        .filter(|s| s != "note" && s != "report")
        .collect()
}

fn assert_in_order(found: &[String], r: &Run) {
    let mut at = 0;
    for want in STEPS {
        match found[at..].iter().position(|s| s == want) {
            Some(i) => at += i + 1,
            None => panic!("step {want} missing or out of order in {found:?}: {r:?}"),
        }
    }
}

/// `None` when `run` can confine itself here; else why not. Fails the test under
/// `CS_REQUIRE_SANDBOX=1`.
fn unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    let reason = REASON
        .get_or_init(|| {
            if let Err(why) = sandbox_child::confine::preflight() {
                return Some(why.to_string());
            }
            let r = exec(cmd(&trivial(), &[]));
            if r.code == Some(0) && !r.stderr.contains("unconfined:") {
                None
            } else {
                Some(format!("a confined run fails here: {r:?}"))
            }
        })
        .clone();
    if let Some(why) = &reason {
        if required() {
            panic!("{REQUIRE}=1 but `run` cannot confine itself here: {why}");
        }
        eprintln!("skipping: {why}");
    }
    reason
}

#[test]
fn explain_lists_every_step_in_order_and_the_run_succeeds() {
    if unavailable().is_some() {
        return;
    }
    let r = exec(cmd(&trivial(), &["--explain"]));
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = result_line(&r.stdout, &r);
    assert_eq!(v["status"], "success", "{r:?}");
    assert_eq!(v["result"]["body"], "hi 7", "{r:?}");
    assert_in_order(&steps(&r.stderr), &r);
    assert!(
        r.stderr.contains("confine: seccomp: ") && !r.stderr.contains("seccomp: skipped"),
        "{r:?}"
    );
    assert!(r.stderr.contains("confine: report: "), "{r:?}");
    assert!(r.stderr.contains("uid 65534") || r.stderr.contains("confine: identity: uid "));
    // The function's log line comes after the confinement (the code ran confined).
    let confined_at = r.stderr.find("confine: seccomp: ").unwrap();
    let logged_at = r.stderr.find("log-line").expect("the log line on stderr");
    assert!(confined_at < logged_at, "{r:?}");
    assert!(!r.stderr.contains("unconfined"), "{r:?}");
}

#[test]
fn without_explain_a_confined_run_is_quiet() {
    if unavailable().is_some() {
        return;
    }
    let r = exec(cmd(&trivial(), &[]));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(steps(&r.stderr).is_empty(), "{r:?}");
    // Only the function's own log line.
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.trim_end().ends_with("log-line"), "{r:?}");
}

#[test]
fn no_seccomp_skips_only_seccomp_and_says_so() {
    if unavailable().is_some() {
        return;
    }
    let r = exec(cmd(&trivial(), &["--explain", "--no-seccomp"]));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(result_line(&r.stdout, &r)["status"], "success", "{r:?}");
    assert!(r.stderr.contains("confine: seccomp: skipped"), "{r:?}");
    assert!(r.stderr.contains("seccomp is OFF"), "{r:?}");
    for step in ["namespaces", "root", "identity", "no-new-privs", "rlimits"] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with(&format!("confine: {step}: ")) && !l.contains("skipped")),
            "{step} still applied: {r:?}"
        );
    }
    // Loud even without --explain.
    let r = exec(cmd(&trivial(), &["--no-seccomp"]));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("seccomp is OFF"), "{r:?}");
}

#[test]
fn output_redirected_to_regular_files_is_written() {
    if unavailable().is_some() {
        return;
    }
    let dir = scratch();
    let (out_path, err_path) = (dir.join("out.json"), dir.join("err.txt"));
    let mut c = cmd(&trivial(), &["--explain"]);
    c.stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let status = c.status().unwrap();
    let r = Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        result_line(&r.stdout, &r)["result"]["body"],
        "hi 7",
        "{r:?}"
    );
    assert!(r.stderr.contains("fsize 18446744073709551615"), "{r:?}");
    assert!(r.stderr.contains("log-line"), "{r:?}");
    assert_in_order(&steps(&r.stderr), &r);
}

#[test]
fn a_200_kib_result_is_printed_in_full() {
    if unavailable().is_some() {
        return;
    }
    let p = js(
        "big",
        "export default () => ({ statusCode: 200, body: 'x'.repeat(200 * 1024) + 'END' });",
    );
    // To a pipe.
    let r = exec(cmd(&p, &[]));
    assert_eq!(r.code, Some(0), "{:?}", r.code);
    let v = result_line(&r.stdout, &r.code);
    let body = v["result"]["body"].as_str().unwrap();
    assert_eq!(body.len(), 200 * 1024 + 3);
    assert!(body.ends_with("END"));
    // To a regular file.
    let out_path = scratch().join("big.json");
    let mut c = cmd(&p, &[]);
    c.stdout(std::fs::File::create(&out_path).unwrap());
    let status = c.status().unwrap();
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&out_path).unwrap();
    let v = result_line(&text, &status);
    assert_eq!(v["result"]["body"].as_str().unwrap().len(), 200 * 1024 + 3);
}

#[test]
fn unconfined_shows_no_steps() {
    let mut c = cmd(&trivial(), &["--explain", "--unconfined"]);
    c.env_remove(REQUIRE);
    let r = exec(c);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(result_line(&r.stdout, &r)["status"], "success", "{r:?}");
    assert!(steps(&r.stderr).is_empty(), "{r:?}");
    assert!(!r.stderr.contains("confine: "), "{r:?}");
    assert!(
        r.stderr.contains("unconfined: --unconfined was given"),
        "{r:?}"
    );
}

#[test]
fn require_sandbox_refuses_unconfined() {
    let mut c = cmd(&trivial(), &["--unconfined"]);
    c.env(REQUIRE, "1");
    let r = exec(c);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains("CS_REQUIRE_SANDBOX=1"), "{r:?}");
}

/// A process that cannot confine (here: not root) runs unconfined after an `unconfined:`
/// note, or refuses with exit 2 and the reason under `CS_REQUIRE_SANDBOX=1`.
#[test]
fn a_host_that_cannot_confine_runs_unconfined_or_refuses() {
    let dir = scratch();
    let p = dir.join("plain.js");
    std::fs::write(
        &p,
        "export default () => ({ statusCode: 200, body: 'ok' });",
    )
    .unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let as_nobody = |c: &mut Command| {
        if root {
            c.uid(65534).gid(65534);
        }
    };
    if root {
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.parent().unwrap(), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let mut c = cmd(&p, &["--explain"]);
    c.env_remove(REQUIRE);
    as_nobody(&mut c);
    let r = exec(c);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(result_line(&r.stdout, &r)["result"]["body"], "ok", "{r:?}");
    assert!(
        r.stderr
            .contains("unconfined: this process cannot confine itself: not running as root"),
        "{r:?}"
    );
    assert!(steps(&r.stderr).is_empty(), "{r:?}");

    let mut c = cmd(&p, &[]);
    c.env(REQUIRE, "1");
    as_nobody(&mut c);
    let r = exec(c);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(
        r.stderr.contains("CS_REQUIRE_SANDBOX=1") && r.stderr.contains("not running as root"),
        "{r:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let p = trivial();
    for extra in [
        &["--bogus"][..],
        &["--explain=yes"][..],
        &["--no-seccomp", "--unconfined"][..],
    ] {
        let r = exec(cmd(&p, extra));
        assert_eq!(r.code, Some(2), "{extra:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
        assert!(r.stderr.contains("sandbox-child --help"), "{r:?}");
    }
}

#[test]
fn help_says_what_is_the_same_and_what_differs() {
    let r = exec({
        let mut c = Command::new(BIN);
        c.arg("--help")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    });
    assert_eq!(r.code, Some(0), "{r:?}");
    for want in [
        "--explain",
        "--no-seccomp",
        "--unconfined",
        "seccomp",
        "rlimits",
        "engine limits",
        "no supervisor",
        "SIGKILL backstop",
        "cgroup memory limit",
        "cs.http.fetch",
        "CS_REQUIRE_SANDBOX=1",
    ] {
        assert!(r.stdout.contains(want), "--help lacks {want:?}: {r:?}");
    }
}
