//! The child's event loop: timers and asynchronous host calls (`fetch`), driven while a promise
//! (the handler's, or the module's top-level evaluation) is pending.
//!
//! The child is one thread under seccomp, with no runtime of its own (no tokio, no threads).
//! A loop iteration is, in Node's order:
//! 1. microtasks (promise jobs, `queueMicrotask`) until none are left;
//! 2. **timers** whose due time has come (a Node-style cached "loop time": timers created during
//!    one pass start at the same instant, so `setTimeout(f, 1)` made inside a timer callback
//!    never runs in the pass that made it), each followed by the microtasks it queued;
//! 3. **host replies** already received (the poll phase), each followed by its microtasks;
//! 4. when nothing is runnable: one blocking wait on the supervisor's pipe, with a timeout at
//!    the next timer or the activation's deadline, whichever is first ([`Host::wait`]). That
//!    wait is a `ppoll(2)` on fd 0 — or, with nothing in flight, a `ppoll` on no fd at all, i.e.
//!    a sleep — so a handler waiting 300 ms for a timer costs no CPU. `ppoll` is the one
//!    syscall this adds to the seccomp policy (both uses), see `seccomp/README.md`.
//!
//! The loop ends when the awaited promise settles, when a limit is hit (the deadline passing
//! while asleep is a limit too), when a timer callback throws (an uncaught exception, which in
//! Node ends the process; here it fails the activation), or when nothing could ever settle it
//! (no timer, no call in flight, no job): the "never settled" error.
//!
//! Nothing outlives an activation ([`EventLoop::finish`]): when the handler's promise settles,
//! timers still pending are cleared and calls still in flight are cancelled, and the engine says
//! how many in one `[warn]` line. Asynchronous host calls beyond
//! `MAX_HOST_CALLS_IN_FLIGHT - 1` wait here, in the child, for a slot.
//!
//! Every JavaScript value held here (callbacks, timer arguments) is a `Persistent`, released by
//! [`EventLoop::clear`] before the runtime goes (the engine's `Drop`).

use super::{caught, Clock, Host};
use crate::engine::alloc::MemoryState;
use rquickjs::function::Rest;
use rquickjs::{CatchResultExt, Ctx, Function, Object, Persistent, Value};
use sandbox_proto::protocol::{
    GuestError, HostError, HostOp, HostValue, OutputLimits, MAX_HOST_CALLS_IN_FLIGHT,
};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Node's `TIMEOUT_MAX`: delays above it (and below 1, or not a number) become 1 ms.
pub const TIMEOUT_MAX_MS: f64 = 2_147_483_647.0;

/// Asynchronous host calls the child keeps open at once (one slot stays free for a synchronous
/// call, which cannot wait: the guest is blocked in it).
pub const MAX_ASYNC_CALLS: usize = MAX_HOST_CALLS_IN_FLIGHT - 1;

struct Timer {
    due: Instant,
    seq: u64,
    callback: Persistent<Function<'static>>,
    args: Vec<Persistent<Value<'static>>>,
    repeat: Option<Duration>,
    /// The runtime's own timers (`AbortSignal.timeout`): like Node's unref'd timers they keep
    /// nothing alive and are not counted as left pending.
    unref: bool,
}

#[derive(Default)]
struct Timers {
    next_id: u32,
    seq: u64,
    /// (due, creation order) → timer id: the order timers run in.
    queue: BTreeMap<(Instant, u64), u32>,
    entries: HashMap<u32, Timer>,
}

enum Call {
    /// Waiting in the child for a free slot.
    Queued {
        op: HostOp,
        callback: Persistent<Function<'static>>,
    },
    /// Sent to the supervisor as host call `host_id`.
    Started {
        host_id: u64,
        callback: Persistent<Function<'static>>,
    },
    /// The host refused to start it: answered with this error on the next pass (never inside
    /// the guest's own call).
    Failed {
        callback: Persistent<Function<'static>>,
        error: HostError,
    },
}

#[derive(Default)]
struct Calls {
    next_ticket: u64,
    /// Guest-visible tickets of calls not yet answered.
    by_ticket: HashMap<u64, Call>,
    /// Open host calls → their ticket, or `None` once cancelled (the reply is still owed and
    /// still holds a slot, so it is awaited and dropped).
    by_host: HashMap<u64, Option<u64>>,
    queue: VecDeque<u64>,
    /// Tickets in the `Failed` state, in order.
    failed: VecDeque<u64>,
}

