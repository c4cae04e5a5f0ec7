//! `console`, formatting its arguments the way Node 20 does (`util.format` / `util.inspect`).
//!
//! Function authors (and the agents writing for them) read their logs expecting Node's
//! output: `console.log("user %s has %d items", name, n)`, objects as `{ id: 1, tags: [ 'a' ] }`
//! broken over lines at 80 columns, `Map(1) { 'k' => 1 }`, errors as their stack (whose first
//! line is `Name: message`, see [`super::error_stack`]) followed by their extra properties,
//! `[Circular *1]` for cycles, `[Object]` below depth 2. This is a Rust re-implementation of
//! those rules (written from Node's documented behaviour and checked against Node's output in
//! `tests/console_format.rs`), so a child pays nothing for it until something is logged.
//!
//! What differs from Node: no colours; Map/Set *iterators* and the `[Arguments]` marker are not
//! recognised (printed as plain objects); string widths count UTF-16 units (Node counts East
//! Asian wide characters twice when aligning grouped arrays); `%o` does not list prototype
//! properties. The output of one call is bounded ([`MAX_OUTPUT`]) before the log budget cuts it:
//! formatting stops adding detail once that many bytes exist, so a guest cannot make the child
//! build an unbounded string outside its memory limit.

use super::ffi::{self, Keys};
use super::globals::Shared;
use super::web::{brand, utf8};
use rquickjs::atom::PredefinedAtom;
use rquickjs::convert::Coerced;
use rquickjs::function::{Opt, Rest, This};
use rquickjs::{qjs, Ctx, Exception, Function, Object, Result, Value};
use sandbox_proto::protocol::LogLevel;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// Bytes one console call may produce before formatting stops adding detail (the log budget,
/// 1 MiB by default, then truncates the line).
pub const MAX_OUTPUT: usize = 4 << 20;

/// Objects nested inside one another that formatting descends into (also across custom
/// inspectors that call `inspect` again) before it stops, as Node does when its stack runs
/// out: a value nested deeper (`console.dir(list, { depth: null })` on a long linked list) must
/// not exhaust the native stack.
const MAX_NESTING: usize = 200;

thread_local! {
    static NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one level of [`NESTING`] while alive.
struct Nested;

impl Nested {
    fn enter() -> Option<Nested> {
        NESTING.with(|n| {
            if n.get() >= MAX_NESTING {
                return None;
            }
            n.set(n.get() + 1);
            Some(Nested)
        })
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// `console.count` / `console.time` state, per engine.
#[derive(Default)]
struct Counters {
    counts: HashMap<String, u64>,
    timers: HashMap<String, Instant>,
}

/// Defines `console` on the global object.
pub fn install<'js>(ctx: &Ctx<'js>, shared: &Rc<Shared>) -> Result<()> {
    let console = Object::new(ctx.clone())?;
    for (name, level) in [
        ("log", LogLevel::Info),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let sh = shared.clone();
        let f = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let text = format_args(&ctx, &args.0)?;
            sh.log(level, &text);
            Ok::<_, rquickjs::Error>(())
        })?
        .with_name(name)?;
        console.set(name, f)?;
    }

    let sh = shared.clone();
    let trace = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
        let msg = format_args(&ctx, &args.0)?;
        let err = Exception::from_message(ctx.clone(), &msg)?;
        let stack: Value = err.as_object().get("stack")?;
        let stack = utf8(&ctx, &stack)?;
        // "Error: msg\n    at …" → "Trace: msg\n    at …", as Node prints it.
        let frames = stack.find("\n    at").map(|i| &stack[i..]).unwrap_or("");
        let head = if msg.is_empty() {
            "Trace".to_string()
        } else {
            format!("Trace: {msg}")
        };
        sh.log(LogLevel::Error, &format!("{head}{frames}"));
        Ok::<_, rquickjs::Error>(())
    })?
    .with_name("trace")?;
    console.set("trace", trace)?;

    let sh = shared.clone();
    let dir = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, v: Opt<Value<'js>>, opts: Opt<Value<'js>>| {
            let v = v.0.unwrap_or_else(|| Value::new_undefined(ctx.clone()));
            let mut o = Options {
                custom_inspect: false,
                ..Options::default()
            };
            if let Some(opts) = opts.0.as_ref().and_then(|v| v.as_object()) {
                o.apply(opts)?;
            }
            let text = inspect(&ctx, &v, o)?;
            sh.log(LogLevel::Info, &text);
            Ok::<_, rquickjs::Error>(())
        },
    )?
    .with_name("dir")?;
    console.set("dir", dir)?;

    let sh = shared.clone();
    let assert = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
        let mut args = args.0;
        let ok = !args.is_empty() && truthy(&args.remove(0));
        if !ok {
            // As Node: the first argument becomes `Assertion failed: ${first}` (a string, so
            // its % directives apply to the rest), and the line goes out as a warning.
            let head = match args.first() {
                None => "Assertion failed".to_string(),
                Some(first) => format!("Assertion failed: {}", coerce(&ctx, first)?),
            };
            let head = rquickjs::String::from_str(ctx.clone(), &head)?.into_value();
            if args.is_empty() {
                args.push(head);
            } else {
                args[0] = head;
            }
            let text = format_args(&ctx, &args)?;
            sh.log(LogLevel::Warn, &text);
        }
        Ok::<_, rquickjs::Error>(())
    })?
    .with_name("assert")?;
    console.set("assert", assert)?;

    let counters = Rc::new(RefCell::new(Counters::default()));
    let (sh, c) = (shared.clone(), counters.clone());
    console.set(
        "count",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, label: Opt<Value<'js>>| {
            let label = label_of(&ctx, label)?;
            let n = {
                let mut c = c.borrow_mut();
                let n = c.counts.entry(label.clone()).or_insert(0);
                *n += 1;
                *n
            };
            sh.log(LogLevel::Info, &format!("{label}: {n}"));
            Ok::<_, rquickjs::Error>(())
        })?
        .with_name("count")?,
    )?;
    let (sh, c) = (shared.clone(), counters.clone());
    console.set(
        "countReset",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, label: Opt<Value<'js>>| {
            let label = label_of(&ctx, label)?;
            if c.borrow_mut().counts.remove(&label).is_none() {
                sh.log(
                    LogLevel::Warn,
                    &format!("Count for '{label}' does not exist"),
                );
            }
            Ok::<_, rquickjs::Error>(())
        })?
        .with_name("countReset")?,
    )?;
    let c = counters.clone();
    console.set(
        "time",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, label: Opt<Value<'js>>| {
            let label = label_of(&ctx, label)?;
            c.borrow_mut().timers.insert(label, Instant::now());
            Ok::<_, rquickjs::Error>(())
        })?
        .with_name("time")?,
    )?;
    for (name, end) in [("timeEnd", true), ("timeLog", false)] {
        let (sh, c) = (shared.clone(), counters.clone());
        console.set(
            name,
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, label: Opt<Value<'js>>, rest: Rest<Value<'js>>| {
                    let label = label_of(&ctx, label)?;
                    let started = {
                        let mut c = c.borrow_mut();
                        if end {
                            c.timers.remove(&label)
                        } else {
                            c.timers.get(&label).copied()
                        }
                    };
                    let line = match started {
                        Some(t) => {
                            let ms = t.elapsed().as_secs_f64() * 1e3;
                            let mut line = format!("{label}: {}", format_ms(ms));
                            if !rest.0.is_empty() {
                                line.push(' ');
                                line.push_str(&format_args(&ctx, &rest.0)?);
                            }
                            (LogLevel::Info, line)
                        }
                        None => (
                            LogLevel::Warn,
                            format!("Warning: No such label '{label}' for console.{name}()"),
                        ),
                    };
                    sh.log(line.0, &line.1);
                    Ok::<_, rquickjs::Error>(())
                },
            )?
            .with_name(name)?,
        )?;
    }
    ctx.globals().set("console", console)
}

fn label_of<'js>(ctx: &Ctx<'js>, label: Opt<Value<'js>>) -> Result<String> {
    match label.0 {
        Some(v) if !v.is_undefined() => utf8(ctx, &v),
        _ => Ok("default".into()),
    }
}

/// Node's `console.timeEnd` figure: milliseconds with three decimals, or seconds past 1 s.
fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3}s", ms / 1000.0)
    } else {
        format!("{ms:.3}ms")
    }
}

fn truthy(v: &Value<'_>) -> bool {
    // SAFETY: JS_ToBool reads a live value; it runs no JavaScript for primitives and only
    // checks the class for objects.
    unsafe { qjs::JS_ToBool(v.ctx().as_raw().as_ptr(), v.as_raw()) > 0 }
}

