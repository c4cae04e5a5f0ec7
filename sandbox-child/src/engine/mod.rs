//! The `cs-js` runtime (SPEC §6): one QuickJS runtime and context per child.
//!
//! An [`Engine`] is created before the child knows its bundle, so a pre-forked ("stem") child
//! has already paid for the runtime, the context and the globals and pays only the module
//! compile when a bundle arrives ([`Engine::load`]). It then serves any number of
//! [`Engine::invoke`]s of that one bundle.
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
pub mod console;
pub mod error_stack;
mod errors;
pub mod ffi;
pub mod globals;
pub mod loader;
pub mod normalise;
pub mod strings;
pub mod web;

use crate::messages::{truncate_result, truncate_utf8, HttpResult};
use crate::protocol::{
    BundleFile, ErrorKind, GuestError, HostError, HostOp, HostValue, LogLine, Outcome, OutputLimits,
};
use alloc::{CountingAllocator, MemoryState};
use globals::{LogBudget, Shared};
use loader::{BundleLoader, BundleResolver, Files};
use normalise::NormaliseError;
use rquickjs::context::intrinsic;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Module, Persistent, Runtime};

use rquickjs::{Promise, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Side effects of the guest, performed by whoever runs the engine: the pipe to the
/// supervisor in production, an in-process stand-in for `sandbox-child run`.
pub trait Host {
    /// Performs `cs.kv.*`, `cs.codeq.publish` or `cs.http.fetch`. Blocks until done; the
    /// error's message is thrown into the guest as an `Error`.
    fn call(&mut self, op: HostOp) -> Result<HostValue, HostError>;
    /// One log line, as soon as it is produced (already within `max_log_bytes`).
    fn log(&mut self, line: LogLine);
}

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
    limits: OutputLimits,
    load_budget: Duration,
    poisoned: bool,
}

impl Engine {
    /// Creates the runtime, the context and the globals, with no memory limit yet.
    pub fn new(host: Box<dyn Host>) -> Result<Engine, String> {
        let memory = MemoryState::new();
        let runtime = Runtime::new_with_alloc(CountingAllocator::new(memory.clone()))
            .map_err(|e| format!("cannot create the QuickJS runtime: {e}"))?;
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
        runtime.set_loader(
            BundleResolver {
                files: files.clone(),
            },
            BundleLoader {
                files: files.clone(),
            },
        );

        // ECMAScript only, nor QuickJS's libc helpers (rquickjs does not compile them in without
        // its `std` feature anyway): the Web platform globals (`web::install`) are ours, built
        // lazily, with no I/O of their own.
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
        let context = Context::custom::<Ecma>(&runtime)
            .map_err(|e| format!("cannot create the QuickJS context: {e}"))?;

        let shared = Rc::new(Shared {
            host: RefCell::new(host),
            logs: RefCell::new(LogBudget::default()),
        });
        context
            .with(|ctx| {
                globals::install(&ctx, &shared)?;
                console::install(&ctx, &shared)?;
                error_stack::install(&ctx)?;
                web::install(&ctx)
            })
            .map_err(|e| format!("cannot install the globals: {e}"))?;

        Ok(Engine {
            handler: None,
            context,
            memory,
            clock,
            shared,
            files,
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

    /// Compiles and evaluates `entry` as an ES module and keeps its default export, which must
    /// be a function. `memory_limit_bytes` applies from now on to everything the runtime holds
    /// (including what it held already); `limits` bound every later outcome.
    ///
    /// Log lines of the module's top-level code are kept and handed to the first invocation.
    pub fn load(
        &mut self,
        files: &[BundleFile],
        entry: &str,
        memory_limit_bytes: u64,
        limits: OutputLimits,
    ) -> Result<(), GuestError> {
        if self.poisoned {
            return Err(sandbox_error(
                "the engine is poisoned by an earlier failure",
            ));
        }
        if self.handler.is_some() {
            return Err(sandbox_error("a bundle is already loaded in this child"));
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
            return Err(sandbox_error(&format!(
                "the entry '{entry}' is not among the bundle's files"
            )));
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

        self.arm(self.load_budget);
        let limits = self.limits;
        let result =
            self.context
                .with(|ctx| -> Result<Persistent<Function<'static>>, GuestError> {
                    let module = Module::declare(ctx.clone(), entry, source)
                        .catch(&ctx)
                        .map_err(|e| caught(&ctx, e, &limits))?;
                    let (module, promise) = module
                        .eval()
                        .catch(&ctx)
                        .map_err(|e| caught(&ctx, e, &limits))?;
                    settle(
                        &ctx,
                        &promise,
                        &self.clock,
                        &self.memory,
                        &limits,
                        "module evaluation",
                    )?;
                    let default: Value = module
                        .get("default")
                        .catch(&ctx)
                        .map_err(|e| caught(&ctx, e, &limits))?;
                    match default.into_function() {
                        Some(f) => Ok(Persistent::save(&ctx, f)),
                        None => Err(GuestError {
                            kind: ErrorKind::ValidationError,
                            message: format!(
                        "the default export of '{entry}' must be a function `handle(event, ctx)`"
                    ),
                            stack: None,
                        }),
                    }
                });
        self.disarm();
        let limit = self.limit_error(&format!(
            "module evaluation exceeded its budget (timeout after {} ms)",
            self.load_budget.as_millis()
        ));
        match limit.map(Err).unwrap_or(result) {
            Ok(f) => {
                self.handler = Some(f);
                Ok(())
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
        };
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
        let (clock, memory) = (&self.clock, &self.memory);
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
                Some(p) => settle(&ctx, p, clock, memory, &limits, "handler promise")?,
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
            Ok(normalised)
        });
        self.disarm();

        let result = match self.limit_error(&format!(
            "function exceeded its deadline (timeout after {} ms)",
            budget.as_millis()
        )) {
            Some(e) => Err(e),
            None => result,
        };
        outcome.result = result.and_then(|mut r| {
            outcome.result_truncated = truncate_result(&mut r, limits.max_result_bytes as usize);
            serde_json::to_string(&r)
                .map_err(|e| sandbox_error(&format!("cannot serialise the result: {e}")))
        });
        outcome.logs_truncated = self.shared.logs.borrow().truncated;
        outcome.memory_peak_bytes = self.memory.peak() as u64;
        outcome.exec_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
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

/// Runs pending jobs until `promise` settles. Stops early when a limit was hit (the caller
/// reports it). `what` names the promise in the "never settled" error.
fn settle<'js>(
    ctx: &Ctx<'js>,
    promise: &Promise<'js>,
    clock: &Clock,
    memory: &MemoryState,
    limits: &OutputLimits,
    what: &str,
) -> Result<Value<'js>, GuestError> {
    use rquickjs::promise::PromiseState;
    loop {
        match promise.state() {
            PromiseState::Resolved | PromiseState::Rejected => {
                return match promise.result::<Value>() {
                    Some(r) => r.catch(ctx).map_err(|e| caught(ctx, e, limits)),
                    None => Err(sandbox_error("promise settled without a result")),
                };
            }
            PromiseState::Pending => {
                if clock.fired.get() || memory.exceeded() {
                    return Err(sandbox_error("stopped at a limit"));
                }
                if !ctx.execute_pending_job() {
                    return Err(errors::exception(
                        format!("Error: {what} never settled"),
                        None,
                        limits,
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
