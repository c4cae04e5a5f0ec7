//! The `cs-js` runtime (contract §6): one QuickJS runtime and context per child.
//!
//! An [`Engine`] is created before the child knows its bundle, so a pre-forked ("stem") child
//! has already paid for the runtime, the context and the globals and pays only the module
//! compile when a bundle arrives ([`Engine::load`]) — or not even that: with the compiled
//! modules an earlier child of the same tenant and bundle returned, it reads their bytecode
//! instead of parsing ([`Engine::load_compiled`], [`bytecode`]). It then serves any number of
//! [`Engine::invoke`]s of that one bundle.
//!
//! Pieces: [`globals`] (`console`, `cs`), [`web`] (the Web platform globals, built lazily),
//! [`event_loop`] (timers and asynchronous host calls, driven while a promise is pending),
//! [`handler`] (which export is the handler: Sous, Lambda, Workers or CommonJS shapes),
//! [`loader`] (imports inside the bundle), [`normalise`] (the return value to a result).
//!
//! The deadline also bounds the event loop: while it sleeps for a timer or a host reply it
//! wakes at the deadline at the latest, and that is a `Timeout` too.
//!
//! Limits are enforced inside the engine as a fast path; the supervisor's SIGKILL at the
//! deadline and the cgroup memory limit are the guarantee:
//! - **deadline**: QuickJS polls an interrupt handler while it runs; ours returns true once the
//!   activation's deadline has passed. The resulting error cannot be caught by JavaScript
//!   (`try/finally` does not help), and the outcome is `Timeout`.
//! - **memory**: the [`alloc::CountingAllocator`] refuses allocations past the limit and sets
//!   a sticky flag; the interrupt handler then stops the run, and the outcome is `MemoryLimit`
//!   even if the guest caught the out-of-memory error.
//! - **stack**: a maximum stack size makes deep recursion a catchable `RangeError` instead of
//!   a crash.
//!
//! After a `Timeout` or `MemoryLimit` the engine is [`Engine::poisoned`]: the runtime stopped
//! at an arbitrary point (half-built objects, a heap at its limit) and must not serve again.

pub mod alloc;
pub mod bytecode;
pub mod console;
pub mod error_stack;
mod errors;
pub mod event_loop;
pub mod ffi;
pub mod globals;
pub mod handler;
mod intl;
pub mod loader;
pub mod normalise;
pub mod strings;
pub mod web;

use alloc::{CountingAllocator, MemoryState};
use globals::{LogBudget, Shared};
use loader::{BundleLoader, BundleResolver, Files};
use normalise::NormaliseError;
use rquickjs::context::intrinsic;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, JsLifetime, Module, Persistent, Runtime,
};
use sandbox_proto::messages::{truncate_result, truncate_utf8, HttpResult};
use sandbox_proto::protocol::{
    BundleFile, ErrorKind, GuestError, HostError, HostOp, HostValue, LogLevel, LogLine, Outcome,
    OutputLimits,
};