/// `util.inspect` options that `console` uses.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Nesting shown before `[Object]`; `None` is unlimited.
    pub depth: Option<i64>,
    pub show_hidden: bool,
    pub show_proxy: bool,
    pub break_length: usize,
    pub compact: usize,
    pub max_array_length: usize,
    pub max_string_length: usize,
    /// Call `[Symbol.for('nodejs.util.inspect.custom')]` methods (`console.dir` does not).
    pub custom_inspect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            depth: Some(2),
            show_hidden: false,
            show_proxy: false,
            break_length: 80,
            compact: 3,
            max_array_length: 100,
            max_string_length: 10000,
            custom_inspect: true,
        }
    }
}

impl Options {
    /// Reads `depth`, `showHidden`, `breakLength`, `maxArrayLength`, `maxStringLength` from a
    /// guest options object (`console.dir(v, { depth: null })`).
    fn apply(&mut self, o: &Object<'_>) -> Result<()> {
        let depth: Value = o.get("depth")?;
        if depth.is_null() {
            self.depth = None;
        } else if let Some(n) = depth.as_number() {
            self.depth = if n.is_infinite() && n > 0.0 {
                None
            } else {
                Some(n as i64)
            };
        }
        if let Some(b) = o.get::<_, Value>("showHidden")?.as_bool() {
            self.show_hidden = b;
        }
        if let Some(b) = o.get::<_, Value>("customInspect")?.as_bool() {
            self.custom_inspect = b;
        }
        for (key, slot) in [
            ("breakLength", &mut self.break_length),
            ("maxArrayLength", &mut self.max_array_length),
            ("maxStringLength", &mut self.max_string_length),
        ] {
            if let Some(n) = o.get::<_, Value>(key)?.as_number() {
                *slot = if n.is_finite() {
                    n.max(0.0) as usize
                } else {
                    usize::MAX
                };
            }
        }
        Ok(())
    }
}

/// `util.format(...args)`: printf-style directives in a first string argument, then the rest
/// separated by spaces (strings as they are, anything else inspected).
pub fn format_args<'js>(ctx: &Ctx<'js>, args: &[Value<'js>]) -> Result<String> {
    let mut out = String::new();
    let mut a = 0usize;
    let mut join = "";
    if let Some(first) = args.first().filter(|v| v.is_string()) {
        let first = utf8(ctx, first)?;
        if args.len() == 1 {
            return Ok(first);
        }
        let bytes = first.as_bytes();
        let mut last = 0usize;
        let mut i = 0usize;
        while i + 1 < bytes.len() {
            if bytes[i] != b'%' {
                i += 1;
                continue;
            }
            i += 1;
            let next = bytes[i];
            if a + 1 != args.len() {
                let sub = match next {
                    b's' => {
                        a += 1;
                        Some(format_s(ctx, &args[a])?)
                    }
                    b'j' => {
                        a += 1;
                        Some(format_j(ctx, &args[a])?)
                    }
                    b'd' => {
                        a += 1;
                        Some(format_d(ctx, &args[a], "Number")?)
                    }
                    b'i' => {
                        a += 1;
                        Some(format_d(ctx, &args[a], "parseInt")?)
                    }
                    b'f' => {
                        a += 1;
                        Some(format_d(ctx, &args[a], "parseFloat")?)
                    }
                    b'O' => {
                        a += 1;
                        Some(inspect(ctx, &args[a], Options::default())?)
                    }
                    b'o' => {
                        a += 1;
                        let o = Options {
                            show_hidden: true,
                            show_proxy: true,
                            depth: Some(4),
                            ..Options::default()
                        };
                        Some(inspect(ctx, &args[a], o)?)
                    }
                    b'c' => {
                        a += 1;
                        Some(String::new())
                    }
                    b'%' => {
                        out.push_str(&first[last..i]);
                        last = i + 1;
                        None
                    }
                    _ => None,
                };
                if let Some(sub) = sub {
                    if last != i - 1 {
                        out.push_str(&first[last..i - 1]);
                    }
                    out.push_str(&sub);
                    last = i + 1;
                }
            } else if next == b'%' {
                out.push_str(&first[last..i]);
                last = i + 1;
            }
            i += 1;
        }
        if last != 0 {
            a += 1;
            join = " ";
            if last < first.len() {
                out.push_str(&first[last..]);
            }
        }
    }
    while a < args.len() {
        out.push_str(join);
        let v = &args[a];
        if v.is_string() {
            out.push_str(&utf8(ctx, v)?);
        } else {
            out.push_str(&inspect(ctx, v, Options::default())?);
        }
        join = " ";
        a += 1;
        if out.len() > MAX_OUTPUT {
            break;
        }
    }
    Ok(out)
}

/// `%s`: numbers and bigints as numbers, objects without a toString of their own inspected at
/// depth 0, everything else `String(v)`.
fn format_s<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<String> {
    if v.is_number() {
        return number_text(ctx, v);
    }
    if v.is_big_int() {
        return Ok(format!("{}n", coerce(ctx, v)?));
    }
    if let Some(o) = v.as_object() {
        if has_builtin_to_string(ctx, o)? {
            let opts = Options {
                depth: Some(0),
                ..Options::default()
            };
            return inspect(ctx, v, opts);
        }
    }
    if v.is_symbol() {
        return symbol_text(v);
    }
    coerce(ctx, v)
}

/// `%j`: `JSON.stringify`, or `[Circular]` for a cyclic value.
fn format_j<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<String> {
    match ctx.json_stringify(v.clone()) {
        Ok(Some(s)) => utf8(ctx, &s.into_value()),
        Ok(None) => Ok("undefined".into()),
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
            let msg = e
                .as_object()
                .and_then(|o| {
                    o.get::<_, Option<Coerced<String>>>("message")
                        .ok()
                        .flatten()
                })
                .map(|c| c.0)
                .unwrap_or_default();
            if msg.contains("circular") {
                Ok("[Circular]".into())
            } else {
                Err(ctx.throw(e))
            }
        }
        Err(e) => Err(e),
    }
}

/// `%d` (`Number`), `%i` (`parseInt`), `%f` (`parseFloat`): bigints keep their `n`, symbols
/// are `NaN`.
fn format_d<'js>(ctx: &Ctx<'js>, v: &Value<'js>, how: &str) -> Result<String> {
    if v.is_big_int() && how != "parseFloat" {
        return Ok(format!("{}n", coerce(ctx, v)?));
    }
    if v.is_symbol() {
        return Ok("NaN".into());
    }
    let f: Function = ctx.globals().get(how)?;
    let n: Value = f.call((v.clone(),))?;
    number_text(ctx, &n)
}

/// `util.inspect(v, opts)`.
pub fn inspect<'js>(ctx: &Ctx<'js>, v: &Value<'js>, opts: Options) -> Result<String> {
    let mut i = Inspector {
        ctx: ctx.clone(),
        opts,
        seen: Vec::new(),
        circular: Vec::new(),
        indentation: 0,
        current_depth: 0,
        produced: 0,
        custom: None,
    };
    i.value(v, 0)
}

#[derive(Clone, Copy, PartialEq)]
enum Extras {
    Object,
    Array,
}

struct Inspector<'js> {
    ctx: Ctx<'js>,
    opts: Options,
    /// Objects being formatted, outermost first (to detect cycles).
    seen: Vec<Value<'js>>,
    /// Objects found to be referenced from inside themselves, with their `*N` numbers.
    circular: Vec<(Value<'js>, usize)>,
    indentation: usize,
    current_depth: i64,
    produced: usize,
    /// `Symbol.for('nodejs.util.inspect.custom')`, looked up on first need.
    custom: Option<Value<'js>>,
}

/// Names of the engine's constructors: an object whose `toString` comes from one of these has a
/// built-in `toString` (what `%s` looks at).
const BUILTINS: &[&str] = &[
    "Object",
    "Function",
    "Array",
    "Number",
    "Boolean",
    "String",
    "Symbol",
    "Date",
    "Promise",
    "RegExp",
    "Error",
    "AggregateError",
    "EvalError",
    "RangeError",
    "ReferenceError",
    "SyntaxError",
    "TypeError",
    "URIError",
    "ArrayBuffer",
    "Uint8Array",
    "Int8Array",
    "Uint16Array",
    "Int16Array",
    "Uint32Array",
    "Int32Array",
    "Float32Array",
    "Float64Array",
    "Uint8ClampedArray",
    "BigUint64Array",
    "BigInt64Array",
    "DataView",
    "Map",
    "BigInt",
    "Set",
    "WeakMap",
    "WeakSet",
    "Proxy",
    "Reflect",
    "WeakRef",
    "FinalizationRegistry",
    "SharedArrayBuffer",
    "Iterator",
];

