//! The child's side of the frame protocol (see the diagram in [`sandbox_proto::protocol`]), over
//! stdin/stdout.
//!
//! Order of start-up, and why:
//! 1. read `Init` from the supervisor (trusted: the pipe is the supervisor's) and check the
//!    protocol version — a mismatch is `Fatal{step:"handshake"}`;
//! 2. create the [`Engine`] — runtime, context, globals — so a stem child has paid for all of
//!    it before it is handed a bundle;
//! 3. **confine** ([`confine`]): the last step before `Ready`. `Ready` is what allows the
//!    supervisor to send `LoadBundle`, the first untrusted bytes; so no tenant byte is ever
//!    read by an unconfined child;
//! 4. send `Ready`, then serve `LoadBundle` once and `Invoke` any number of times.
//!
//! The child never panics on input: every frame error ends the process with a code, after a
//! message on stderr (which the supervisor collects). Exit codes: [`EXIT_OK`] (end of input,
//! a failed load after its reply, a poisoned engine after its outcome), [`EXIT_STARTUP`] (the
//! handshake or a start-up step failed, after `Fatal`), [`EXIT_BREACH`] (a frame out of
//! order, a malformed frame, or a broken pipe).

use crate::engine::{event_loop, Engine, Host, LoadRequest};
use sandbox_proto::protocol::{
    encode, read_frame, write_frame, Fatal, FrameError, FromChild, HostCall, HostCancel, HostError,
    HostOp, HostValue, Init, Loaded, LogLine, Ready, ToChild, MAX_BYTECODE_BYTES,
    MAX_FRAME_TO_CHILD, PROTOCOL_VERSION,
};
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The request pipe: frames can be read, and the event loop can wait for the next one with a
/// timeout (a reply to a `fetch` while a timer is due sooner).
pub trait PipeInput: Read {
    /// Waits until reading would not block, or `timeout` passes; true when readable (data,
    /// or the end of the stream).
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool>;
}