use rquickjs::{Promise, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Side effects of the guest, performed by whoever runs the engine: the pipe to the
/// supervisor in production, an in-process stand-in for `sandbox-child run`.
pub trait Host {
    /// Performs `cs.kv.*`, `cs.codeq.publish`, `cs.http.fetch` or `cs.cadence.heartbeat`.
    /// Blocks until done; the error's message is thrown into the guest as an `Error`.
    fn call(&mut self, op: HostOp) -> Result<HostValue, HostError>;
    /// Starts `op` (a `fetch`) without waiting; its reply comes out of [`Host::wait`] under the
    /// returned id. By default asynchronous calls are not available.
    fn start(&mut self, op: HostOp) -> Result<u64, HostError> {
        let _ = op;
        Err(HostError::failed("fetch is not available here"))
    }
    /// The guest no longer wants the reply of call `id`; it still comes out of `wait`.
    fn cancel(&mut self, id: u64) {
        let _ = id;
    }
    /// Waits up to `timeout` for the reply of a started call. With none started it sleeps
    /// the whole `timeout` (the event loop waiting for a timer) and returns `None`.
    fn wait(&mut self, timeout: Duration) -> Option<(u64, Result<HostValue, HostError>)> {
        event_loop::sleep(timeout);
        None
    }
    /// False once the connection to whoever performs the calls is gone.
    fn is_connected(&self) -> bool {
        true
    }
    /// One log line, as soon as it is produced (already within `max_log_bytes`).
    fn log(&mut self, line: LogLine);
}

/// The engine's [`Shared`] state, reachable from any function through the context's userdata
/// (the lazy Web groups are built from there).
struct SharedRef(Rc<Shared>);

// SAFETY: `SharedRef` holds no `'js` value (only an `Rc` of plain Rust state, whose JavaScript
// values are `Persistent`s cleared before the runtime goes), so it is the same type at every
// lifetime.
unsafe impl<'js> JsLifetime<'js> for SharedRef {
    type Changed<'to> = SharedRef;
}

/// The engine state of the runtime `ctx` belongs to.
pub fn shared_of(ctx: &Ctx<'_>) -> rquickjs::Result<Rc<Shared>> {
    match ctx.userdata::<SharedRef>() {
        Some(s) => Ok(s.0.clone()),
        None => Err(rquickjs::Exception::throw_internal(
            ctx,
            "the cs-js runtime state is missing",
        )),
    }
}

/// How long [`Engine::invoke`] waits, at the end of an activation, for the supervisor to
/// answer the host calls it cancelled (it answers at once; this only bounds a broken pipe).
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Maximum native stack QuickJS may use (deep recursion beyond it is a `RangeError`).
/// Well under the 2 MiB of a Rust test thread and the 8 MiB of the main thread.
pub const MAX_STACK_BYTES: usize = 1024 * 1024;

/// Default time allowed to compile and evaluate the entry module (its top-level code).
/// `LoadBundle` carries no deadline; a module that spins at top level is stopped here rather
/// than only by the supervisor's load timeout. See [`Engine::set_load_budget`].
pub const LOAD_BUDGET: Duration = Duration::from_secs(10);

/// Deadline state shared with the interrupt handler.
#[derive(Debug, Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    fired: Cell<bool>,
}

/// One QuickJS runtime with the `cs-js` globals, bound to at most one bundle.
pub struct Engine {
    // Field order is drop order: the handler (a JS value) must go before the context and the
    // context before the runtime.
    handler: Option<Persistent<Function<'static>>>,
    context: Context,
    memory: Rc<MemoryState>,
    clock: Rc<Clock>,
    shared: Rc<Shared>,
    files: Files,
    compiled: bytecode::Compiled,
    limits: OutputLimits,
    load_budget: Duration,
    poisoned: bool,
}

/// The engine could not be set up (reported as the child's `engine` start-up step).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the QuickJS runtime: {0}")]
    Runtime(rquickjs::Error),
    #[error("cannot create the QuickJS context: {0}")]
    Context(rquickjs::Error),
    #[error("cannot install the globals: {0}")]
    Globals(rquickjs::Error),
}