/// Why [`EventLoop::run_until`] stopped before the condition held.
pub enum Stop {
    /// The deadline or the memory limit: the engine reports which.
    Limit,
    /// Nothing left that could ever make the condition true.
    Stalled,
    /// A timer callback threw: an uncaught exception.
    Thrown(GuestError),
}

/// What [`EventLoop::finish`] cancelled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    pub timers: usize,
    pub calls: usize,
}

impl Cancelled {
    /// The `[warn]` text, or `None` when nothing was pending. `when` says at which point, e.g.
    /// "the handler settled".
    pub fn warning(&self, when: &str) -> Option<String> {
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let what = match (self.timers, self.calls) {
            (0, 0) => return None,
            (t, 0) => plural(t, "timer", "timers"),
            (0, c) => plural(c, "fetch", "fetches"),
            (t, c) => format!(
                "{} and {}",
                plural(t, "timer", "timers"),
                plural(c, "fetch", "fetches")
            ),
        };
        let verb = if self.timers + self.calls == 1 {
            "was"
        } else {
            "were"
        };
        Some(format!(
            "{what} still pending when {when} {verb} cancelled (nothing outlives an activation)"
        ))
    }
}

/// Timers and asynchronous host calls of one engine.
pub struct EventLoop {
    timers: RefCell<Timers>,
    calls: RefCell<Calls>,
    /// The loop time new timers start from (Node's cached `uv_now`).
    now: Cell<Instant>,
    /// The first error thrown by a callback nobody awaits (an event listener): ends the loop
    /// as an uncaught exception, as in Node.
    uncaught: RefCell<Option<Persistent<Value<'static>>>>,
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop {
            timers: RefCell::default(),
            calls: RefCell::default(),
            now: Cell::new(Instant::now()),
            uncaught: RefCell::new(None),
        }
    }
}

/// Node's delay rule: a number in 1..=TIMEOUT_MAX, anything else (NaN, < 1, too large) → 1.
pub fn delay_of(ms: f64) -> Duration {
    let ms = if (1.0..=TIMEOUT_MAX_MS).contains(&ms) {
        ms.trunc()
    } else {
        1.0
    };
    Duration::from_micros((ms * 1000.0) as u64)
}

impl EventLoop {
    /// Marks the start of an activation (or a module load): the loop time is now.
    pub fn begin(&self) {
        self.now.set(Instant::now());
    }