impl<'js> Inspector<'js> {
    fn value(&mut self, v: &Value<'js>, recurse: i64) -> Result<String> {
        let Some(obj) = v.as_object().cloned() else {
            let s = if v.is_null() {
                "null".to_string()
            } else {
                self.primitive(v)?
            };
            return Ok(s);
        };
        if self.produced > MAX_OUTPUT {
            return Ok("…".into());
        }
        let Some(_nested) = Nested::enter() else {
            return Ok(
                "[Object: Inspection interrupted prematurely. Maximum call stack size exceeded.]"
                    .into(),
            );
        };
        // Proxies are shown as their target, without running any trap (showProxy: as both).
        let mut value = obj;
        if v.is_proxy() {
            let (target, handler) = proxy_parts(&self.ctx, v)?;
            if target.is_null() {
                return Ok("<Revoked Proxy>".into());
            }
            if self.opts.show_proxy {
                return self.proxy(&target, &handler, recurse);
            }
            match target.into_object() {
                Some(t) => value = t,
                None => return Ok("<Revoked Proxy>".into()),
            }
        }
        let value_v = value.clone().into_value();

        // A custom inspector (`[Symbol.for('nodejs.util.inspect.custom')]`), unless this is a
        // prototype object (`x.constructor.prototype === x`).
        let custom: Value = if self.opts.custom_inspect {
            let custom_key = self.custom_symbol()?;
            value.get(custom_key)?
        } else {
            Value::new_undefined(self.ctx.clone())
        };
        if let Some(f) = custom.as_function() {
            if !self.is_prototype(&value)? {
                let depth = match self.opts.depth {
                    Some(d) => Value::new_number(self.ctx.clone(), (d - recurse) as f64),
                    None => Value::new_null(self.ctx.clone()),
                };
                let options = self.options_object()?;
                let inspect_fn = inspect_function(&self.ctx)?;
                let ret: Value = f.call((This(v.clone()), depth, options, inspect_fn))?;
                if ret != *v && ret != value_v {
                    if ret.is_string() {
                        let s = utf8(&self.ctx, &ret)?;
                        let pad = format!("\n{}", " ".repeat(self.indentation));
                        return Ok(s.replace('\n', &pad));
                    }
                    return self.value(&ret, recurse);
                }
            }
        }

        if self.seen.contains(&value_v) {
            let index = match self.circular.iter().find(|(o, _)| *o == value_v) {
                Some((_, i)) => *i,
                None => {
                    let i = self.circular.len() + 1;
                    self.circular.push((value_v.clone(), i));
                    i
                }
            };
            return Ok(format!("[Circular *{index}]"));
        }
        self.raw(&value, recurse)
    }