impl Engine {
    /// Creates the runtime, the context and the globals, with no memory limit yet.
    pub fn new(host: Box<dyn Host>) -> Result<Engine, EngineError> {
        let memory = MemoryState::new();
        let runtime = Runtime::new_with_alloc(CountingAllocator::new(memory.clone()))
            .map_err(EngineError::Runtime)?;
        runtime.set_max_stack_size(MAX_STACK_BYTES);

        let clock = Rc::new(Clock::default());
        let (c, m) = (clock.clone(), memory.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            if m.exceeded() {
                return true;
            }
            match c.deadline.get() {
                Some(d) if Instant::now() >= d => {
                    c.fired.set(true);
                    true
                }
                _ => false,
            }
        })));

        let files: Files = Rc::new(RefCell::new(BTreeMap::new()));
        let compiled = bytecode::CompiledState::new(memory.clone());
        runtime.set_loader(
            BundleResolver {
                files: files.clone(),
            },
            BundleLoader {
                files: files.clone(),
                compiled: compiled.clone(),
            },
        );

        // ECMAScript only, nor QuickJS's libc helpers (rquickjs does not compile them in without
        // its `std` feature anyway): the Web platform globals (`web::install`) are ours, built
        // lazily, with no I/O of their own but the event loop's host calls.
        type Ecma = (
            intrinsic::Date,
            intrinsic::Eval,
            intrinsic::RegExpCompiler,
            intrinsic::RegExp,
            intrinsic::Json,
            intrinsic::Proxy,
            intrinsic::MapSet,
            intrinsic::TypedArrays,
            intrinsic::Promise,
            intrinsic::WeakRef,
        );
        let context = Context::custom::<Ecma>(&runtime).map_err(EngineError::Context)?;

        let shared = Rc::new(Shared {
            host: RefCell::new(host),
            logs: RefCell::new(LogBudget::default()),
            event_loop: event_loop::EventLoop::default(),
            started: Instant::now(),
            files: files.clone(),
        });
        context
            .with(|ctx| -> rquickjs::Result<()> {
                let _ = ctx.store_userdata(SharedRef(shared.clone()));
                globals::install(&ctx, &shared)?;
                console::install(&ctx, &shared)?;
                error_stack::install(&ctx)?;
                web::install(&ctx)?;
                intl::install(&ctx)
            })
            .map_err(EngineError::Globals)?;

        Ok(Engine {
            handler: None,
            context,
            memory,
            clock,
            shared,
            files,
            compiled,
            limits: OutputLimits::default(),
            load_budget: LOAD_BUDGET,
            poisoned: false,
        })
    }

    /// True after a `Timeout` or `MemoryLimit` (at load or invoke): the caller must not use
    /// this engine again and should exit.
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Changes the time [`Engine::load`] allows the module's top-level code (default
    /// [`LOAD_BUDGET`]).
    pub fn set_load_budget(&mut self, budget: Duration) {
        self.load_budget = budget;
    }

    /// Whether a bundle has been loaded successfully.
    pub fn is_loaded(&self) -> bool {
        self.handler.is_some()
    }

    /// Bytes the runtime holds right now.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.live() as u64
    }

    /// Compiles and evaluates `entry` as an ES module (or a CommonJS one, see [`handler`]) and
    /// keeps its handler. `process.env` is `env` from before the module's top-level code runs.
    /// `memory_limit_bytes` applies from now on to everything the runtime holds (including what
    /// it held already); `limits` bound every later outcome.
    ///
    /// Log lines of the module's top-level code are kept and handed to the first invocation.
    pub fn load(
        &mut self,
        files: &[BundleFile],
        entry: &str,
        memory_limit_bytes: u64,
        limits: OutputLimits,
        env: &[(String, String)],
    ) -> Result<(), GuestError> {
        let bundle = LoadRequest {
            files,
            entry,
            memory_limit_bytes,
            limits,
            env,
        };
        self.load_compiled(&bundle, None, false).map(|_| ())
    }

    /// [`Engine::load`] with the compiled-module cache ([`bytecode`]): with `cached` (a blob an
    /// earlier child of the same tenant and bundle returned) the modules are read from
    /// bytecode and nothing is parsed; a blob of another build, damaged, or refused by QuickJS
    /// is rejected — the runtime is rebuilt from scratch (a failed read may leave half-read
    /// modules behind) and the source compiled, and the report says why. With `want`, a
    /// compile from source returns the bundle's bytecode (when it fits the frame limit).
    pub fn load_compiled(
        &mut self,
        bundle: &LoadRequest<'_>,
        cached: Option<&[u8]>,
        want: bool,
    ) -> Result<LoadReport, GuestError> {
        let mut rejected = None;
        if let Some(blob) = cached {
            match bytecode::decode(blob) {
                Ok(modules) if modules.contains_key(bundle.entry) => {
                    match self.load_inner(bundle, Some(modules), false) {
                        Ok(_) => {
                            return Ok(LoadReport {
                                from_bytecode: true,
                                bytecode: None,
                                rejected: None,
                            })
                        }
                        Err(LoadFail::Guest(e)) => return Err(e),
                        Err(LoadFail::Bytecode(why)) => {
                            rejected = Some(format!("QuickJS could not read it: {why}"));
                            self.rebuild().map_err(|e| sandbox_error(&e.to_string()))?;
                        }
                    }
                }
                Ok(_) => rejected = Some(format!("it holds no module '{}'", bundle.entry)),
                Err(why) => rejected = Some(why.to_string()),
            }
        }
        match self.load_inner(bundle, None, want) {
            Ok(written) => Ok(LoadReport {
                from_bytecode: false,
                bytecode: written
                    .filter(|m| !m.is_empty())
                    .map(|m| bytecode::encode(&m)),
                rejected,
            }),
            Err(LoadFail::Guest(e)) => Err(e),
            Err(LoadFail::Bytecode(why)) => Err(sandbox_error(&why)),
        }
    }

    /// A fresh runtime, context and globals in place of this engine's, with the same host
    /// (before any bundle is bound: after a failed bytecode read).
    fn rebuild(&mut self) -> Result<(), EngineError> {
        let host = std::mem::replace(&mut *self.shared.host.borrow_mut(), Box::new(NoHost));
        let mut fresh = Engine::new(host)?;
        fresh.load_budget = self.load_budget;
        *self = fresh;
        Ok(())
    }

    /// One load attempt: from `cached` modules when given (a failure to read them is
    /// [`LoadFail::Bytecode`]), else from source, recording the bytecode with `record`.
    fn load_inner(
        &mut self,
        bundle: &LoadRequest<'_>,
        cached: Option<bytecode::Modules>,
        record: bool,
    ) -> Result<Option<bytecode::Modules>, LoadFail> {
        let LoadRequest {
            files,
            entry,
            memory_limit_bytes,
            limits,
            env,
        } = *bundle;
        if self.poisoned {
            return Err(LoadFail::Guest(sandbox_error(
                "the engine is poisoned by an earlier failure",
            )));
        }
        if self.handler.is_some() {
            return Err(LoadFail::Guest(sandbox_error(
                "a bundle is already loaded in this child",
            )));
        }
        self.limits = limits;
        let source = {
            let mut map = self.files.borrow_mut();
            map.clear();
            for f in files {
                map.insert(f.path.clone(), f.contents.clone());
            }
            map.get(entry).cloned()
        };
        let Some(source) = source else {
            return Err(LoadFail::Guest(sandbox_error(&format!(
                "the entry '{entry}' is not among the bundle's files"
            ))));
        };
        self.memory.set_limit(memory_limit_bytes);
        {
            let mut logs = self.shared.logs.borrow_mut();
            *logs = LogBudget {
                max: limits.max_log_bytes as usize,
                buffer: Some(Vec::new()),
                ..LogBudget::default()
            };
        }
        let mut cached = cached;
        let entry_code = cached.as_mut().and_then(|m| m.remove(entry));
        self.compiled.begin(cached.unwrap_or_default(), record);

        self.arm(self.load_budget);
        self.shared.event_loop.begin();
        let limits = self.limits;
        let (clock, memory, shared, compiled) =
            (&self.clock, &self.memory, &self.shared, &self.compiled);
        let result = self
            .context
            .with(|ctx| -> Result<Persistent<Function<'static>>, LoadFail> {
                let js = |e| LoadFail::Guest(caught(&ctx, e, &limits));
                let env = web::process::set_env(&ctx, env).catch(&ctx).map_err(js)?;
                let cjs = handler::prepare(&ctx).catch(&ctx).map_err(js)?;
                let module = match &entry_code {
                    // Reading runs no guest code: a failure here leaves nothing the guest
                    // did behind, and the caller compiles the source instead.
                    Some(code) => bytecode::read(&ctx, entry, code).catch(&ctx).map_err(|e| {
                        // The message, not QuickJS's stack of the reader.
                        let text = e.to_string();
                        let first = text.lines().next().unwrap_or("").to_string();
                        LoadFail::Bytecode(first)
                    })?,
                    None => {
                        let len = source.len();
                        let module = Module::declare(ctx.clone(), entry, source)
                            .catch(&ctx)
                            .map_err(js)?;
                        compiled.record(&ctx, entry, &module, len);
                        module
                    }
                };
                let (module, promise) = module.eval().catch(&ctx).map_err(js)?;
                let settled = settle(
                    &ctx,
                    shared,
                    &promise,
                    clock,
                    memory,
                    &limits,
                    "module evaluation",
                );
                let cancelled = shared.event_loop.finish(&shared.host, CANCEL_WAIT);
                if let Some(w) = cancelled.warning("the module finished loading") {
                    shared.log(LogLevel::Warn, &w);
                }
                settled.map_err(LoadFail::Guest)?;
                let ns = module.namespace().catch(&ctx).map_err(js)?;
                match handler::find(&ctx, &ns, cjs, &env)
                    .catch(&ctx)
                    .map_err(js)?
                {
                    handler::Found::Handler(f) => Ok(handler::save(&ctx, f)),
                    handler::Found::Nothing(found) => Err(LoadFail::Guest(errors::exception(
                        handler::missing(entry, &found),
                        None,
                        &limits,
                    ))),
                }
            });
        self.disarm();
        let written = self.compiled.finish();
        let limit = self.limit_error(&format!(
            "module evaluation exceeded its budget (timeout after {} ms)",
            self.load_budget.as_millis()
        ));
        match limit.map(|e| Err(LoadFail::Guest(e))).unwrap_or(result) {
            Ok(f) => {
                self.handler = Some(f);
                Ok(written)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `default(event, ctx)` once, with both arguments parsed from JSON, within `budget`.
    /// A returned promise is driven until it settles. The outcome's `invocation_id` is 0; the
    /// caller fills it in.
    pub fn invoke(&mut self, event_json: &str, ctx_json: &str, budget: Duration) -> Outcome {
        let start = Instant::now();
        let mut outcome = Outcome {
            invocation_id: 0,
            result: Err(sandbox_error("no bundle loaded")),
            result_truncated: false,
            logs_truncated: false,
            memory_peak_bytes: 0,
            exec_us: 0,
            cpu_us: 0,
        };
        let cpu_start = cpu_time();
        if self.poisoned {
            outcome.result = Err(sandbox_error(
                "the engine is poisoned by an earlier failure",
            ));
            return outcome;
        }
        let Some(handler) = self.handler.clone() else {
            return outcome;
        };
        self.memory.reset_peak();
        self.start_logs();
        self.arm(budget);

        let limits = self.limits;
        let (clock, memory, shared) = (&self.clock, &self.memory, &self.shared);
        shared.event_loop.begin();
        let result = self.context.with(|ctx| -> Result<HttpResult, GuestError> {
            let handler = handler
                .restore(&ctx)
                .map_err(|e| sandbox_error(&format!("cannot restore the handler: {e}")))?;
            let event = ctx
                .json_parse(event_json)
                .catch(&ctx)
                .map_err(|e| sandbox_error(&format!("invalid event JSON: {e}")))?;
            let c = ctx
                .json_parse(ctx_json)
                .catch(&ctx)
                .map_err(|e| sandbox_error(&format!("invalid ctx JSON: {e}")))?;
            let ret: Value = handler
                .call((event, c))
                .catch(&ctx)
                .map_err(|e| caught(&ctx, e, &limits))?;
            let value = match ret.as_promise() {
                Some(p) => settle(&ctx, shared, p, clock, memory, &limits, "handler promise")?,
                None => ret,
            };
            // Normalised while the deadline is still armed: reading the result may run
            // guest getters and `toJSON`.
            let normalised = match normalise::normalise(&ctx, value) {
                Ok(r) => r,
                Err(NormaliseError::Invalid(message)) => {
                    let mut message = message;
                    truncate_utf8(&mut message, limits.max_error_bytes as usize);
                    return Err(GuestError {
                        kind: ErrorKind::ValidationError,
                        message,
                        stack: None,
                    });
                }
                Err(NormaliseError::Js(e)) => {
                    return Err(caught(&ctx, CaughtError::from_error(&ctx, e), &limits))
                }
            };
            // Work the handler left queued (a promise it did not await) runs now, inside this
            // activation's deadline, rather than at the start of the next one.
            while !clock.fired.get() && !memory.exceeded() && ctx.execute_pending_job() {}
            // An event listener that threw (Node: an uncaught exception) fails the activation
            // even when the handler did not wait for anything.
            if let Some(e) = shared.event_loop.take_uncaught(&ctx, &limits) {
                return Err(e);
            }
            Ok(normalised)
        });
        // Nothing outlives the activation: timers and fetches still pending are cancelled,
        // whatever the outcome, and said so.
        let cancelled = shared.event_loop.finish(&shared.host, CANCEL_WAIT);
        if let Some(w) = cancelled.warning("the handler settled") {
            shared.log(LogLevel::Warn, &w);
        }
        self.disarm();

        let result = match self.limit_error(&format!(
            "function exceeded its deadline (timeout after {} ms)",
            budget.as_millis()
        )) {
            Some(e) => Err(e),
            None => result,
        };
        outcome.result = result.map(|mut r| {
            outcome.result_truncated = truncate_result(&mut r, limits.max_result_bytes as usize);
            r
        });
        outcome.logs_truncated = self.shared.logs.borrow().truncated;
        outcome.memory_peak_bytes = self.memory.peak() as u64;
        outcome.exec_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        outcome.cpu_us =
            u64::try_from(cpu_time().saturating_sub(cpu_start).as_micros()).unwrap_or(u64::MAX);
        outcome
    }

    fn start_logs(&self) {
        let buffered = {
            let mut logs = self.shared.logs.borrow_mut();
            let buffered = logs.buffer.take();
            *logs = LogBudget {
                max: self.limits.max_log_bytes as usize,
                ..LogBudget::default()
            };
            buffered
        };
        // Lines of the module's top-level code go to the first activation, counted against
        // its budget.
        for line in buffered.into_iter().flatten() {
            let admitted = self.shared.logs.borrow_mut().admit(&line);
            if admitted {
                self.shared.host.borrow_mut().log(line);
            }
        }
    }

    fn arm(&self, budget: Duration) {
        self.clock.fired.set(false);
        self.clock.deadline.set(Some(
            Instant::now()
                .checked_add(budget)
                .unwrap_or_else(far_future),
        ));
    }

    fn disarm(&self) {
        self.clock.deadline.set(None);
    }

    /// The `MemoryLimit` or `Timeout` error if either limit was hit; poisons the engine.
    fn limit_error(&mut self, timeout_message: &str) -> Option<GuestError> {
        let err = if self.memory.exceeded() {
            GuestError {
                kind: ErrorKind::MemoryLimit,
                message: format!(
                    "memory limit of {} MiB reached",
                    self.memory.limit().div_ceil(1 << 20)
                ),
                stack: None,
            }
        } else if self.clock.fired.get() {
            GuestError {
                kind: ErrorKind::Timeout,
                message: timeout_message.to_string(),
                stack: None,
            }
        } else {
            return None;
        };
        self.poisoned = true;
        Some(err)
    }
}

/// A bundle to bind, as [`Engine::load`] takes it.
#[derive(Clone, Copy)]
pub struct LoadRequest<'a> {
    pub files: &'a [BundleFile],
    pub entry: &'a str,
    pub memory_limit_bytes: u64,
    pub limits: OutputLimits,
    pub env: &'a [(String, String)],
}