    /// `setTimeout` / `setInterval`: schedules `callback(...args)` after `delay`, repeating
    /// every `delay` when `repeat`. Returns the timer id (never 0).
    pub fn add_timer<'js>(
        &self,
        ctx: &Ctx<'js>,
        callback: Function<'js>,
        args: Vec<Value<'js>>,
        delay: Duration,
        repeat: bool,
        unref: bool,
    ) -> u32 {
        let mut t = self.timers.borrow_mut();
        t.next_id = t.next_id.checked_add(1).unwrap_or(1);
        while t.entries.contains_key(&t.next_id) {
            t.next_id = t.next_id.checked_add(1).unwrap_or(1);
        }
        let id = t.next_id;
        t.seq += 1;
        let seq = t.seq;
        let due = self.now.get() + delay;
        t.queue.insert((due, seq), id);
        t.entries.insert(
            id,
            Timer {
                due,
                seq,
                callback: Persistent::save(ctx, callback),
                args: args.into_iter().map(|a| Persistent::save(ctx, a)).collect(),
                repeat: repeat.then_some(delay),
                unref,
            },
        );
        id
    }

    /// `clearTimeout` / `clearInterval` (interchangeable, as in Node and browsers).
    pub fn clear_timer(&self, id: u32) {
        let mut t = self.timers.borrow_mut();
        if let Some(timer) = t.entries.remove(&id) {
            t.queue.remove(&(timer.due, timer.seq));
        }
    }

    /// Timers scheduled and not yet run (an interval counts until cleared), the runtime's own
    /// unref'd ones aside.
    pub fn pending_timers(&self) -> usize {
        self.timers
            .borrow()
            .entries
            .values()
            .filter(|t| !t.unref)
            .count()
    }

    /// Records an error thrown where nobody can catch it (an event listener). The first one
    /// ends the activation.
    pub fn report_uncaught<'js>(&self, ctx: &Ctx<'js>, error: Value<'js>) {
        let mut u = self.uncaught.borrow_mut();
        if u.is_none() {
            *u = Some(Persistent::save(ctx, error));
        }
    }

    pub(super) fn take_uncaught<'js>(
        &self,
        ctx: &Ctx<'js>,
        limits: &OutputLimits,
    ) -> Option<GuestError> {
        let v = self.uncaught.borrow_mut().take()?;
        let v = v.restore(ctx).ok()?;
        Some(super::errors::from_thrown(ctx, v, limits))
    }

    /// Starts an asynchronous host call (or queues it when every slot is taken); `callback`
    /// gets `(error, value)` when it is answered. Returns a ticket for [`EventLoop::cancel`].
    pub fn start_call<'js>(
        &self,
        ctx: &Ctx<'js>,
        host: &RefCell<Box<dyn Host>>,
        op: HostOp,
        callback: Function<'js>,
    ) -> u64 {
        let callback = Persistent::save(ctx, callback);
        let mut c = self.calls.borrow_mut();
        c.next_ticket += 1;
        let ticket = c.next_ticket;
        c.by_ticket.insert(ticket, Call::Queued { op, callback });
        c.queue.push_back(ticket);
        drop(c);
        self.start_queued(host);
        ticket
    }

    /// Sends queued calls while slots are free. A call the host refuses to start is answered
    /// with that error on the next pass of the loop.
    fn start_queued(&self, host: &RefCell<Box<dyn Host>>) {
        loop {
            let mut c = self.calls.borrow_mut();
            if c.by_host.len() >= MAX_ASYNC_CALLS {
                return;
            }
            let Some(ticket) = c.queue.pop_front() else {
                return;
            };
            let Some(Call::Queued { op, callback }) = c.by_ticket.remove(&ticket) else {
                continue;
            };
            drop(c);
            let started = match host.try_borrow_mut() {
                Ok(mut h) => h.start(op),
                Err(_) => Err(HostError::failed(
                    "host call made while another host call is in progress",
                )),
            };
            let mut c = self.calls.borrow_mut();
            match started {
                Ok(host_id) => {
                    c.by_host.insert(host_id, Some(ticket));
                    c.by_ticket
                        .insert(ticket, Call::Started { host_id, callback });
                }
                Err(error) => {
                    c.by_ticket.insert(ticket, Call::Failed { callback, error });
                    c.failed.push_back(ticket);
                }
            }
        }
    }

    /// `AbortSignal` on a call: a queued one is dropped; a started one is cancelled with the
    /// supervisor, whose reply is then awaited and discarded. Its callback is never called.
    pub fn cancel(&self, host: &RefCell<Box<dyn Host>>, ticket: u64) {
        let mut c = self.calls.borrow_mut();
        match c.by_ticket.remove(&ticket) {
            Some(Call::Queued { .. }) => c.queue.retain(|t| *t != ticket),
            Some(Call::Failed { .. }) => c.failed.retain(|t| *t != ticket),
            Some(Call::Started { host_id, .. }) => {
                c.by_host.insert(host_id, None);
                drop(c);
                if let Ok(mut h) = host.try_borrow_mut() {
                    h.cancel(host_id);
                }
            }
            None => {}
        }
    }

    /// Calls the guest still waits for (queued or started, not cancelled).
    pub fn pending_calls(&self) -> usize {
        self.calls.borrow().by_ticket.len()
    }

    fn open_host_calls(&self) -> usize {
        self.calls.borrow().by_host.len()
    }

    /// Runs the loop until `done()` holds (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_until<'js>(
        &self,
        ctx: &Ctx<'js>,
        host: &RefCell<Box<dyn Host>>,
        done: &dyn Fn() -> bool,
        clock: &Clock,
        memory: &MemoryState,
        limits: &OutputLimits,
    ) -> Result<(), Stop> {
        let limit = || clock.fired.get() || memory.exceeded();
        // Microtasks until none are left; then whether the loop must stop.
        let settle = || -> Option<Result<(), Stop>> {
            while !limit() && ctx.execute_pending_job() {}
            if limit() {
                return Some(Err(Stop::Limit));
            }
            if let Some(e) = self.take_uncaught(ctx, limits) {
                return Some(Err(Stop::Thrown(e)));
            }
            done().then_some(Ok(()))
        };
        loop {
            // 1. Microtasks.
            if let Some(r) = settle() {
                return r;
            }
            let mut progressed = false;

            // 2. Due timers, at the loop time of this pass.
            let now = Instant::now();
            self.now.set(now);
            while let Some(id) = self.pop_due(now) {
                progressed = true;
                if let Err(e) = self.run_timer(ctx, id, limits) {
                    return Err(if limit() {
                        Stop::Limit
                    } else {
                        Stop::Thrown(e)
                    });
                }
                if let Some(r) = settle() {
                    return r;
                }
            }

            // 3. Host replies already here (and calls the host refused to start).
            while let Some((callback, error)) = self.take_failed() {
                progressed = true;
                self.answer(ctx, callback, Err(error));
                if let Some(r) = settle() {
                    return r;
                }
            }
            if self.open_host_calls() > 0 {
                while let Some((id, result)) = self.wait_reply(host, Duration::ZERO) {
                    progressed = true;
                    self.dispatch(ctx, host, id, result);
                    if let Some(r) = settle() {
                        return r;
                    }
                }
            }
            if progressed {
                continue;
            }

            // 4. Nothing runnable: sleep until the next timer, a reply, or the deadline. Only a
            //    guest timer or a call in flight is a reason to wait at all.
            if self.pending_timers() == 0 && self.open_host_calls() == 0 && self.queued() == 0 {
                return Err(Stop::Stalled);
            }
            let next_timer = self.next_due();
            let now = Instant::now();
            let deadline = clock.deadline.get();
            if matches!(deadline, Some(d) if now >= d) {
                clock.fired.set(true);
                return Err(Stop::Limit);
            }
            let wake = match (next_timer, deadline) {
                (Some(t), Some(d)) => t.min(d),
                (Some(t), None) => t,
                (None, Some(d)) => d,
                (None, None) => now + Duration::from_secs(3600),
            };
            let timeout = wake.saturating_duration_since(now);
            if timeout.is_zero() {
                continue;
            }
            if let Some((id, result)) = self.wait_reply(host, timeout) {
                self.dispatch(ctx, host, id, result);
            }
        }
    }

    fn queued(&self) -> usize {
        self.calls.borrow().queue.len()
    }

    fn take_failed(&self) -> Option<(Persistent<Function<'static>>, HostError)> {
        let mut c = self.calls.borrow_mut();
        while let Some(ticket) = c.failed.pop_front() {
            if let Some(Call::Failed { callback, error }) = c.by_ticket.remove(&ticket) {
                return Some((callback, error));
            }
        }
        None
    }

    fn next_due(&self) -> Option<Instant> {
        self.timers
            .borrow()
            .queue
            .keys()
            .next()
            .map(|(due, _)| *due)
    }

    fn pop_due(&self, now: Instant) -> Option<u32> {
        let mut t = self.timers.borrow_mut();
        let (&key, &id) = t.queue.iter().next()?;
        if key.0 > now {
            return None;
        }
        t.queue.remove(&key);
        Some(id)
    }

    /// Runs timer `id` (already taken off the queue); an interval is put back first, so that a
    /// `clearInterval` inside its own callback stops it.
    fn run_timer<'js>(
        &self,
        ctx: &Ctx<'js>,
        id: u32,
        limits: &OutputLimits,
    ) -> Result<(), GuestError> {
        let (callback, args) = {
            let mut t = self.timers.borrow_mut();
            let Some(timer) = t.entries.get(&id) else {
                return Ok(());
            };
            let call = (timer.callback.clone(), timer.args.clone());
            match timer.repeat {
                Some(every) => {
                    t.seq += 1;
                    let seq = t.seq;
                    let due = self.now.get() + every;
                    if let Some(timer) = t.entries.get_mut(&id) {
                        timer.due = due;
                        timer.seq = seq;
                    }
                    t.queue.insert((due, seq), id);
                }
                None => {
                    t.entries.remove(&id);
                }
            }
            call
        };
        let foreign = |_| super::sandbox_error("a timer of another runtime");
        let callback = callback.restore(ctx).map_err(foreign)?;
        let args = args
            .into_iter()
            .map(|a| a.restore(ctx))
            .collect::<rquickjs::Result<Vec<_>>>()
            .map_err(foreign)?;
        callback
            .call::<_, Value>((Rest(args),))
            .catch(ctx)
            .map(|_| ())
            .map_err(|e| caught(ctx, e, limits))
    }

    /// The next reply of an open host call, within `timeout`.
    fn wait_reply(
        &self,
        host: &RefCell<Box<dyn Host>>,
        timeout: Duration,
    ) -> Option<(u64, Result<HostValue, HostError>)> {
        match host.try_borrow_mut() {
            Ok(mut h) => h.wait(timeout),
            Err(_) => None,
        }
    }

    /// Hands a reply to its callback (or drops it, for a cancelled call) and fills the slot it
    /// freed from the queue.
    fn dispatch<'js>(
        &self,
        ctx: &Ctx<'js>,
        host: &RefCell<Box<dyn Host>>,
        host_id: u64,
        result: Result<HostValue, HostError>,
    ) {
        let callback = {
            let mut c = self.calls.borrow_mut();
            match c.by_host.remove(&host_id) {
                Some(Some(ticket)) => match c.by_ticket.remove(&ticket) {
                    Some(Call::Started { callback, .. }) => Some(callback),
                    _ => None,
                },
                _ => None,
            }
        };
        self.start_queued(host);
        if let Some(callback) = callback {
            self.answer(ctx, callback, result);
        }
    }

    /// Calls a call's callback with its result.
    fn answer<'js>(
        &self,
        ctx: &Ctx<'js>,
        callback: Persistent<Function<'static>>,
        result: Result<HostValue, HostError>,
    ) {
        let Ok(cb) = callback.restore(ctx) else {
            return;
        };
        // The callbacks are the runtime's own glue, which only settles a promise: an error
        // here is a limit (the loop sees the flags next) or memory pressure, both reported by
        // the engine, so there is nothing to do with it.
        if let Ok((err, val)) = reply_args(ctx, result) {
            let _ = cb.call::<_, Value>((err, val)).catch(ctx);
        }
    }

    /// Ends an activation: clears the timers, drops queued calls and cancels started ones,
    /// waiting (up to `wait`) for the supervisor to answer each cancelled call so that no reply
    /// is left on the pipe. Returns what was cancelled.
    pub fn finish(&self, host: &RefCell<Box<dyn Host>>, wait: Duration) -> Cancelled {
        self.uncaught.borrow_mut().take();
        let timers = {
            let mut t = self.timers.borrow_mut();
            let n = t.entries.values().filter(|t| !t.unref).count();
            t.entries.clear();
            t.queue.clear();
            n
        };
        let (calls, to_cancel) = {
            let mut c = self.calls.borrow_mut();
            let n = c.by_ticket.len();
            c.by_ticket.clear();
            c.queue.clear();
            c.failed.clear();
            let mut started = Vec::new();
            for (host_id, ticket) in c.by_host.iter_mut() {
                if ticket.take().is_some() {
                    started.push(*host_id);
                }
            }
            (n, started)
        };
        if let Ok(mut h) = host.try_borrow_mut() {
            for id in to_cancel {
                h.cancel(id);
            }
        }
        let until = Instant::now() + wait;
        while self.open_host_calls() > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.wait_reply(host, left) {
                Some((id, _)) => {
                    self.calls.borrow_mut().by_host.remove(&id);
                }
                None => {
                    if !host.try_borrow().is_ok_and(|h| h.is_connected()) {
                        break;
                    }
                }
            }
        }
        Cancelled { timers, calls }
    }

    /// Releases every JavaScript value held (before the runtime is dropped).
    pub fn clear(&self) {
        *self.timers.borrow_mut() = Timers::default();
        *self.calls.borrow_mut() = Calls::default();
        self.uncaught.borrow_mut().take();
    }
}

