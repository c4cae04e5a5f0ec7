//! The three kinds of PATH `run` accepts (directory, tar bundle, lone `.js`), module imports
//! inside a bundle, and imports that must be refused.

#[macro_use]
mod support;

use serde_json::json;
use support::cli::*;

const GREET_FN: &str = r#"import { greet } from "./lib/greet.js";
export default (event, ctx) => ({ body: JSON.stringify({ text: greet(event.name), fn: ctx.function }) });
"#;

const GREET_LIB: &str = r#"import { shout } from "./format.js";
export function greet(name) { return shout("hello " + name); }
"#;

const FORMAT_LIB: &str = "export const shout = (s) => s.toUpperCase() + \"!\";\n";

#[test]
fn directory_bundle_with_relative_imports() {
    let fx = Fixture::new();
    let p = fx.dir_bundle(
        "greeter",
        &[
            ("function.js", GREET_FN),
            ("lib/greet.js", GREET_LIB),
            ("lib/format.js", FORMAT_LIB),
            ("manifest.json", &manifest()),
        ],
    );
    let r = run_event(&p, &json!({"name": "Sous"}), &[]);
    assert_eq!(
        r.body_json(),
        json!({"text": "HELLO SOUS!", "fn": "greeter"}),
        "the function name is the directory name: {r:?}"
    );
}

#[test]
fn tar_bundle_with_relative_imports() {
    let fx = Fixture::new();
    let p = fx.tar_bundle(
        "greeter-tar",
        &[
            ("manifest.json", &manifest()),
            ("lib/format.js", FORMAT_LIB),
            ("function.js", GREET_FN),
            ("lib/greet.js", GREET_LIB),
        ],
    );
    let r = run_event(&p, &json!({"name": "tar"}), &[]);
    assert_eq!(
        r.body_json(),
        json!({"text": "HELLO TAR!", "fn": "greeter-tar"}),
        "the function name is the tar file name without .tar: {r:?}"
    );
}

#[test]
fn tar_bundle_made_by_system_tar() {
    let fx = Fixture::new();
    let src = fx.dir_bundle(
        "src",
        &[
            ("function.js", GREET_FN),
            ("lib/greet.js", GREET_LIB),
            ("lib/format.js", FORMAT_LIB),
            ("manifest.json", &manifest()),
        ],
    );
    let out = fx.path("systar.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .args(["function.js", "lib", "manifest.json"])
        .status()
        .expect("system tar runs");
    assert!(st.success());
    let r = run_event(&out, &json!({"name": "gnu"}), &[]);
    assert_eq!(
        r.body_json(),
        json!({"text": "HELLO GNU!", "fn": "systar"}),
        "{r:?}"
    );
}

#[test]
fn manifest_entry_selects_the_module() {
    let fx = Fixture::new();
    let m = json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "src/main.js",
        "handler": "default", "limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 1}
    });
    let p = fx.dir_bundle(
        "entry",
        &[
            (
                "src/main.js",
                "import { v } from './v.js'; export default () => ({ body: v });",
            ),
            ("src/v.js", "export const v = 'from-entry';"),
            (
                "function.js",
                "export default () => ({ body: 'wrong-module' });",
            ),
            ("manifest.json", &m.to_string()),
        ],
    );
    assert_eq!(run(&p, &[]).body(), "from-entry");
}

#[test]
fn manifest_timeout_applies_and_flag_overrides_it() {
    let fx = Fixture::new();
    let p = fx.function(
        "slow",
        "export default () => { const end = Date.now() + 600; while (Date.now() < end) {} return { body: 'finished' }; };",
        &manifest_with(200, 64, json!({})),
    );
    run(&p, &[]).failure("timeout", "Timeout");
    assert_eq!(run(&p, &["--timeout-ms", "5000"]).body(), "finished");
}

#[test]
fn import_outside_the_bundle_is_refused() {
    let fx = Fixture::new();
    fx.write("secret.js", "export const secret = 'TOP-SECRET-VALUE';");
    let p = fx.function(
        "escaper",
        "import { secret } from '../secret.js'; export default () => ({ body: secret });",
        &manifest(),
    );
    let r = run(&p, &[]);
    r.error("Exception");
    assert!(!r.stdout.contains("TOP-SECRET-VALUE"), "{r:?}");
}

#[test]
fn absolute_import_is_refused() {
    let fx = Fixture::new();
    let secret = fx.write("abs-secret.js", "export const secret = 'ABS-SECRET';");
    let p = fx.function(
        "abs",
        &format!(
            "import {{ secret }} from '{}'; export default () => ({{ body: secret }});",
            secret.display()
        ),
        &manifest(),
    );
    let r = run(&p, &[]);
    r.error("Exception");
    assert!(!r.stdout.contains("ABS-SECRET"), "{r:?}");
}

#[test]
fn lone_js_sibling_files_are_not_importable() {
    // A lone .js file is a bundle of one file: its directory is not part of it.
    let fx = Fixture::new();
    fx.write("helper.js", "export const h = 'SIBLING';");
    let p = fx.js(
        "lone",
        "import { h } from './helper.js'; export default () => ({ body: h });",
    );
    let r = run(&p, &[]);
    r.error("Exception");
    assert!(!r.stdout.contains("SIBLING"), "{r:?}");
}

#[test]
fn import_of_missing_module_is_exception() {
    let fx = Fixture::new();
    let p = fx.function(
        "missing",
        "import { x } from './nope.js'; export default () => ({ body: x });",
        &manifest(),
    );
    run(&p, &[]).error("Exception");
}

#[test]
fn tar_with_parent_dir_entry_is_a_bundle_error() {
    let fx = Fixture::new();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("function.js", "export default () => ({});".to_string()),
        ("manifest.json", manifest()),
        ("../evil.js", "export const e = 1;".to_string()),
    ] {
        let mut h = tar::Header::new_ustar();
        // Written by hand: the tar crate itself refuses `..` in set_path.
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    let p = fx.write("evil.tar", b.into_inner().unwrap());
    let r = run(&p, &[]);
    let v = r.result();
    assert_eq!(v["status"], "error", "{r:?}");
    assert_eq!(v["error"]["type"], "BundleError", "{r:?}");
}

#[test]
fn tar_without_manifest_is_refused() {
    let fx = Fixture::new();
    let p = fx.tar_bundle(
        "nomanifest",
        &[("function.js", "export default () => ({});")],
    );
    let r = run(&p, &[]);
    let v = r.result();
    assert_eq!(v["status"], "error", "{r:?}");
    let t = v["error"]["type"].as_str().unwrap();
    assert!(t == "BundleError" || t == "ManifestError", "{r:?}");
}

#[test]
fn a_garbage_tar_is_a_bundle_error() {
    let fx = Fixture::new();
    let p = fx.write("garbage.tar", vec![0x5au8; 3000]);
    let r = run(&p, &[]);
    r.error("BundleError");
}

#[test]
fn manifest_memory_applies_and_flag_overrides_it() {
    // About 48 MB of live arrays: over a 16 MiB manifest limit, under a 256 MiB override.
    let fx = Fixture::new();
    let p = fx.function(
        "hungry",
        r#"export default () => {
             const a = []; for (let i = 0; i < 30; i++) a.push(new Array(100000).fill(i));
             return { body: String(a.length) };
           };"#,
        &manifest_with(20000, 16, json!({})),
    );
    run(&p, &[]).error("MemoryLimit");
    assert_eq!(run(&p, &["--memory-mb", "256"]).body(), "30");
}