/// How [`Engine::load_compiled`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Read from the cached bytecode: nothing parsed.
    pub from_bytecode: bool,
    /// The bundle's compiled modules in their envelope (after a compile from source that was
    /// asked for, when they fit).
    pub bytecode: Option<Vec<u8>>,
    /// Why the cached bytecode was not used.
    pub rejected: Option<String>,
}

enum LoadFail {
    /// The module failed as it would from source: the load's error.
    Guest(GuestError),
    /// The cached bytecode could not be read: compile the source instead.
    Bytecode(String),
}

/// Stands in for the host while the engine is rebuilt.
struct NoHost;

impl Host for NoHost {
    fn call(&mut self, _op: HostOp) -> Result<HostValue, HostError> {
        Err(HostError::failed("no host"))
    }
    fn log(&mut self, _line: LogLine) {}
}

/// CPU time of this process so far (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

fn sandbox_error(message: &str) -> GuestError {
    GuestError {
        kind: ErrorKind::SandboxError,
        message: message.to_string(),
        stack: None,
    }
}

/// A caught error of a call into JavaScript.
fn caught<'js>(ctx: &Ctx<'js>, e: CaughtError<'js>, limits: &OutputLimits) -> GuestError {
    match e {
        CaughtError::Exception(ex) => errors::from_thrown(ctx, ex.into_value(), limits),
        CaughtError::Value(v) => errors::from_thrown(ctx, v, limits),
        CaughtError::Error(e) => sandbox_error(&format!("engine error: {e}")),
    }
}