    fn custom_symbol(&mut self) -> Result<Value<'js>> {
        if let Some(s) = &self.custom {
            return Ok(s.clone());
        }
        let s = rquickjs::Symbol::new_global(self.ctx.clone(), "nodejs.util.inspect.custom")?
            .into_value();
        self.custom = Some(s.clone());
        Ok(s)
    }

    fn is_prototype(&self, o: &Object<'js>) -> Result<bool> {
        let c: Value = o.get("constructor")?;
        if let Some(c) = c.as_object() {
            let p: Value = c.get("prototype")?;
            return Ok(p == o.clone().into_value());
        }
        Ok(false)
    }

    /// The options a custom inspector receives.
    fn options_object(&self) -> Result<Object<'js>> {
        let o = Object::new(self.ctx.clone())?;
        match self.opts.depth {
            Some(d) => o.set("depth", d as f64)?,
            None => o.set("depth", Value::new_null(self.ctx.clone()))?,
        }
        o.set("colors", false)?;
        o.set("showHidden", self.opts.show_hidden)?;
        o.set("compact", self.opts.compact as f64)?;
        o.set("breakLength", self.opts.break_length as f64)?;
        o.set("customInspect", self.opts.custom_inspect)?;
        o.set(
            "stylize",
            Function::new(self.ctx.clone(), |s: Value<'js>| s)?,
        )?;
        Ok(o)
    }

    fn proxy(&mut self, target: &Value<'js>, handler: &Value<'js>, recurse: i64) -> Result<String> {
        if self.depth_exceeded(recurse) {
            return Ok("Proxy [Array]".into());
        }
        self.indentation += 2;
        let parts = vec![
            self.value(target, recurse + 1)?,
            self.value(handler, recurse + 1)?,
        ];
        self.indentation -= 2;
        Ok(self.reduce(
            parts,
            "",
            ("Proxy [", "]"),
            Extras::Array,
            recurse + 1,
            None,
        ))
    }

    fn depth_exceeded(&self, recurse: i64) -> bool {
        matches!(self.opts.depth, Some(d) if recurse > d)
    }

    /// `formatRaw`: the object itself, by kind.
    fn raw(&mut self, value: &Object<'js>, recurse: i64) -> Result<String> {
        let v = value.clone().into_value();
        let constructor = self.constructor_name(value)?;
        let tag = self.to_string_tag(value)?;
        let kind = brand(&v);
        let mut base = String::new();
        let mut braces: (String, String) = ("{".into(), "}".into());
        let mut extras = Extras::Object;
        let mut keys: Vec<Value<'js>>;
        enum Body {
            None,
            Array,
            Set,
            Map,
            Typed,
            ArrayBuffer,
            Promise,
            Weak,
        }
        let mut body = Body::None;
        let ctor = constructor.as_deref();

        if kind == "Array" {
            let len = array_length(value)?;
            let prefix = if ctor != Some("Array") || !tag.is_empty() {
                prefix_of(ctor, &tag, "Array", &format!("({len})"))
            } else {
                String::new()
            };
            keys = self.non_index_keys(value)?;
            braces = (format!("{prefix}["), "]".into());
            if len == 0 && keys.is_empty() {
                return Ok(format!("{}]", braces.0));
            }
            extras = Extras::Array;
            body = Body::Array;
        } else if kind == "Set" || kind == "Map" {
            let size: f64 = value.get::<_, Option<f64>>("size")?.unwrap_or(0.0);
            let prefix = prefix_of(ctor, &tag, kind, &format!("({size})"));
            keys = self.keys(value)?;
            if size == 0.0 && keys.is_empty() {
                return Ok(format!("{prefix}{{}}"));
            }
            braces = (format!("{prefix}{{"), "}".into());
            body = if kind == "Set" { Body::Set } else { Body::Map };
        } else if let Some(name) = typed_kind(kind) {
            keys = self.non_index_keys(value)?;
            let len: usize = value.get::<_, Option<f64>>("length")?.unwrap_or(0.0) as usize;
            let fallback = if ctor.is_none() { name } else { "" };
            let prefix = prefix_of(ctor, &tag, fallback, &format!("({len})"));
            braces = (format!("{prefix}["), "]".into());
            if len == 0 && keys.is_empty() && !self.opts.show_hidden {
                return Ok(format!("{}]", braces.0));
            }
            extras = Extras::Array;
            body = Body::Typed;
        } else {
            keys = self.keys(value)?;
            if value.is_function() {
                base = self.function_base(value, ctor, &tag)?;
                if keys.is_empty() {
                    return Ok(base);
                }
            } else if ctor == Some("Object") && kind == "Object" {
                if !tag.is_empty() {
                    braces.0 = format!("{}{{", prefix_of(ctor, &tag, "Object", ""));
                }
                if keys.is_empty() {
                    return Ok(format!("{}}}", braces.0));
                }
            } else if kind == "RegExp" {
                let source = utf8(&self.ctx, &value.get::<_, Value>("source")?)?;
                let flags = utf8(&self.ctx, &value.get::<_, Value>("flags")?)?;
                base = format!("/{source}/{flags}");
                let prefix = prefix_of(ctor, &tag, "RegExp", "");
                if prefix != "RegExp " {
                    base = format!("{prefix}{base}");
                }
                if keys.is_empty() || self.depth_exceeded(recurse) {
                    return Ok(base);
                }
            } else if kind == "Date" {
                base = self.date_text(value)?;
                let prefix = prefix_of(ctor, &tag, "Date", "");
                if prefix != "Date " {
                    base = format!("{prefix}{base}");
                }
                if keys.is_empty() {
                    return Ok(base);
                }
            } else if kind == "Error" {
                base = self.error(value, ctor, &tag, &mut keys)?;
                if keys.is_empty() {
                    return Ok(base);
                }
            } else if kind == "ArrayBuffer" {
                let prefix = prefix_of(ctor, &tag, "ArrayBuffer", "");
                braces.0 = format!("{prefix}{{");
                keys.insert(0, self.str_value("byteLength")?);
                body = Body::ArrayBuffer;
            } else if kind == "DataView" {
                braces.0 = format!("{}{{", prefix_of(ctor, &tag, "DataView", ""));
                for (i, k) in ["byteLength", "byteOffset", "buffer"].iter().enumerate() {
                    keys.insert(i, self.str_value(k)?);
                }
            } else if kind == "Promise" {
                braces.0 = format!("{}{{", prefix_of(ctor, &tag, "Promise", ""));
                body = Body::Promise;
            } else if kind == "WeakSet" || kind == "WeakMap" {
                braces.0 = format!("{}{{", prefix_of(ctor, &tag, kind, ""));
                body = Body::Weak;
            } else if let Some(b) = self.boxed(value, &mut keys, ctor, &tag)? {
                base = b;
                if keys.is_empty() {
                    return Ok(base);
                }
            } else if !self.depth_exceeded(recurse) && looks_like_url(value)? {
                // Node prints anything URL-shaped (an href and a protocol, no legacy `auth`
                // or `path`) as its href when no custom inspector does it.
                base = utf8(&self.ctx, &value.get::<_, Value>("href")?)?;
                if keys.is_empty() {
                    return Ok(base);
                }
            } else {
                let style = self.ctx_style(value, ctor, &tag)?;
                if keys.is_empty() {
                    return Ok(format!("{style}{{}}"));
                }
                braces.0 = format!("{style}{{");
            }
        }

        if self.depth_exceeded(recurse) {
            let style = self.ctx_style(value, ctor, &tag)?;
            let name = style.strip_suffix(' ').unwrap_or(&style).to_string();
            return Ok(if ctor.is_some() {
                format!("[{name}]")
            } else {
                name
            });
        }
        let recurse = recurse + 1;
        self.seen.push(v.clone());
        self.current_depth = recurse;
        let mut output = match body {
            Body::Array => self.array(value, recurse)?,
            Body::Set => self.set_entries(value, recurse)?,
            Body::Map => self.map_entries(value, recurse)?,
            Body::Typed => self.typed(value, recurse)?,
            Body::ArrayBuffer => vec![self.array_buffer(value)?],
            Body::Promise => self.promise(value, recurse)?,
            Body::Weak => vec!["<items unknown>".into()],
            Body::None => Vec::new(),
        };
        for k in &keys {
            let p = self.property(value, recurse, k)?;
            output.push(p);
        }
        if let Some((_, index)) = self.circular.iter().find(|(o, _)| *o == v) {
            let reference = format!("<ref *{index}>");
            base = if base.is_empty() {
                reference
            } else {
                format!("{reference} {base}")
            };
        }
        self.seen.pop();
        let r = self.reduce(
            output,
            &base,
            (&braces.0, &braces.1),
            extras,
            recurse,
            Some(value),
        );
        self.produced += r.len();
        Ok(r)
    }

    fn str_value(&self, s: &str) -> Result<Value<'js>> {
        Ok(rquickjs::String::from_str(self.ctx.clone(), s)?.into_value())
    }

    /// Own enumerable keys (strings, then enumerable symbols); with `showHidden`, all own keys.
    fn keys(&self, o: &Object<'js>) -> Result<Vec<Value<'js>>> {
        let all = ffi::own_keys(
            &self.ctx,
            o,
            Keys {
                strings: true,
                symbols: true,
                enumerable_only: !self.opts.show_hidden,
            },
        )?;
        // Strings come before symbols in QuickJS' order already.
        Ok(all.into_iter().map(|(k, _)| k).collect())
    }

    /// Like [`Self::keys`] without array indices (arrays and typed arrays list those apart).
    fn non_index_keys(&self, o: &Object<'js>) -> Result<Vec<Value<'js>>> {
        let mut keys = self.keys(o)?;
        keys.retain(|k| match k.as_string().and_then(|s| s.to_string().ok()) {
            Some(s) => !is_index(&s),
            None => true,
        });
        Ok(keys)
    }

    fn constructor_name(&self, o: &Object<'js>) -> Result<Option<String>> {
        let mut cur = Some(o.clone());
        let mut first = true;
        let mut first_proto_null = false;
        while let Some(obj) = cur {
            if let Some(d) = ffi::own_property_str(&self.ctx, &obj, "constructor")? {
                if let Some(c) = d.value.and_then(|v| v.into_function()) {
                    let name: Value = c.get("name")?;
                    if let Some(name) = name.as_string() {
                        let name = name.to_string().unwrap_or_default();
                        if !name.is_empty() && o.is_instance_of(c.clone().into_value()) {
                            return Ok(Some(name));
                        }
                    }
                }
            }
            cur = obj.get_prototype();
            if first {
                first_proto_null = cur.is_none();
                first = false;
            }
        }
        if first_proto_null {
            return Ok(None);
        }
        Ok(Some("Object".into()))
    }

    fn to_string_tag(&self, o: &Object<'js>) -> Result<String> {
        let tag: Value = o.get(PredefinedAtom::SymbolToStringTag)?;
        let Some(s) = tag.as_string() else {
            return Ok(String::new());
        };
        let s = s.to_string().unwrap_or_default();
        if s.is_empty() {
            return Ok(s);
        }
        // Shown only when it is not an own (enumerable, or with showHidden any) property.
        let key = ffi::atom_value(&self.ctx, PredefinedAtom::SymbolToStringTag)?;
        if let Some(d) = ffi::own_property(&self.ctx, o, &key)? {
            if self.opts.show_hidden || d.enumerable {
                return Ok(String::new());
            }
        }
        Ok(s)
    }

    fn ctx_style(&self, o: &Object<'js>, ctor: Option<&str>, tag: &str) -> Result<String> {
        let mut fallback = String::new();
        if ctor.is_none() {
            fallback = internal_name(o);
            if fallback == tag {
                fallback = "Object".into();
            }
        }
        Ok(prefix_of(ctor, tag, &fallback, ""))
    }

    fn function_base(&self, f: &Object<'js>, ctor: Option<&str>, tag: &str) -> Result<String> {
        let source = function_source(&self.ctx, f)?;
        if source.starts_with("class") && source.ends_with('}') {
            let body = &source[5..source.len() - 1];
            if let Some(b) = body.find('{') {
                if !body[..b].contains('(') {
                    return self.class_base(f, ctor, tag);
                }
            }
        }
        let ty = ctor
            .filter(|c| {
                matches!(
                    *c,
                    "AsyncFunction" | "GeneratorFunction" | "AsyncGeneratorFunction"
                )
            })
            .unwrap_or("Function");
        let mut base = format!("[{ty}");
        if ctor.is_none() {
            base.push_str(" (null prototype)");
        }
        let name: Value = f.get("name")?;
        let name = if name.is_undefined() {
            String::new()
        } else {
            utf8(&self.ctx, &name)?
        };
        if name.is_empty() {
            base.push_str(" (anonymous)");
        } else {
            base.push_str(": ");
            base.push_str(&name);
        }
        base.push(']');
        if let Some(c) = ctor {
            if c != ty {
                base.push(' ');
                base.push_str(c);
            }
        }
        if !tag.is_empty() && ctor != Some(tag) {
            base.push_str(&format!(" [{tag}]"));
        }
        Ok(base)
    }

    fn class_base(&self, f: &Object<'js>, ctor: Option<&str>, tag: &str) -> Result<String> {
        let name = match ffi::own_property_str(&self.ctx, f, "name")? {
            Some(_) => {
                let n: Value = f.get("name")?;
                if truthy(&n) {
                    utf8(&self.ctx, &n)?
                } else {
                    "(anonymous)".into()
                }
            }
            None => "(anonymous)".into(),
        };
        let mut base = format!("class {name}");
        if let Some(c) = ctor {
            if c != "Function" {
                base.push_str(&format!(" [{c}]"));
            }
        }
        if !tag.is_empty() && ctor != Some(tag) {
            base.push_str(&format!(" [{tag}]"));
        }
        if ctor.is_some() {
            if let Some(sup) = f.get_prototype() {
                let n: Value = sup.get("name")?;
                if truthy(&n) {
                    base.push_str(&format!(" extends {}", utf8(&self.ctx, &n)?));
                }
            }
        } else {
            base.push_str(" extends [null prototype]");
        }
        Ok(format!("[{base}]"))
    }

    fn date_text(&self, d: &Object<'js>) -> Result<String> {
        let date: Object = self.ctx.globals().get("Date")?;
        let proto: Object = date.get("prototype")?;
        let get_time: Function = proto.get("getTime")?;
        let t: f64 = get_time.call((This(d.clone()),))?;
        let f: Function = if t.is_nan() {
            proto.get("toString")?
        } else {
            proto.get("toISOString")?
        };
        let s: Value = f.call((This(d.clone()),))?;
        utf8(&self.ctx, &s)
    }

    /// `[Number: 3]`, `[String: 'x']`, … for boxed primitives (checked by calling the
    /// primitive's own `valueOf`, which only accepts its own kind).
    fn boxed(
        &self,
        o: &Object<'js>,
        keys: &mut Vec<Value<'js>>,
        ctor: Option<&str>,
        tag: &str,
    ) -> Result<Option<String>> {
        // Only objects that claim to be one are checked: a failed check throws (and builds an
        // error), which every plain object would otherwise pay for.
        let candidates: &[&str] = match ctor {
            Some("Number") => &["Number"],
            Some("String") => &["String"],
            Some("Boolean") => &["Boolean"],
            Some("BigInt") => &["BigInt"],
            Some("Symbol") => &["Symbol"],
            _ => &[],
        };
        for ty in candidates {
            let c: Value = self.ctx.globals().get(*ty)?;
            let Some(c) = c.as_object() else { continue };
            let proto: Object = c.get("prototype")?;
            let value_of: Function = proto.get("valueOf")?;
            let p: Value = match value_of.call((This(o.clone()),)) {
                Ok(p) => p,
                Err(rquickjs::Error::Exception) => {
                    let e = self.ctx.catch();
                    if e.is_uncatchable_error() {
                        return Err(self.ctx.throw(e));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if *ty == "String" {
                let len = utf8(&self.ctx, &p)?.encode_utf16().count();
                let mut dropped = 0;
                keys.retain(|k| {
                    let idx = k
                        .as_string()
                        .and_then(|s| s.to_string().ok())
                        .filter(|s| is_index(s))
                        .and_then(|s| s.parse::<usize>().ok());
                    match idx {
                        Some(i) if i < len => {
                            dropped += 1;
                            false
                        }
                        _ => true,
                    }
                });
            }
            let shown = {
                let mut sub = Inspector {
                    ctx: self.ctx.clone(),
                    opts: Options {
                        break_length: usize::MAX,
                        ..self.opts
                    },
                    seen: Vec::new(),
                    circular: Vec::new(),
                    indentation: 0,
                    current_depth: 0,
                    produced: 0,
                    custom: None,
                };
                sub.primitive(&p)?
            };
            let mut base = format!("[{ty}");
            match ctor {
                None => base.push_str(" (null prototype)"),
                Some(c) if c != *ty => base.push_str(&format!(" ({c})")),
                _ => {}
            }
            base.push_str(&format!(": {shown}]"));
            if !tag.is_empty() && Some(tag) != ctor {
                base.push_str(&format!(" [{tag}]"));
            }
            return Ok(Some(base));
        }
        Ok(None)
    }

    fn error(
        &mut self,
        err: &Object<'js>,
        ctor: Option<&str>,
        tag: &str,
        keys: &mut Vec<Value<'js>>,
    ) -> Result<String> {
        let name_v: Value = err.get("name")?;
        let name = if name_v.is_undefined() || name_v.is_null() {
            "Error".to_string()
        } else {
            utf8(&self.ctx, &name_v)?
        };
        let stack_v: Value = err.get("stack")?;
        let mut stack = if truthy(&stack_v) {
            utf8(&self.ctx, &stack_v)?
        } else {
            error_to_string(&self.ctx, err)?
        };
        // Hide name/message/stack keys whose text the stack already shows.
        if !self.opts.show_hidden && !keys.is_empty() {
            for k in ["name", "message", "stack"] {
                if let Some(pos) = keys.iter().position(|x| {
                    x.as_string().and_then(|s| s.to_string().ok()).as_deref() == Some(k)
                }) {
                    let val: Value = err.get(k)?;
                    let text = utf8(&self.ctx, &val)?;
                    if stack.contains(&text) {
                        keys.remove(pos);
                    }
                }
            }
        }
        let has_key = |keys: &Vec<Value<'js>>, k: &str| {
            keys.iter()
                .any(|x| x.as_string().and_then(|s| s.to_string().ok()).as_deref() == Some(k))
        };
        if err.contains_key("cause")? && !has_key(keys, "cause") {
            keys.push(self.str_value("cause")?);
        }
        let errors: Value = err.get("errors")?;
        if errors.is_array() && !has_key(keys, "errors") {
            keys.push(self.str_value("errors")?);
        }
        stack = improve_stack(stack, ctor, &name, tag);

        let message: Value = err.get("message")?;
        let message = if truthy(&message) {
            Some(utf8(&self.ctx, &message)?)
        } else {
            None
        };
        // `(message && stack.indexOf(message)) || -1`, then past the message.
        let mut pos: Option<usize> = message.as_ref().and_then(|m| match stack.find(m.as_str()) {
            Some(0) | None => None,
            Some(p) => Some(p),
        });
        if let (Some(p), Some(m)) = (pos, &message) {
            pos = Some(p + m.len());
        }
        let from = pos.unwrap_or(0).min(stack.len());
        let start = stack[from..].find("\n    at").map(|i| i + from);
        let mut out = match start {
            None => format!("[{stack}]"),
            Some(s) => {
                let head = &stack[..s];
                let frames = &stack[s + 1..];
                let lines = self.dedupe_cause_frames(err, frames)?;
                format!("{head}\n{}", lines.join("\n"))
            }
        };
        if self.indentation != 0 {
            let pad = format!("\n{}", " ".repeat(self.indentation));
            out = out.replace('\n', &pad);
        }
        Ok(out)
    }

    /// Frames the error shares with its `cause` collapse into `... N lines matching cause
    /// stack trace ...`.
    fn dedupe_cause_frames(&self, err: &Object<'js>, frames: &str) -> Result<Vec<String>> {
        let mut lines: Vec<String> = frames.split('\n').map(str::to_string).collect();
        let cause: Value = match err.get("cause") {
            Ok(c) => c,
            Err(rquickjs::Error::Exception) => {
                let e = self.ctx.catch();
                if e.is_uncatchable_error() {
                    return Err(self.ctx.throw(e));
                }
                return Ok(lines);
            }
            Err(e) => return Err(e),
        };
        let Some(cause) = cause.as_object().filter(|_| cause.is_error()) else {
            return Ok(lines);
        };
        let cs: Value = cause.get("stack")?;
        let cause_stack = if truthy(&cs) {
            utf8(&self.ctx, &cs)?
        } else {
            error_to_string(&self.ctx, cause)?
        };
        if let Some(i) = cause_stack.find("\n    at") {
            let cause_frames: Vec<&str> = cause_stack[i + 1..].split('\n').collect();
            let (len, offset) = identical_sequence(&lines, &cause_frames);
            if len > 0 {
                let skipped = len - 2;
                let msg = format!("    ... {skipped} lines matching cause stack trace ...");
                lines.splice(offset + 1..offset + 1 + skipped, [msg]);
            }
        }
        Ok(lines)
    }

    fn array(&mut self, a: &Object<'js>, recurse: i64) -> Result<Vec<String>> {
        let len = array_length(a)?;
        let shown = len.min(self.opts.max_array_length);
        let mut out = Vec::new();
        let mut i = 0usize;
        while i < shown {
            let key = Value::new_number(self.ctx.clone(), i as f64);
            match ffi::own_property(&self.ctx, a, &key)? {
                Some(d) => {
                    let s = self.descriptor_text(d, recurse)?;
                    out.push(s);
                    i += 1;
                }
                None => return self.sparse_array(a, recurse, shown, out, i, len),
            }
            if self.produced > MAX_OUTPUT {
                break;
            }
        }
        if len > shown {
            out.push(remaining(len - shown));
        }
        Ok(out)
    }

    /// The rest of an array from its first hole: runs of holes as `<N empty items>`.
    fn sparse_array(
        &mut self,
        a: &Object<'js>,
        recurse: i64,
        max: usize,
        mut out: Vec<String>,
        start: usize,
        len: usize,
    ) -> Result<Vec<String>> {
        let indices: Vec<usize> = ffi::own_keys(
            &self.ctx,
            a,
            Keys {
                strings: true,
                symbols: false,
                enumerable_only: true,
            },
        )?
        .into_iter()
        .filter_map(|(k, _)| k.as_string().and_then(|s| s.to_string().ok()))
        .take_while(|s| is_index(s))
        .filter_map(|s| s.parse::<usize>().ok())
        .filter(|&i| i >= start)
        .collect();
        let mut index = start;
        for i in indices {
            if out.len() >= max {
                break;
            }
            if i != index {
                let empty = i - index;
                out.push(format!(
                    "<{empty} empty item{}>",
                    if empty > 1 { "s" } else { "" }
                ));
                index = i;
                if out.len() == max {
                    break;
                }
            }
            let key = Value::new_number(self.ctx.clone(), i as f64);
            if let Some(d) = ffi::own_property(&self.ctx, a, &key)? {
                let s = self.descriptor_text(d, recurse)?;
                out.push(s);
            }
            index += 1;
        }
        let rest = len - index.min(len);
        if out.len() != max {
            if rest > 0 {
                out.push(format!(
                    "<{rest} empty item{}>",
                    if rest > 1 { "s" } else { "" }
                ));
            }
        } else if rest > 0 {
            out.push(remaining(rest));
        }
        Ok(out)
    }

    fn typed(&mut self, a: &Object<'js>, recurse: i64) -> Result<Vec<String>> {
        let len: usize = a.get::<_, Option<f64>>("length")?.unwrap_or(0.0) as usize;
        let shown = len.min(self.opts.max_array_length);
        let mut out = Vec::with_capacity(shown + 1);
        for i in 0..shown {
            let v: Value = a.get(i as u32)?;
            out.push(self.primitive(&v)?);
        }
        if len > shown {
            out.push(remaining(len - shown));
        }
        if self.opts.show_hidden {
            self.indentation += 2;
            for key in [
                "BYTES_PER_ELEMENT",
                "length",
                "byteLength",
                "byteOffset",
                "buffer",
            ] {
                let v: Value = a.get(key)?;
                let s = self.value(&v, recurse)?;
                out.push(format!("[{key}]: {s}"));
            }
            self.indentation -= 2;
        }
        Ok(out)
    }

    fn array_buffer(&self, b: &Object<'js>) -> Result<String> {
        let v = b.clone().into_value();
        let shown = super::web::with_bytes(&v, |bytes| {
            let n = bytes.len().min(self.opts.max_array_length);
            let mut s = super::web::encoding::hex_encode(&bytes[..n])
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            if bytes.len() > n {
                let rest = bytes.len() - n;
                s.push_str(&format!(
                    " ... {rest} more byte{}",
                    if rest > 1 { "s" } else { "" }
                ));
            }
            s
        })
        .unwrap_or_else(|| "(detached)".into());
        Ok(format!("[Uint8Contents]: <{shown}>"))
    }

    fn set_entries(&mut self, s: &Object<'js>, recurse: i64) -> Result<Vec<String>> {
        let items = self.iterate(s, "Set", "values")?;
        let mut out = Vec::new();
        self.indentation += 2;
        let total = items.1;
        for v in &items.0 {
            out.push(self.value(v, recurse)?);
        }
        self.indentation -= 2;
        if total > items.0.len() {
            out.push(remaining(total - items.0.len()));
        }
        Ok(out)
    }

    fn map_entries(&mut self, m: &Object<'js>, recurse: i64) -> Result<Vec<String>> {
        let items = self.iterate(m, "Map", "entries")?;
        let mut out = Vec::new();
        self.indentation += 2;
        let total = items.1;
        for e in &items.0 {
            let Some(pair) = e.as_object() else { continue };
            let k: Value = pair.get(0u32)?;
            let v: Value = pair.get(1u32)?;
            let ks = self.value(&k, recurse)?;
            let vs = self.value(&v, recurse)?;
            out.push(format!("{ks} => {vs}"));
        }
        self.indentation -= 2;
        if total > items.0.len() {
            out.push(remaining(total - items.0.len()));
        }
        Ok(out)
    }

    /// The first `maxArrayLength` items of a Map or Set through the built-in iterator, and the
    /// collection's size.
    fn iterate(
        &self,
        o: &Object<'js>,
        class: &str,
        method: &str,
    ) -> Result<(Vec<Value<'js>>, usize)> {
        let c: Object = self.ctx.globals().get(class)?;
        let proto: Object = c.get("prototype")?;
        let f: Function = proto.get(method)?;
        let it: Object = f.call((This(o.clone()),))?;
        let next: Function = it.get("next")?;
        let mut items = Vec::new();
        let mut total = 0usize;
        loop {
            let r: Object = next.call((This(it.clone()),))?;
            if r.get::<_, Option<bool>>("done")?.unwrap_or(true) {
                break;
            }
            if items.len() < self.opts.max_array_length {
                items.push(r.get::<_, Value>("value")?);
            }
            total += 1;
        }
        Ok((items, total))
    }

    fn promise(&mut self, p: &Object<'js>, recurse: i64) -> Result<Vec<String>> {
        let promise = rquickjs::Promise::from_value(p.clone().into_value())?;
        use rquickjs::promise::PromiseState;
        let state = promise.state();
        if state == PromiseState::Pending {
            return Ok(vec!["<pending>".into()]);
        }
        // SAFETY: the promise is settled, so JS_PromiseResult returns its (owned) result.
        let result = unsafe {
            let v = qjs::JS_PromiseResult(self.ctx.as_raw().as_ptr(), p.as_raw());
            Value::from_raw(self.ctx.clone(), v)
        };
        self.indentation += 2;
        let s = self.value(&result, recurse)?;
        self.indentation -= 2;
        Ok(vec![if state == PromiseState::Rejected {
            format!("<rejected> {s}")
        } else {
            s
        }])
    }

    /// `key: value` (or just the value in arrays), reading the own descriptor so accessors
    /// show as `[Getter]` without being called.
    fn property(&mut self, o: &Object<'js>, recurse: i64, key: &Value<'js>) -> Result<String> {
        let desc = match ffi::own_property(&self.ctx, o, key)? {
            Some(d) => d,
            None => ffi::Descriptor {
                value: Some(o.get(key.clone())?),
                getter: None,
                setter: None,
                enumerable: true,
            },
        };
        let enumerable = desc.enumerable;
        let text = self.descriptor_text(desc, recurse)?;
        let name = if key.is_symbol() {
            format!("[{}]", escape_plain(&symbol_text(key)?))
        } else {
            let k = utf8(&self.ctx, key)?;
            if k == "__proto__" {
                "['__proto__']".to_string()
            } else if !enumerable {
                format!("[{}]", escape_plain(&k))
            } else if is_identifier(&k) {
                k
            } else {
                str_escape(&k)
            }
        };
        Ok(format!("{name}: {text}"))
    }

    fn descriptor_text(&mut self, d: ffi::Descriptor<'js>, recurse: i64) -> Result<String> {
        if let Some(v) = d.value {
            self.indentation += 2;
            let s = self.value(&v, recurse);
            self.indentation -= 2;
            return s;
        }
        Ok(match (d.getter.is_some(), d.setter.is_some()) {
            (true, true) => "[Getter/Setter]".into(),
            (true, false) => "[Getter]".into(),
            (false, true) => "[Setter]".into(),
            (false, false) => "undefined".into(),
        })
    }

    /// `formatPrimitive`.
    fn primitive(&mut self, v: &Value<'js>) -> Result<String> {
        if v.is_string() {
            let s = utf8(&self.ctx, v)?;
            let units = s.encode_utf16().count();
            let (s, trailer) = if units > self.opts.max_string_length {
                let cut = cut_utf16(&s, self.opts.max_string_length);
                let rest = units - self.opts.max_string_length;
                (
                    cut.to_string(),
                    format!(
                        "... {rest} more character{}",
                        if rest > 1 { "s" } else { "" }
                    ),
                )
            } else {
                (s, String::new())
            };
            let len = s.encode_utf16().count();
            let out = if len > 16
                && (len as i64) > self.opts.break_length as i64 - self.indentation as i64 - 4
            {
                let pieces: Vec<String> = split_keep_newlines(&s)
                    .into_iter()
                    .map(str_escape)
                    .collect();
                let sep = format!(" +\n{}", " ".repeat(self.indentation + 2));
                pieces.join(&sep) + &trailer
            } else {
                str_escape(&s) + &trailer
            };
            self.produced += out.len();
            return Ok(out);
        }
        if v.is_number() {
            return number_text(&self.ctx, v);
        }
        if v.is_big_int() {
            return Ok(format!("{}n", coerce(&self.ctx, v)?));
        }
        if let Some(b) = v.as_bool() {
            return Ok(b.to_string());
        }
        if v.is_undefined() {
            return Ok("undefined".into());
        }
        if v.is_symbol() {
            return symbol_text(v);
        }
        coerce(&self.ctx, v)
    }

    /// `reduceToSingleString`: one line when the entries fit in `breakLength` and the object
    /// holds at most `compact` levels of nesting, else one entry per line.
    fn reduce(
        &self,
        output: Vec<String>,
        base: &str,
        braces: (&str, &str),
        extras: Extras,
        recurse: i64,
        value: Option<&Object<'js>>,
    ) -> String {
        let entries = output.len();
        let output = if extras == Extras::Array && entries > 6 {
            self.group_array_elements(output, value)
        } else {
            output
        };
        let base_sp = if base.is_empty() {
            String::new()
        } else {
            format!("{base} ")
        };
        if self.current_depth - recurse < self.opts.compact as i64 && entries == output.len() {
            let start = output.len() + self.indentation + width(braces.0) + width(base) + 10;
            if self.below_break_length(&output, start, base) {
                let joined = output.join(", ");
                if !joined.contains('\n') {
                    return format!("{base_sp}{} {joined} {}", braces.0, braces.1);
                }
            }
        }
        let ind = format!("\n{}", " ".repeat(self.indentation));
        format!(
            "{base_sp}{}{ind}  {}{ind}{}",
            braces.0,
            output.join(&format!(",{ind}  ")),
            braces.1
        )
    }

    fn below_break_length(&self, output: &[String], start: usize, base: &str) -> bool {
        let mut total = output.len() + start;
        if total + output.len() > self.opts.break_length {
            return false;
        }
        for o in output {
            total += width(o);
            if total > self.opts.break_length {
                return false;
            }
        }
        base.is_empty() || !base.contains('\n')
    }

    /// `groupArrayElements`: long arrays of short items are laid out in aligned columns.
    fn group_array_elements(
        &self,
        output: Vec<String>,
        value: Option<&Object<'js>>,
    ) -> Vec<String> {
        let mut total_length = 0usize;
        let mut max_length = 0usize;
        let mut output_length = output.len();
        if self.opts.max_array_length < output.len() {
            // The "... more items" entry does not take part.
            output_length -= 1;
        }
        let separator_space = 2;
        let mut data_len = Vec::with_capacity(output_length);
        for o in output.iter().take(output_length) {
            let len = width(o);
            data_len.push(len);
            total_length += len + separator_space;
            max_length = max_length.max(len);
        }
        let actual_max = max_length + separator_space;
        if actual_max * 3 + self.indentation < self.opts.break_length
            && (total_length as f64 / actual_max as f64 > 5.0 || max_length <= 6)
        {
            let approx_char_heights = 2.5;
            let average_bias =
                (actual_max as f64 - total_length as f64 / output.len() as f64).sqrt();
            let biased_max = (actual_max as f64 - 3.0 - average_bias).max(1.0);
            let columns = js_round(
                (approx_char_heights * biased_max * output_length as f64).sqrt() / biased_max,
            )
            .min(((self.opts.break_length - self.indentation) as f64 / actual_max as f64).floor())
            .min(self.opts.compact as f64 * 4.0)
            .min(15.0);
            if columns <= 1.0 || columns.is_nan() {
                return output;
            }
            let columns = columns as usize;
            let mut max_line_length = Vec::with_capacity(columns);
            for i in 0..columns {
                let mut line_max = 0;
                let mut j = i;
                while j < output.len() {
                    if let Some(&l) = data_len.get(j) {
                        line_max = line_max.max(l);
                    }
                    j += columns;
                }
                max_line_length.push(line_max + separator_space);
            }
            // Numbers (and bigints) are right-aligned, anything else left-aligned.
            let mut pad_start = true;
            if let Some(v) = value {
                for i in 0..output.len() {
                    let item: Value = match v.get(i as u32) {
                        Ok(x) => x,
                        Err(_) => {
                            let _ = self.ctx.catch();
                            pad_start = false;
                            break;
                        }
                    };
                    if !item.is_number() && !item.is_big_int() {
                        pad_start = false;
                        break;
                    }
                }
            }
            let mut tmp = Vec::new();
            let mut i = 0;
            while i < output_length {
                let max = (i + columns).min(output_length);
                let mut line = String::new();
                let mut j = i;
                while j < max - 1 {
                    let cell = format!("{}, ", output[j]);
                    line.push_str(&pad(&cell, max_line_length[j - i], pad_start));
                    j += 1;
                }
                if pad_start {
                    let w = max_line_length[j - i] - separator_space;
                    line.push_str(&pad(&output[j], w, true));
                } else {
                    line.push_str(&output[j]);
                }
                tmp.push(line);
                i += columns;
            }
            if self.opts.max_array_length < output.len() {
                if let Some(last) = output.last() {
                    tmp.push(last.clone());
                }
            }
            return tmp;
        }
        output
    }
}

/// `inspect` as a JavaScript function, for custom inspectors (`(depth, options, inspect)`).
fn inspect_function<'js>(ctx: &Ctx<'js>) -> Result<Function<'js>> {
    Function::new(
        ctx.clone(),
        |ctx: Ctx<'js>, v: Opt<Value<'js>>, opts: Opt<Value<'js>>| -> Result<String> {
            let v = v.0.unwrap_or_else(|| Value::new_undefined(ctx.clone()));
            let mut o = Options::default();
            if let Some(opts) = opts.0.as_ref().and_then(|v| v.as_object()) {
                o.apply(opts)?;
            }
            inspect(&ctx, &v, o)
        },
    )?
    .with_name("inspect")
}

