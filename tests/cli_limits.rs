//! Output limits (contract §9) through `cs-invoker-pool run`: logs 1 MiB, result 256 KiB.

#[macro_use]
mod support;

use support::cli::*;

/// Bytes of the function's log lines on stderr, newline included.
fn log_bytes(r: &Run) -> usize {
    r.logs().iter().map(|l| l.len() + 1).sum()
}

#[test]
fn logs_past_1_mib_are_truncated_with_a_notice() {
    // 2000 lines of ~1 KB: about 2 MiB asked, 1 MiB allowed.
    let r = run_js(
        r#"export default () => {
             for (let i = 0; i < 2000; i++) console.log("x".repeat(1000));
             return { body: "done" };
           };"#,
        &["--timeout-ms", "20000"],
    );
    // Truncated logs do not fail the function.
    assert_eq!(r.body(), "done", "{r:?}");
    assert!(r.logs_truncated(), "logs_truncated=true expected");
    assert!(!r.result_truncated(), "the result itself was small");
    let logs = r.logs();
    let last = *logs.last().expect("some log lines");
    let n: usize = last
        .strip_prefix("[warn] log output truncated at ")
        .and_then(|s| s.strip_suffix(" bytes"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| r.fail(&format!("last log line is not the notice: {last:?}")));
    assert!(
        n > 0 && n <= MAX_LOG_BYTES,
        "the notice names the cap, got {n}"
    );
    assert_eq!(
        logs.iter()
            .filter(|l| l.starts_with("[warn] log output truncated"))
            .count(),
        1,
        "exactly one notice"
    );
    let total = log_bytes(&r);
    assert!(
        total <= MAX_LOG_BYTES + 4096,
        "log bytes on stderr {total} exceed the 1 MiB cap"
    );
    assert!(
        total >= MAX_LOG_BYTES - 4096,
        "log bytes on stderr {total}: the cap should be filled before cutting"
    );
    // Lines that made it are whole lines (the last one before the notice may be cut short).
    let kept = &logs[..logs.len() - 1];
    let full = format!("[info] {}", "x".repeat(1000));
    for l in &kept[..kept.len() - 1] {
        assert_eq!(*l, full);
    }
    let cut = kept[kept.len() - 1];
    assert!(full.starts_with(cut), "{cut:?}");
}

#[test]
fn one_huge_log_line_is_bounded_too() {
    let r = run_js(
        r#"export default () => { console.log("y".repeat(3 * 1024 * 1024)); return { body: "ok" }; };"#,
        &["--timeout-ms", "20000"],
    );
    assert_eq!(r.body(), "ok", "{r:?}");
    assert!(r.logs_truncated());
    let total = log_bytes(&r);
    assert!(total <= MAX_LOG_BYTES + 4096, "log bytes {total}");
}

#[test]
fn logs_under_the_cap_are_not_truncated() {
    let r = run_js(
        r#"export default () => {
             for (let i = 0; i < 100; i++) console.log("line " + i);
             return { body: "done" };
           };"#,
        &[],
    );
    assert_eq!(r.body(), "done");
    assert!(!r.logs_truncated());
    let logs = r.logs();
    assert_eq!(logs.len(), 100, "{r:?}");
    assert_eq!(logs[99], "[info] line 99");
    assert!(!r.stderr.contains("log output truncated"));
}

#[test]
fn result_over_256_kib_is_cut_and_flagged() {
    let r = run_js(
        r#"export default () => ({ statusCode: 200, headers: { "x-k": "v" }, body: "y".repeat(300 * 1024) });"#,
        &[],
    );
    let res = r.success();
    let serialised = serde_json::to_string(&res).unwrap();
    assert!(
        serialised.len() <= MAX_RESULT_BYTES,
        "serialised result is {} bytes",
        serialised.len()
    );
    let body = res["body"].as_str().unwrap();
    assert!(
        body.bytes().all(|b| b == b'y'),
        "the body is a prefix of the original"
    );
    assert!(
        body.len() >= 200 * 1024,
        "the body is cut to fit, not emptied: {} bytes",
        body.len()
    );
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["headers"]["x-k"], "v");
    assert!(r.result_truncated(), "result_truncated=true expected");
    assert!(!r.logs_truncated());
}

#[test]
fn result_with_escapes_still_fits_after_truncation() {
    // Quotes double in size when serialised: the cut must count serialised bytes.
    let r = run_js(
        r#"export default () => ({ body: '"'.repeat(200 * 1024) });"#,
        &[],
    );
    let res = r.success();
    let serialised = serde_json::to_string(&res).unwrap();
    assert!(
        serialised.len() <= MAX_RESULT_BYTES,
        "serialised result is {} bytes",
        serialised.len()
    );
    assert!(r.result_truncated());
}

#[test]
fn result_under_the_cap_is_untouched() {
    let r = run_js(
        r#"export default () => ({ body: "z".repeat(200 * 1024) });"#,
        &[],
    );
    assert_eq!(r.body().len(), 200 * 1024);
    assert!(!r.result_truncated());
}

#[test]
fn non_object_return_over_the_cap_is_cut() {
    let r = run_js(r#"export default () => "w".repeat(400 * 1024);"#, &[]);
    let res = r.success();
    assert!(serde_json::to_string(&res).unwrap().len() <= MAX_RESULT_BYTES);
    assert!(r.result_truncated());
}
