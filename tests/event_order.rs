//! Issue 11 item 9 through `cs-invoker-pool run`: the event reaches the function with its keys
//! in their original order at every depth (it used to arrive sorted), and a failed call names
//! its callee, as V8 does. Expected values are what Node 20 computes for the same module and
//! event (kept in each test).

#[macro_use]
mod support;

use support::cli::*;

const KEYS: &str = r#"export default (event) => ({ body: JSON.stringify({
  top: Object.keys(event),
  nested: Object.keys(event.zeta),
  deep: Object.keys(event.zeta.mid.inner),
  arr: event.list.map((o) => Object.keys(o)),
  nums: Object.keys(event.numeric),
  text: JSON.stringify(event),
}) });
"#;

/// Keys deliberately out of alphabetical order at every depth, upper and lower case, and
/// integer-like keys (which JavaScript orders first, ascending, in every engine).
const EVENT: &str = r#"{"zeta":{"mid":{"inner":{"z":1,"a":2,"m":3}},"b":true,"a":null},"alpha":1,"list":[{"y":1,"x":2},{"d":0,"c":{"k":1}}],"numeric":{"b":1,"10":2,"2":3,"a":4},"Beta":"B","beta":"b"}"#;

#[test]
fn the_event_keeps_its_key_order_at_every_depth() {
    let r = run_js(KEYS, &["--event", EVENT]);
    // Node 20.
    let node = r#"{"top":["zeta","alpha","list","numeric","Beta","beta"],"nested":["mid","b","a"],"deep":["z","a","m"],"arr":[["y","x"],["d","c"]],"nums":["2","10","b","a"],"text":"{\"zeta\":{\"mid\":{\"inner\":{\"z\":1,\"a\":2,\"m\":3}},\"b\":true,\"a\":null},\"alpha\":1,\"list\":[{\"y\":1,\"x\":2},{\"d\":0,\"c\":{\"k\":1}}],\"numeric\":{\"2\":3,\"10\":2,\"b\":1,\"a\":4},\"Beta\":\"B\",\"beta\":\"b\"}"}"#;
    assert_eq!(r.body(), node, "{r:?}");

    // From a file too, whitespace and all.
    let fx = Fixture::new();
    let f = fx.write(
        "event.json",
        "{\n  \"b\": 1,\n  \"a\": {\"d\": 2, \"c\": 3}\n}\n",
    );
    let r = run_js(
        "export default (e) => ({ body: JSON.stringify(e) });",
        &["--event-file", f.to_str().unwrap()],
    );
    assert_eq!(r.body(), r#"{"b":1,"a":{"d":2,"c":3}}"#, "{r:?}");
}

#[test]
fn a_failed_call_names_its_callee() {
    // (line of code, what Node 20 throws). QuickJS-NG, as rquickjs 0.14 bundles it, says only
    // "not a function"; the runtime reads the callee back from the source at the error's
    // position. Where it cannot tell (a computed member) the message stays bare.
    let cases = [
        ("const x = 1; x();", "TypeError: x is not a function"),
        (
            "console.lag('hi');",
            "TypeError: console.lag is not a function",
        ),
        (
            "const obj = { a: {} }; obj.a.missing(1, 2);",
            "TypeError: obj.a.missing is not a function",
        ),
        ("const X = 1; new X();", "TypeError: X is not a constructor"),
        (
            "const o = { f: 1 }; o?.f();",
            "TypeError: o?.f is not a function",
        ),
    ];
    for (line, node) in cases {
        let r = run_js(&format!("export default () => {{\n  {line}\n}};"), &[]);
        assert_eq!(r.error("Exception"), node, "{line}\n{r:?}");
    }
    // Node 20 says "o.k is not a function"; here the bare message.
    let r = run_js(
        "export default () => {\n  const o = {};\n  o['k']();\n};",
        &[],
    );
    assert_eq!(r.error("Exception"), "TypeError: not a function", "{r:?}");
}