fn proxy_parts<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<(Value<'js>, Value<'js>)> {
    // SAFETY: `v` is a live proxy; both calls return new (owned) references, or JS_NULL for a
    // revoked proxy, and run no JavaScript.
    unsafe {
        let t = qjs::JS_GetProxyTarget(ctx.as_raw().as_ptr(), v.as_raw());
        if qjs::JS_IsException(t) {
            return Err(rquickjs::Error::Exception);
        }
        let t = Value::from_raw(ctx.clone(), t);
        let h = qjs::JS_GetProxyHandler(ctx.as_raw().as_ptr(), v.as_raw());
        if qjs::JS_IsException(h) {
            return Err(rquickjs::Error::Exception);
        }
        Ok((t, Value::from_raw(ctx.clone(), h)))
    }
}

fn looks_like_url(o: &Object<'_>) -> Result<bool> {
    Ok(truthy(&o.get::<_, Value>("href")?)
        && truthy(&o.get::<_, Value>("protocol")?)
        && o.get::<_, Value>("auth")?.is_undefined()
        && o.get::<_, Value>("path")?.is_undefined())
}

fn array_length(a: &Object<'_>) -> Result<usize> {
    Ok(a.get::<_, Option<f64>>("length")?.unwrap_or(0.0).max(0.0) as usize)
}