/// Standard input, read with `read(2)` through a small buffer of our own, so that
/// [`PipeInput::wait_readable`] knows whether bytes are already here before it asks the kernel
/// (`ppoll` on fd 0).
pub struct StdinPipe {
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl StdinPipe {
    pub fn new() -> Self {
        StdinPipe {
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }
}

impl Default for StdinPipe {
    fn default() -> Self {
        Self::new()
    }
}

fn read_fd0(out: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `out` is a valid writable buffer of `out.len()` bytes; fd 0 is the request
        // pipe the supervisor gave us (kept open by confinement).
        let n = unsafe { libc::read(0, out.as_mut_ptr().cast(), out.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Read for StdinPipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            if out.len() >= self.buf.len() {
                return read_fd0(out);
            }
            self.len = read_fd0(&mut self.buf)?;
            self.pos = 0;
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl PipeInput for StdinPipe {
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        event_loop::wait_readable(0, timeout)
    }
}

/// Orderly end.
pub const EXIT_OK: i32 = 0;
/// The handshake or a start-up step (engine, confinement) failed; `Fatal` was sent.
pub const EXIT_STARTUP: i32 = 2;
/// The supervisor broke the protocol or the pipe broke.
pub const EXIT_BREACH: i32 = 3;

/// A start-up step that failed, reported as `Fatal{step, message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: &'static str,
    pub message: String,
}

/// Confinement: runs after the engine exists and before `Ready`, i.e. before any untrusted
/// byte is read. The supervisor decides what applies ([`Init::confine`]); `None` means it
/// could not confine on this host and said so. A step that fails names itself in the `Fatal`
/// frame the caller sends.
pub fn confine(init: &Init) -> Result<(), StepFailure> {
    let Some(settings) = &init.confine else {
        return Ok(());
    };
    crate::confine::confine(settings, &mut |_| {})
        .map(|_| ())
        .map_err(|e| StepFailure {
            step: e.step,
            message: e.message,
        })
}

/// Serves the protocol on `input`/`output` until the end; returns the exit code. A protocol
/// breach inside a host call ends the process at once with [`EXIT_BREACH`] (no more guest
/// code may run once the conversation is broken).
pub fn serve<R: PipeInput + 'static, W: Write + 'static>(input: R, output: W) -> i32 {
    serve_with(input, output, true)
}

struct Io<R, W> {
    input: R,
    output: W,
    /// Set when the conversation broke inside a host call or a log write; the exit code.
    failed: Option<i32>,
    /// Exit the process at once on a breach (production) rather than only record it (tests).
    exit_on_breach: bool,
}

impl<R: PipeInput, W: Write> Io<R, W> {
    fn send(&mut self, msg: &FromChild) -> Result<(), FrameError> {
        write_frame(&mut self.output, msg)
    }

    fn send_encoded(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        self.output.write_all(frame)?;
        self.output.flush()?;
        Ok(())
    }

    fn recv(&mut self) -> Result<ToChild, FrameError> {
        read_frame(&mut self.input, MAX_FRAME_TO_CHILD)
    }

    /// Records (or acts on) a broken conversation.
    fn breach(&mut self, message: &str) {
        eprintln!("sandbox-child: protocol breach: {message}");
        if self.exit_on_breach {
            std::process::exit(EXIT_BREACH);
        }
        self.failed = Some(EXIT_BREACH);
    }
}

type SharedIo<R, W> = Rc<RefCell<Io<R, W>>>;

/// The engine's [`Host`] over the pipe: host calls are `HostCall`/`HostReply` round trips,
/// log lines are `Log` frames sent at once.
///
/// Calls may overlap: `start` sends a call and returns; while the guest waits in a synchronous
/// `call`, replies to started calls that arrive first are kept in `replies` for the event loop.
/// A reply for an id that is neither the awaited one nor an open one is a breach.
struct PipeHost<R, W> {
    io: SharedIo<R, W>,
    next_id: u64,
    /// Started calls whose reply has not arrived.
    open: HashSet<u64>,
    /// Open calls the guest cancelled (a `HostCancel` was sent).
    cancelled: HashSet<u64>,
    /// Replies received for started calls, not yet handed to the event loop.
    replies: VecDeque<(u64, Result<HostValue, HostError>)>,
}

const GONE: &str = "the connection to the supervisor is broken";

fn gone() -> HostError {
    HostError::failed(GONE)
}

impl<R: PipeInput, W: Write> PipeHost<R, W> {
    fn send_call(&mut self, op: HostOp) -> Result<u64, HostError> {
        let mut io = self.io.borrow_mut();
        if io.failed.is_some() {
            return Err(gone());
        }
        self.next_id += 1;
        let id = self.next_id;
        let name = op.call_name();
        // Encoded first: an argument too large for a frame is the guest's error (catchable,
        // naming the limit), not a broken conversation.
        let frame = match encode(&FromChild::HostCall(HostCall { id, op })) {
            Ok(f) => f,
            Err(FrameError::TooLarge { len, max }) => {
                return Err(HostError::limit_exceeded(format!(
                    "{name}: the call's arguments take {len} bytes, \
                         over the host-call limit of {max} bytes ({} MiB)",
                    max >> 20
                )))
            }
            Err(e) => {
                return Err(HostError::failed(format!(
                    "{name}: cannot encode the call: {e}"
                )))
            }
        };
        if let Err(e) = io.send_encoded(&frame) {
            io.breach(&format!("cannot send host call {id}: {e}"));
            return Err(gone());
        }
        Ok(id)
    }

    /// Reads one frame, which must be the reply of an open call or of `awaited`.
    fn read_reply(&mut self, awaited: Option<u64>) -> Option<(u64, Result<HostValue, HostError>)> {
        let mut io = self.io.borrow_mut();
        match io.recv() {
            Ok(ToChild::HostReply(reply))
                if Some(reply.id) == awaited || self.open.contains(&reply.id) =>
            {
                self.open.remove(&reply.id);
                self.cancelled.remove(&reply.id);
                Some((reply.id, reply.result))
            }
            Ok(other) => {
                io.breach(&format!("expected a HostReply, got {}", frame_name(&other)));
                None
            }
            Err(e) => {
                io.breach(&format!("expected a HostReply: {e}"));
                None
            }
        }
    }
}

impl<R: PipeInput, W: Write> Host for PipeHost<R, W> {
    fn call(&mut self, op: HostOp) -> Result<HostValue, HostError> {
        let id = self.send_call(op)?;
        loop {
            match self.read_reply(Some(id)) {
                Some((got, result)) if got == id => return result,
                Some(other) => self.replies.push_back(other),
                None => return Err(gone()),
            }
        }
    }

    fn start(&mut self, op: HostOp) -> Result<u64, HostError> {
        let id = self.send_call(op)?;
        self.open.insert(id);
        Ok(id)
    }

    fn cancel(&mut self, id: u64) {
        if !self.open.contains(&id) || !self.cancelled.insert(id) {
            return;
        }
        let mut io = self.io.borrow_mut();
        if io.failed.is_some() {
            return;
        }
        if let Err(e) = io.send(&FromChild::HostCancel(HostCancel { id })) {
            io.breach(&format!("cannot cancel host call {id}: {e}"));
        }
    }

    fn wait(&mut self, timeout: Duration) -> Option<(u64, Result<HostValue, HostError>)> {
        if let Some(r) = self.replies.pop_front() {
            return Some(r);
        }
        if self.open.is_empty() || !self.is_connected() {
            event_loop::sleep(timeout);
            return None;
        }
        let readable = self.io.borrow_mut().input.wait_readable(timeout);
        match readable {
            Ok(true) => self.read_reply(None),
            Ok(false) => None,
            Err(e) => {
                self.io
                    .borrow_mut()
                    .breach(&format!("waiting for a HostReply: {e}"));
                None
            }
        }
    }

    fn is_connected(&self) -> bool {
        self.io.borrow().failed.is_none()
    }

    fn log(&mut self, line: LogLine) {
        let mut io = self.io.borrow_mut();
        if io.failed.is_some() {
            return;
        }
        if let Err(e) = io.send(&FromChild::Log(line)) {
            io.breach(&format!("cannot send a log line: {e}"));
        }
    }
}

fn frame_name(f: &ToChild) -> String {
    match f {
        ToChild::Init(_) => "Init".into(),
        ToChild::LoadBundle(_) => "LoadBundle".into(),
        ToChild::Invoke(_) => "Invoke".into(),
        ToChild::HostReply(r) => format!("HostReply {}", r.id),
    }
}

fn serve_with<R: PipeInput + 'static, W: Write + 'static>(input: R, output: W, exit: bool) -> i32 {
    let io: SharedIo<R, W> = Rc::new(RefCell::new(Io {
        input,
        output,
        failed: None,
        exit_on_breach: exit,
    }));

    // 1. Handshake.
    let first = io.borrow_mut().recv();
    let init = match first {
        Ok(ToChild::Init(init)) if init.protocol_version == PROTOCOL_VERSION => init,
        Ok(ToChild::Init(init)) => {
            return fatal(
                &io,
                "handshake",
                format!(
                    "protocol version {} requested, this child speaks {PROTOCOL_VERSION}",
                    init.protocol_version
                ),
            )
        }
        Ok(other) => {
            return fatal(
                &io,
                "handshake",
                format!("expected Init, got {}", frame_name(&other)),
            )
        }
        Err(FrameError::Closed) => return EXIT_OK,
        Err(e) => return fatal(&io, "handshake", format!("expected Init: {e}")),
    };

    // 2. The engine, before any bundle is known.
    let host = PipeHost {
        io: io.clone(),
        next_id: 0,
        open: HashSet::new(),
        cancelled: HashSet::new(),
        replies: VecDeque::new(),
    };
    let mut engine = match Engine::new(Box::new(host)) {
        Ok(e) => e,
        Err(m) => return fatal(&io, "engine", m.to_string()),
    };

    // 3. Confinement, before the first untrusted byte.
    if let Err(f) = confine(&init) {
        return fatal(&io, f.step, f.message);
    }

    // 4. Ready, then serve.
    let ready = FromChild::Ready(Ready {
        protocol_version: PROTOCOL_VERSION,
        pid: std::process::id(),
    });
    if let Err(e) = io.borrow_mut().send(&ready) {
        eprintln!("sandbox-child {}: cannot send Ready: {e}", init.child_id);
        return EXIT_BREACH;
    }

    loop {
        let frame = io.borrow_mut().recv();
        let frame = match frame {
            Ok(f) => f,
            Err(FrameError::Closed) => return EXIT_OK,
            Err(e) => return breach(&format!("reading the next request: {e}")),
        };
        match frame {
            ToChild::LoadBundle(lb) => {
                if engine.is_loaded() {
                    return breach("a second LoadBundle");
                }
                let start = Instant::now();
                if init.confine.is_some() {
                    if let Err(e) = crate::confine::lower_address_space(lb.memory_limit_bytes) {
                        // The engine's counter and the cgroup still bound the child.
                        eprintln!("sandbox-child: cannot lower the address-space limit: {e}");
                    }
                }
                let bundle = LoadRequest {
                    files: &lb.files,
                    entry: &lb.entry,
                    memory_limit_bytes: lb.memory_limit_bytes,
                    limits: lb.limits,
                    env: &lb.env,
                };
                let r = engine.load_compiled(&bundle, lb.bytecode.as_deref(), lb.want_bytecode);
                let failed = r.is_err();
                let reply = FromChild::Loaded(r.map(|report| {
                    Loaded {
                        load_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
                        from_bytecode: report.from_bytecode,
                        // A blob over the limit would make the whole reply too large to send:
                        // such a bundle is simply not cached.
                        bytecode: report
                            .bytecode
                            .filter(|b| lb.want_bytecode && b.len() <= MAX_BYTECODE_BYTES),
                        bytecode_rejected: report.rejected,
                    }
                }));
                if let Some(code) = send_reply(&io, &reply) {
                    return code;
                }
                if failed {
                    return EXIT_OK;
                }
            }
            ToChild::Invoke(inv) => {
                if !engine.is_loaded() {
                    return breach("Invoke before a bundle was loaded");
                }
                let mut outcome = engine.invoke(
                    &inv.event_json,
                    &inv.ctx_json,
                    Duration::from_micros(inv.budget_us),
                );
                outcome.invocation_id = inv.invocation_id;
                if let Some(code) = send_reply(&io, &FromChild::Outcome(outcome)) {
                    return code;
                }
                if engine.poisoned() {
                    return EXIT_OK;
                }
            }
            other => {
                return breach(&format!("unexpected {}", frame_name(&other)));
            }
        }
    }
}

/// Sends a reply unless the conversation already broke. Returns an exit code to stop with.
fn send_reply<R: PipeInput, W: Write>(io: &SharedIo<R, W>, msg: &FromChild) -> Option<i32> {
    let mut io = io.borrow_mut();
    if let Some(code) = io.failed {
        return Some(code);
    }
    match io.send(msg) {
        Ok(()) => None,
        Err(e) => {
            eprintln!("sandbox-child: cannot send a reply: {e}");
            Some(EXIT_BREACH)
        }
    }
}

fn breach(message: &str) -> i32 {
    eprintln!("sandbox-child: protocol breach: {message}");
    EXIT_BREACH
}

fn fatal<R: PipeInput, W: Write>(io: &SharedIo<R, W>, step: &str, message: String) -> i32 {
    eprintln!("sandbox-child: {step} failed: {message}");
    let msg = FromChild::Fatal(Fatal {
        step: step.to_string(),
        message,
    });
    let _ = io.borrow_mut().send(&msg);
    EXIT_STARTUP
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_proto::protocol::{
        encode, BundleFile, ErrorKind, HostReply, Invoke, LoadBundle, Outcome, OutputLimits,
    };
    use std::io::Cursor;

    impl PipeInput for Cursor<Vec<u8>> {
        fn wait_readable(&mut self, _timeout: Duration) -> io::Result<bool> {
            Ok(true)
        }
    }

    /// A writer the test can read back after `serve` consumed it.
    #[derive(Clone, Default)]
    struct Sink(Rc<RefCell<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn frames(msgs: &[ToChild]) -> Vec<u8> {
        msgs.iter().flat_map(|m| encode(m).unwrap()).collect()
    }

    fn run(input: Vec<u8>) -> (i32, Vec<FromChild>) {
        let sink = Sink::default();
        let code = serve_with(Cursor::new(input), sink.clone(), false);
        let bytes = sink.0.borrow().clone();
        let mut r = &bytes[..];
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(read_frame(&mut r, usize::MAX).unwrap());
        }
        (code, out)
    }

    fn init(v: u32) -> ToChild {
        ToChild::Init(Init {
            protocol_version: v,
            child_id: 1,
            confine: None,
        })
    }

    fn load(src: &str) -> ToChild {
        ToChild::LoadBundle(LoadBundle {
            sha256: "0".repeat(64),
            entry: "function.js".into(),
            files: vec![BundleFile {
                path: "function.js".into(),
                contents: src.as_bytes().to_vec(),
            }],
            memory_limit_bytes: 64 << 20,
            limits: OutputLimits::default(),
            env: Vec::new(),
            bytecode: None,
            want_bytecode: false,
        })
    }

    fn invoke(id: u64) -> ToChild {
        ToChild::Invoke(Invoke {
            invocation_id: id,
            event_json: "{\"a\":1}".into(),
            ctx_json: "{}".into(),
            budget_us: 2_000_000,
        })
    }

    fn outcome(f: &FromChild) -> &Outcome {
        match f {
            FromChild::Outcome(o) => o,
            other => panic!("expected Outcome, got {other:?}"),
        }
    }

    #[test]
    fn full_conversation_with_host_call_and_logs() {
        let src = "export default (e) => { console.log('hi'); \
                   return {body: JSON.stringify(cs.kv.get('k'))}; };";
        let input = frames(&[
            init(PROTOCOL_VERSION),
            load(src),
            invoke(7),
            ToChild::HostReply(HostReply {
                id: 1,
                result: Ok(HostValue::Kv(Some("[1,2]".into()))),
            }),
        ]);
        let (code, out) = run(input);
        assert_eq!(code, EXIT_OK);
        assert!(matches!(&out[0], FromChild::Ready(r) if r.protocol_version == PROTOCOL_VERSION));
        assert!(matches!(&out[1], FromChild::Loaded(Ok(_))));
        assert!(matches!(&out[2], FromChild::Log(l) if l.line == "[info] hi"));
        assert!(
            matches!(&out[3], FromChild::HostCall(HostCall { id: 1, op: HostOp::KvGet { key } }) if key == "k")
        );
        let o = outcome(&out[4]);
        assert_eq!(o.invocation_id, 7);
        let r = o.result.as_ref().unwrap();
        assert_eq!((r.status_code, r.body.as_str()), (200, "[1,2]"));
        assert!(r.headers.is_empty() && !r.is_base64_encoded);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn wrong_version_or_first_frame_is_fatal() {
        for first in [init(PROTOCOL_VERSION + 1), invoke(1)] {
            let (code, out) = run(frames(&[first]));
            assert_eq!(code, EXIT_STARTUP);
            assert!(matches!(&out[..], [FromChild::Fatal(f)] if f.step == "handshake"));
        }
        let (code, out) = run(vec![0, 0, 0, 2, 0xff, 0xff]);
        assert_eq!(code, EXIT_STARTUP);
        assert!(matches!(&out[..], [FromChild::Fatal(f)] if f.step == "handshake"));
    }

    #[test]
    fn end_of_input_is_a_clean_exit() {
        assert_eq!(run(Vec::new()).0, EXIT_OK);
        let (code, out) = run(frames(&[init(PROTOCOL_VERSION)]));
        assert_eq!(code, EXIT_OK);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn wrong_reply_inside_a_host_call_is_a_breach() {
        let src = "export default () => { try { cs.kv.get('k'); } catch (e) {} return 1; };";
        let input = frames(&[
            init(PROTOCOL_VERSION),
            load(src),
            invoke(1),
            ToChild::HostReply(HostReply {
                id: 99,
                result: Ok(HostValue::Done),
            }),
        ]);
        let (code, out) = run(input);
        assert_eq!(code, EXIT_BREACH);
        // Ready, Loaded, HostCall; no Outcome after the breach.
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn out_of_order_frames_are_breaches() {
        let (code, _) = run(frames(&[init(PROTOCOL_VERSION), invoke(1)]));
        assert_eq!(code, EXIT_BREACH);
        let (code, _) = run(frames(&[
            init(PROTOCOL_VERSION),
            load("export default () => 1"),
            load("export default () => 1"),
        ]));
        assert_eq!(code, EXIT_BREACH);
    }

    #[test]
    fn load_error_is_replied_then_exit() {
        let (code, out) = run(frames(&[init(PROTOCOL_VERSION), load("nope("), invoke(1)]));
        assert_eq!(code, EXIT_OK);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[1], FromChild::Loaded(Err(e)) if e.kind == ErrorKind::Exception));
    }

    #[test]
    fn poisoned_engine_exits_after_its_outcome() {
        let input = frames(&[
            init(PROTOCOL_VERSION),
            load("export default () => { while (true) {} };"),
            ToChild::Invoke(Invoke {
                invocation_id: 3,
                event_json: "null".into(),
                ctx_json: "{}".into(),
                budget_us: 20_000,
            }),
            invoke(4),
        ]);
        let (code, out) = run(input);
        assert_eq!(code, EXIT_OK);
        assert_eq!(out.len(), 3);
        let o = outcome(&out[2]);
        assert_eq!(o.invocation_id, 3);
        assert_eq!(o.result.as_ref().unwrap_err().kind, ErrorKind::Timeout);
    }
}