/// `(error, value)` for a callback: the error's message (capability denials keep their prefix)
/// or the value, for `HostValue::Http` an object `{status, headers: [[name, value]...], body:
/// ArrayBuffer}`.
fn reply_args<'js>(
    ctx: &Ctx<'js>,
    result: Result<HostValue, HostError>,
) -> rquickjs::Result<(Value<'js>, Value<'js>)> {
    let undefined = Value::new_undefined(ctx.clone());
    match result {
        Err(e) => {
            let s = rquickjs::String::from_str(ctx.clone(), &e.message)?;
            Ok((s.into_value(), undefined))
        }
        Ok(HostValue::Http {
            status,
            headers,
            body,
        }) => {
            let o = Object::new(ctx.clone())?;
            o.set("status", status)?;
            let list = rquickjs::Array::new(ctx.clone())?;
            for (i, (k, v)) in headers.into_iter().enumerate() {
                let pair = rquickjs::Array::new(ctx.clone())?;
                pair.set(0, k)?;
                pair.set(1, v)?;
                list.set(i, pair)?;
            }
            o.set("headers", list)?;
            o.set("body", rquickjs::ArrayBuffer::new(ctx.clone(), body)?)?;
            Ok((undefined, o.into_value()))
        }
        Ok(HostValue::Done) => Ok((undefined.clone(), undefined)),
        Ok(HostValue::Text(t)) => {
            let v = rquickjs::String::from_str(ctx.clone(), &t)?.into_value();
            Ok((undefined, v))
        }
        Ok(HostValue::Kv(v)) => {
            let v = match v {
                Some(s) => rquickjs::String::from_str(ctx.clone(), &s)?.into_value(),
                None => Value::new_null(ctx.clone()),
            };
            Ok((undefined, v))
        }
    }
}