fn typed_kind(kind: &str) -> Option<&'static str> {
    [
        "Uint8ClampedArray",
        "Int8Array",
        "Uint8Array",
        "Int16Array",
        "Uint16Array",
        "Int32Array",
        "Uint32Array",
        "BigInt64Array",
        "BigUint64Array",
        "Float16Array",
        "Float32Array",
        "Float64Array",
    ]
    .into_iter()
    .find(|k| *k == kind)
}

/// The class name QuickJS keeps for an object (for null-prototype objects): `Object`, or the
/// brand of a built-in.
fn internal_name(o: &Object<'_>) -> String {
    match brand(&o.clone().into_value()) {
        "" => "Object".into(),
        b => b.to_string(),
    }
}

/// `getPrefix`.
fn prefix_of(ctor: Option<&str>, tag: &str, fallback: &str, size: &str) -> String {
    match ctor {
        None => {
            if !tag.is_empty() && fallback != tag {
                format!("[{fallback}{size}: null prototype] [{tag}] ")
            } else {
                format!("[{fallback}{size}: null prototype] ")
            }
        }
        Some(c) => {
            if !tag.is_empty() && c != tag {
                format!("{c}{size} [{tag}] ")
            } else {
                format!("{c}{size} ")
            }
        }
    }
}

/// `improveStack`: make the first line of an error subclass's stack name its class
/// (`class ValidationError extends Error {}` prints `ValidationError: …`).
fn improve_stack(stack: String, ctor: Option<&str>, name: &str, tag: &str) -> String {
    let len = name.len();
    let after = stack.as_bytes().get(len).copied();
    let regular = name.ends_with("Error")
        && stack.starts_with(name)
        && (stack.len() == len || after == Some(b':') || after == Some(b'\n'));
    if !(ctor.is_none() || regular) {
        return stack;
    }
    let mut fallback = "Error".to_string();
    let mut len = len;
    if ctor.is_none() {
        let start: String = stack
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_ []()-".contains(*c))
            .collect();
        let found =
            stack[start.len()..].starts_with(':') || stack[start.len()..].starts_with("\n    at");
        let f = if found && start.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            start
        } else {
            String::new()
        };
        len = f.len();
        fallback = if f.is_empty() { "Error".into() } else { f };
    }
    let prefix = prefix_of(ctor, tag, &fallback, "");
    let prefix = prefix.strip_suffix(' ').unwrap_or(&prefix).to_string();
    if name == prefix {
        return stack;
    }
    let rest = stack.get(len..).unwrap_or("");
    if prefix.contains(name) {
        if len == 0 {
            format!("{prefix}: {stack}")
        } else {
            format!("{prefix}{rest}")
        }
    } else {
        format!("{prefix} [{name}]{rest}")
    }
}