/// Runs the event loop until `promise` settles. Stops early when a limit was hit (the caller
/// reports it) or a timer callback threw. `what` names the promise in the "never settled"
/// error.
fn settle<'js>(
    ctx: &Ctx<'js>,
    shared: &Shared,
    promise: &Promise<'js>,
    clock: &Clock,
    memory: &MemoryState,
    limits: &OutputLimits,
    what: &str,
) -> Result<Value<'js>, GuestError> {
    use rquickjs::promise::PromiseState;
    let done = || !matches!(promise.state(), PromiseState::Pending);
    match shared
        .event_loop
        .run_until(ctx, &shared.host, &done, clock, memory, limits)
    {
        Ok(()) => match promise.result::<Value>() {
            Some(r) => r.catch(ctx).map_err(|e| caught(ctx, e, limits)),
            None => Err(sandbox_error("promise settled without a result")),
        },
        Err(event_loop::Stop::Limit) => Err(sandbox_error("stopped at a limit")),
        Err(event_loop::Stop::Thrown(e)) => Err(e),
        Err(event_loop::Stop::Stalled) => Err(errors::exception(
            format!("Error: {what} never settled"),
            None,
            limits,
        )),
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // JavaScript values held outside the heap go before the runtime does.
        self.shared.event_loop.clear();
    }
}

#[cfg(test)]
mod tests;