/// Blocks the thread for `d` without a timer fd or a signal: `ppoll` on no fd. Interrupted
/// sleeps resume for the time left.
pub fn sleep(d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let ts = timespec(left);
        // SAFETY: no fds are passed (null, 0); `ts` is a valid timespec on our stack for the
        // duration of the call; a null sigmask keeps the current one.
        unsafe {
            libc::ppoll(std::ptr::null_mut(), 0, &ts, std::ptr::null());
        }
    }
}

/// Waits until `fd` is readable (data, end of file or an error condition) or `timeout`
/// passes. `Ok(true)` when readable.
pub fn wait_readable(fd: libc::c_int, timeout: Duration) -> std::io::Result<bool> {
    let until = Instant::now() + timeout;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timespec(left);
        // SAFETY: one valid pollfd on our stack, a valid timespec, a null sigmask.
        let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            return Ok(false);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_node() {
        assert_eq!(delay_of(0.0), Duration::from_millis(1));
        assert_eq!(delay_of(-5.0), Duration::from_millis(1));
        assert_eq!(delay_of(f64::NAN), Duration::from_millis(1));
        assert_eq!(delay_of(2.9), Duration::from_millis(2));
        assert_eq!(delay_of(TIMEOUT_MAX_MS + 1.0), Duration::from_millis(1));
        assert_eq!(delay_of(1500.0), Duration::from_millis(1500));
    }

    #[test]
    fn warnings_count_what_was_cancelled() {
        let w = |timers, calls| Cancelled { timers, calls }.warning("the handler settled");
        assert_eq!(w(0, 0), None);
        assert_eq!(
            w(1, 0).unwrap(),
            "1 timer still pending when the handler settled was cancelled (nothing outlives an activation)"
        );
        assert_eq!(
            w(3, 2).unwrap(),
            "3 timers and 2 fetches still pending when the handler settled were cancelled (nothing outlives an activation)"
        );
    }

    #[test]
    fn sleep_sleeps_and_wait_times_out() {
        let t = Instant::now();
        sleep(Duration::from_millis(20));
        assert!(t.elapsed() >= Duration::from_millis(20));
        let mut fds = [0; 2];
        // SAFETY: a valid two-int array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!wait_readable(fds[0], Duration::from_millis(10)).unwrap());
        // SAFETY: writing one byte from a valid buffer to the pipe's write end.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert!(wait_readable(fds[0], Duration::from_secs(1)).unwrap());
        // SAFETY: closing the two fds this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