/// `identicalSequenceRange(a, b)`: the longest run (> 3) of `a` found in `b`.
fn identical_sequence(a: &[String], b: &[&str]) -> (usize, usize) {
    if a.len() < 4 {
        return (0, 0);
    }
    for i in 0..a.len() - 3 {
        if let Some(pos) = b.iter().position(|x| *x == a[i]) {
            let rest = b.len() - pos;
            if rest > 3 {
                let mut len = 1;
                let max_len = (a.len() - i).min(rest);
                while max_len > len && a[i + len] == b[pos + len] {
                    len += 1;
                }
                if len > 3 {
                    return (len, i);
                }
            }
        }
    }
    (0, 0)
}

fn remaining(n: usize) -> String {
    format!("... {n} more item{}", if n > 1 { "s" } else { "" })
}

fn is_index(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u64>().is_ok_and(|n| n < u32::MAX as u64)
}

/// `/^[a-zA-Z_][a-zA-Z_0-9]*$/`
fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Width of a piece of output, in UTF-16 units (what Node's `.length` counts).
fn width(s: &str) -> usize {
    s.encode_utf16().count()
}

fn pad(s: &str, to: usize, start: bool) -> String {
    let w = width(s);
    if w >= to {
        return s.to_string();
    }
    let fill = " ".repeat(to - w);
    if start {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// `Math.round` (halves toward +∞).
fn js_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

fn cut_utf16(s: &str, units: usize) -> &str {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        if n + c.len_utf16() > units {
            return &s[..i];
        }
        n += c.len_utf16();
    }
    s
}

/// `str.split(/(?<=\n)/)`: lines with their newline kept.
fn split_keep_newlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '\n' {
            out.push(&s[start..=i]);
            start = i + 1;
        }
    }
    if start < s.len() || out.is_empty() {
        out.push(&s[start..]);
    }
    out
}

/// The escape of one character in a quoted string (Node's `meta` table), if it needs one.
fn meta(c: char) -> Option<String> {
    let n = c as u32;
    Some(match c {
        '\x08' => "\\b".into(),
        '\t' => "\\t".into(),
        '\n' => "\\n".into(),
        '\x0C' => "\\f".into(),
        '\r' => "\\r".into(),
        '\\' => "\\\\".into(),
        _ if n < 0x20 || (0x7f..0xa0).contains(&n) => format!("\\x{n:02X}"),
        _ => return None,
    })
}

/// Escapes without quoting (symbol descriptions and hidden keys).
fn escape_plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match meta(c) {
            Some(e) => out.push_str(&e),
            None if c == '\'' => out.push_str("\\'"),
            None => out.push(c),
        }
    }
    out
}

/// `strEscape`: a quoted string literal, single quotes unless the text holds one (then double
/// quotes, or backticks if it holds both).
fn str_escape(s: &str) -> String {
    let mut quote = '\'';
    if s.contains('\'') {
        if !s.contains('"') {
            quote = '"';
        } else if !s.contains('`') && !s.contains("${") {
            quote = '`';
        }
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match meta(c) {
            Some(e) => out.push_str(&e),
            None if c == '\'' && quote == '\'' => out.push_str("\\'"),
            None => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn coerce<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<String> {
    let s: Coerced<rquickjs::String> = v.get()?;
    utf8(ctx, &s.0.into_value())
}

/// A number as JavaScript prints it, `-0` kept.
fn number_text<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<String> {
    if let Some(f) = v.as_float() {
        if f == 0.0 && f.is_sign_negative() {
            return Ok("-0".into());
        }
    }
    if let Some(i) = v.as_int() {
        return Ok(i.to_string());
    }
    coerce(ctx, v)
}

fn symbol_text(v: &Value<'_>) -> Result<String> {
    let Some(sym) = v.as_symbol() else {
        return Ok(String::new());
    };
    let d = sym.description()?;
    if d.is_undefined() {
        return Ok("Symbol()".into());
    }
    Ok(format!("Symbol({})", utf8(v.ctx(), &d)?))
}

/// `Error.prototype.toString` of `err`.
fn error_to_string<'js>(ctx: &Ctx<'js>, err: &Object<'js>) -> Result<String> {
    let e: Object = ctx.globals().get("Error")?;
    let p: Object = e.get("prototype")?;
    let f: Function = p.get("toString")?;
    let s: Value = f.call((This(err.clone()),))?;
    utf8(ctx, &s)
}

fn function_source<'js>(ctx: &Ctx<'js>, f: &Object<'js>) -> Result<String> {
    let func: Object = ctx.globals().get("Function")?;
    let p: Object = func.get("prototype")?;
    let to_string: Function = p.get("toString")?;
    let s: Value = to_string.call((This(f.clone()),))?;
    utf8(ctx, &s)
}

/// Whether `%s` should inspect this object: its `toString`/`Symbol.toPrimitive` comes from a
/// built-in prototype, not from the object or a class of the guest's.
fn has_builtin_to_string<'js>(ctx: &Ctx<'js>, o: &Object<'js>) -> Result<bool> {
    if o.is_proxy() {
        return Ok(true);
    }
    let to_string_key = rquickjs::String::from_str(ctx.clone(), "toString")?.into_value();
    let to_prim_key =
        rquickjs::Atom::from_predefined(ctx.clone(), PredefinedAtom::SymbolToPrimitive)
            .to_value()?;
    let has_to_string = o.get::<_, Value>("toString")?.is_function();
    let has_to_prim = o
        .get::<_, Value>(PredefinedAtom::SymbolToPrimitive)?
        .is_function();
    if !has_to_string && !has_to_prim {
        return Ok(true);
    }
    let mut cur = Some(o.clone());
    let mut first = true;
    while let Some(obj) = cur {
        let own = (has_to_string && ffi::own_property(ctx, &obj, &to_string_key)?.is_some())
            || (has_to_prim && ffi::own_property(ctx, &obj, &to_prim_key)?.is_some());
        if own {
            if first {
                return Ok(false);
            }
            let Some(d) = ffi::own_property_str(ctx, &obj, "constructor")? else {
                return Ok(false);
            };
            let Some(c) = d.value.and_then(|v| v.into_function()) else {
                return Ok(false);
            };
            let name: Value = c.get("name")?;
            let name = name
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_default();
            return Ok(BUILTINS.contains(&name.as_str()));
        }
        first = false;
        cur = obj.get_prototype();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_quoting_follows_node() {
        assert_eq!(str_escape("abc"), "'abc'");
        assert_eq!(str_escape("it's"), "\"it's\"");
        assert_eq!(str_escape("say \"hi\" it's"), "`say \"hi\" it's`");
        assert_eq!(str_escape("a\nb\u{7f}"), "'a\\nb\\x7F'");
        assert_eq!(str_escape("both ' \" ${x} `"), "'both \\' \" ${x} `'");
    }

    #[test]
    fn keys_and_indices() {
        assert!(is_identifier("a_1"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("1a"));
        assert!(is_index("0") && is_index("42") && !is_index("01") && !is_index("-1"));
        assert_eq!(split_keep_newlines("a\nb\n"), vec!["a\n", "b\n"]);
        assert_eq!(split_keep_newlines("ab"), vec!["ab"]);
    }

    #[test]
    fn error_subclass_names_its_class() {
        assert_eq!(
            improve_stack(
                "Error: x\n    at f".into(),
                Some("ValidationError"),
                "Error",
                ""
            ),
            "ValidationError: x\n    at f"
        );
        assert_eq!(
            improve_stack("Error: x".into(), Some("Error"), "Error", ""),
            "Error: x"
        );
        assert_eq!(
            improve_stack(
                "InvalidCharacterError: bad".into(),
                Some("DOMException"),
                "InvalidCharacterError",
                ""
            ),
            "DOMException [InvalidCharacterError]: bad"
        );
    }
}
