//! The frame protocol spoken between the supervisor and a `sandbox-child` over its pipes.
//!
//! Each frame is a big-endian `u32` length followed by that many bytes of a bincode 2
//! (`config::standard()`, varint) encoding of one message. The length is checked against a
//! maximum *before* anything is allocated for the body, and the decoder itself runs with the same
//! limit, so a hostile child can make the supervisor allocate neither through the prefix nor
//! through a length hidden inside the body.
//!
//! Conversation (the supervisor speaks first, the child answers each step):
//!
//! ```text
//! supervisor                       child
//!     Init{version}        ─────▶   (checks version, confines itself, before any untrusted byte)
//!                          ◀─────   Ready{version, pid}      or Fatal{step, message}
//!     LoadBundle{files..,  ─────▶   (loads `bytecode` when it is its build's and intact,
//!       bytecode?}                   else compiles the source)
//!                          ◀─────   Loaded(Ok{bytecode?, from_bytecode} | Err)
//!     Invoke{id, event..}  ─────▶
//!                          ◀─────   Log* / HostCall{id} / HostCancel{id}     (any number)
//!     HostReply{id}        ─────▶   (exactly one per HostCall, in any order)
//!                          ◀─────   Outcome{id}
//!     Invoke ...                    (warm reuse: same bundle, same tenant)
//! ```
//!
//! Host calls may overlap. A synchronous one (`cs.kv.get`) blocks the guest until its reply;
//! an asynchronous one (`fetch`) lets the child keep running its event loop — timers, other
//! calls, log lines — while the supervisor performs it, and a `HostCancel` (an `AbortSignal`)
//! asks the supervisor to drop it. Either way every `HostCall` gets exactly one `HostReply`
//! (a cancelled one an error reply, unless its real reply was already on its way), and a child
//! sends `Loaded`/`Outcome` only once every reply has arrived. The supervisor serves at most
//! [`MAX_HOST_CALLS_IN_FLIGHT`] calls of one child at a time; one more is a breach, so a
//! hostile child cannot make it hold unbounded work. The child queues what exceeds the cap.
//!
//! Any frame that does not fit this order is a protocol breach: the supervisor kills the child.

use bincode::{Decode, Encode};
use std::io::{self, Read, Write};

/// Bumped whenever a message changes shape; both sides refuse a different version.
pub const PROTOCOL_VERSION: u32 = 4;

/// Host calls of one child the supervisor serves at once. The child keeps at most
/// `MAX_HOST_CALLS_IN_FLIGHT - 1` asynchronous calls open, so a synchronous one always has a
/// slot; what a guest asks beyond that waits in the child.
pub const MAX_HOST_CALLS_IN_FLIGHT: usize = 4;

/// Largest frame the supervisor sends (a 16 MiB bundle plus an event, with room to spare).
pub const MAX_FRAME_TO_CHILD: usize = 40 << 20;

/// Largest frame the supervisor accepts from a child. Results, errors and log lines are bounded
/// far below this by the child; a bigger frame can only come from a broken or hostile child.
pub const MAX_FRAME_FROM_CHILD: usize = 8 << 20;

/// Largest compiled-module blob ([`Loaded::bytecode`], [`LoadBundle::bytecode`]): what fits in a
/// `Loaded` frame from the child with room for the rest of it. A bundle whose bytecode is larger
/// is simply not cached (the child compiles it each time). It also fits beside a 16 MiB bundle
/// in a `LoadBundle` frame ([`MAX_FRAME_TO_CHILD`]).
pub const MAX_BYTECODE_BYTES: usize = MAX_FRAME_FROM_CHILD - (64 << 10);

/// Size of the length prefix.
pub const PREFIX_LEN: usize = 4;

type Config<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

/// A message of one direction of the pipe, with that direction's size limit. The limit bounds
/// the encoded body ([`encode`] refuses a bigger one, so the sender learns it before anything
/// is written) and every allocation the decoder makes for it (bincode's limit is checked before
/// a length-prefixed field is allocated): a frame from a child can never make the supervisor
/// allocate more than [`MAX_FRAME_FROM_CHILD`].
pub trait Frame: Encode + Decode<()> + Sized {
    /// Largest body of this direction.
    const MAX: usize;
    #[doc(hidden)]
    fn decode_limited(body: &[u8]) -> Result<(Self, usize), bincode::error::DecodeError>;
    #[doc(hidden)]
    fn encode_limited(&self, out: &mut Vec<u8>) -> Result<usize, bincode::error::EncodeError>;
}

impl Frame for ToChild {
    const MAX: usize = MAX_FRAME_TO_CHILD;
    fn decode_limited(body: &[u8]) -> Result<(Self, usize), bincode::error::DecodeError> {
        const C: Config<MAX_FRAME_TO_CHILD> =
            bincode::config::standard().with_limit::<MAX_FRAME_TO_CHILD>();
        bincode::decode_from_slice(body, C)
    }
    fn encode_limited(&self, out: &mut Vec<u8>) -> Result<usize, bincode::error::EncodeError> {
        const C: Config<MAX_FRAME_TO_CHILD> =
            bincode::config::standard().with_limit::<MAX_FRAME_TO_CHILD>();
        bincode::encode_into_std_write(self, out, C)
    }
}

impl Frame for FromChild {
    const MAX: usize = MAX_FRAME_FROM_CHILD;
    fn decode_limited(body: &[u8]) -> Result<(Self, usize), bincode::error::DecodeError> {
        const C: Config<MAX_FRAME_FROM_CHILD> =
            bincode::config::standard().with_limit::<MAX_FRAME_FROM_CHILD>();
        bincode::decode_from_slice(body, C)
    }
    fn encode_limited(&self, out: &mut Vec<u8>) -> Result<usize, bincode::error::EncodeError> {
        const C: Config<MAX_FRAME_FROM_CHILD> =
            bincode::config::standard().with_limit::<MAX_FRAME_FROM_CHILD>();
        bincode::encode_into_std_write(self, out, C)
    }
}

/// Messages from the supervisor to a child.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum ToChild {
    /// First frame of every child: the version handshake and the child's identity.
    Init(Init),
    /// Binds a stem child to one bundle. Sent once per child.
    LoadBundle(LoadBundle),
    /// Runs the loaded handler once.
    Invoke(Invoke),
    /// The answer to a [`HostCall`], correlated by `id`.
    HostReply(HostReply),
}

/// Messages from a child to the supervisor.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum FromChild {
    /// The child is confined and waits for a bundle.
    Ready(Ready),
    /// Answer to [`LoadBundle`]: the module compiled and evaluated, or why not.
    Loaded(Result<Loaded, GuestError>),
    /// The guest called `cs.kv.*`, `cs.codeq.publish`, `cs.http.fetch`, `fetch` or
    /// `cs.cadence.heartbeat`. Answered by exactly one [`HostReply`] with the same id.
    HostCall(HostCall),
    /// One line of `console.*` / `cs.log.*` output, already prefixed with `[level] `.
    Log(LogLine),
    /// The end of one [`Invoke`].
    Outcome(Outcome),
    /// A start-up step failed; the child exits right after sending this.
    Fatal(Fatal),
    // Last, so the variant numbers above (hand-encoded by the SIGSYS reporter) stay put.
    /// The guest no longer wants the answer of an open [`HostCall`] (an aborted `fetch`, or
    /// calls still open when the handler settled): the supervisor drops the work and replies
    /// at once with an error, unless the reply is already sent.
    HostCancel(HostCancel),
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Init {
    pub protocol_version: u32,
    /// Supervisor-assigned id, echoed in diagnostics.
    pub child_id: u64,
    /// How the child confines itself before Ready; `None` runs unconfined (a host where the
    /// supervisor cannot confine, and said so).
    pub confine: Option<crate::settings::ConfineSettings>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Ready {
    pub protocol_version: u32,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Fatal {
    /// The start-up step that failed, e.g. `handshake`, `seccomp`.
    pub step: String,
    pub message: String,
}

/// Output bounds the child applies itself (the supervisor checks them again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct OutputLimits {
    pub max_result_bytes: u32,
    pub max_error_bytes: u32,
    pub max_stack_bytes: u32,
    pub max_log_bytes: u32,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            max_result_bytes: 256 * 1024,
            max_error_bytes: 64 * 1024,
            max_stack_bytes: 8 * 1024,
            max_log_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct BundleFile {
    /// Normalised relative path inside the bundle, e.g. `function.js`, `lib/util.js`.
    pub path: String,
    pub contents: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct LoadBundle {
    /// Lower-case hex sha256 of the bundle; the child uses it only in diagnostics.
    pub sha256: String,
    /// Path of the entry module among `files`.
    pub entry: String,
    pub files: Vec<BundleFile>,
    /// The manifest's `memoryMb`, in bytes, counted by the engine's allocator.
    pub memory_limit_bytes: u64,
    pub limits: OutputLimits,
    /// `process.env`: the version's `config.env` (Sous `VersionConfig.env`), set before the
    /// module's top-level code runs. Part of the warm binding, so it never changes for a child.
    pub env: Vec<(String, String)>,
    /// The compiled modules (QuickJS bytecode in the child's own envelope) that an earlier
    /// child bound to the **same tenant and the same bundle** returned in its [`Loaded`]. The
    /// child loads them instead of parsing the source when the envelope names its own build
    /// and its checksum holds; otherwise it compiles the source and says why in
    /// [`Loaded::bytecode_rejected`]. Never another tenant's or another bundle's: QuickJS does
    /// not verify bytecode.
    pub bytecode: Option<Vec<u8>>,
    /// The supervisor keeps compiled modules: when the child compiles the source it returns
    /// them in [`Loaded::bytecode`] (if they fit [`MAX_BYTECODE_BYTES`]).
    pub want_bytecode: bool,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Loaded {
    /// Time spent compiling and evaluating the module, in microseconds.
    pub load_us: u64,
    /// The modules were read from [`LoadBundle::bytecode`]; nothing was parsed.
    pub from_bytecode: bool,
    /// The compiled modules of this load, for the supervisor to keep opaque and hand to the
    /// next child of the same tenant and bundle. Only after a compile from source that was
    /// asked for ([`LoadBundle::want_bytecode`]) and fits [`MAX_BYTECODE_BYTES`].
    pub bytecode: Option<Vec<u8>>,
    /// Why the bytecode that came with [`LoadBundle`] was not used (another child build, a
    /// bad checksum, QuickJS refused it): the child compiled the source instead.
    pub bytecode_rejected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Invoke {
    /// Supervisor-assigned, echoed in [`Outcome::invocation_id`].
    pub invocation_id: u64,
    /// The event, as JSON text.
    pub event_json: String,
    /// The `ctx` object, as JSON text.
    pub ctx_json: String,
    /// Time left until the effective deadline when the frame was sent, in microseconds.
    pub budget_us: u64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct HostCall {
    pub id: u64,
    pub op: HostOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct HostCancel {
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum HostOp {
    KvGet {
        key: String,
    },
    KvSet {
        key: String,
        /// The value, as JSON text.
        value_json: String,
        ttl_seconds: Option<u64>,
    },
    KvDel {
        key: String,
    },
    CodeqPublish {
        topic: String,
        /// The payload, as JSON text.
        payload_json: String,
    },
    HttpFetch {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        timeout_ms: Option<u64>,
    },
    /// `cs.cadence.heartbeat()`: extend the codeQ lease of the task running this activation.
    /// Allowed only when the trigger is `cadence`.
    CadenceHeartbeat,
    /// `cs.secrets.get(name)`: one of the secrets the version declares (`config.secrets`), by
    /// its declared or short name. The supervisor holds the values; the child gets only those
    /// the function asks for.
    SecretGet {
        name: String,
    },
}

impl HostOp {
    /// The JavaScript call this op is, for error messages (`cs.kv.set`, ...).
    pub fn call_name(&self) -> &'static str {
        match self {
            HostOp::KvGet { .. } => "cs.kv.get",
            HostOp::KvSet { .. } => "cs.kv.set",
            HostOp::KvDel { .. } => "cs.kv.del",
            HostOp::CodeqPublish { .. } => "cs.codeq.publish",
            HostOp::HttpFetch { .. } => "cs.http.fetch",
            HostOp::CadenceHeartbeat => "cs.cadence.heartbeat",
            HostOp::SecretGet { .. } => "cs.secrets.get",
        }
    }
}

impl HostOp {
    /// A short name for logs and metrics: `kv.get`, `codeq.publish`, ...
    pub fn name(&self) -> &'static str {
        match self {
            HostOp::KvGet { .. } => "kv.get",
            HostOp::KvSet { .. } => "kv.set",
            HostOp::KvDel { .. } => "kv.del",
            HostOp::CodeqPublish { .. } => "codeq.publish",
            HostOp::HttpFetch { .. } => "http.fetch",
            HostOp::CadenceHeartbeat => "cadence.heartbeat",
            HostOp::SecretGet { .. } => "secrets.get",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct HostReply {
    pub id: u64,
    pub result: Result<HostValue, HostError>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum HostValue {
    /// `cs.kv.get`: the stored value as JSON text, or `None` for a missing key.
    Kv(Option<String>),
    /// `cs.kv.set`, `cs.kv.del`, `cs.codeq.publish`.
    Done,
    /// `cs.http.fetch`.
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `cs.secrets.get`: the value.
    Text(String),
}

/// A host call that did not succeed. `message` becomes the message of the JS `Error` thrown
/// into the guest; capability denials start with `CS_RUNTIME_CAPABILITY_DENIED:`. Build one
/// with the constructor of its kind, which writes the prefix the contract gives that kind.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HostError {
    /// What the supervisor counts (a denial is `denied` in the host-call metrics); the
    /// function only sees the message.
    pub kind: HostErrorKind,
    pub message: String,
}

/// The kinds of [`HostError`] (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum HostErrorKind {
    /// Refused by the activation's grants (the manifest's capabilities, its declared secrets):
    /// `CS_RUNTIME_CAPABILITY_DENIED: ...`.
    Denied,
    /// Over a platform limit: `CS_RUNTIME_LIMIT_EXCEEDED: ...`.
    LimitExceeded,
    /// The store or the queue could not serve the call: `CS_RUNTIME_UNAVAILABLE: ...`.
    Unavailable,
    /// Anything else (a bad argument, a network failure, a cancelled call).
    Failed,
}

impl HostError {
    /// `CS_RUNTIME_CAPABILITY_DENIED: {what}`.
    pub fn denied(what: impl std::fmt::Display) -> HostError {
        HostError {
            kind: HostErrorKind::Denied,
            message: format!("{CAPABILITY_DENIED}: {what}"),
        }
    }

    /// `CS_RUNTIME_LIMIT_EXCEEDED: {what}`.
    pub fn limit_exceeded(what: impl std::fmt::Display) -> HostError {
        HostError {
            kind: HostErrorKind::LimitExceeded,
            message: format!("{LIMIT_EXCEEDED}: {what}"),
        }
    }

    /// `CS_RUNTIME_UNAVAILABLE: {what}`.
    pub fn unavailable(what: impl std::fmt::Display) -> HostError {
        HostError {
            kind: HostErrorKind::Unavailable,
            message: format!("{UNAVAILABLE}: {what}"),
        }
    }

    /// Any other failure; `message` is given whole.
    pub fn failed(message: impl Into<String>) -> HostError {
        HostError {
            kind: HostErrorKind::Failed,
            message: message.into(),
        }
    }
}

/// Prefix of every capability denial, as contract §6 fixes it.
pub const CAPABILITY_DENIED: &str = "CS_RUNTIME_CAPABILITY_DENIED";

/// Prefix of the message of an error thrown into the guest when a call exceeds a limit (an
/// argument too large to send, too many publishes, ...). Catchable like any `Error`.
pub const LIMIT_EXCEEDED: &str = "CS_RUNTIME_LIMIT_EXCEEDED";

/// Prefix of the message of an error thrown into the guest when the store or the queue could
/// not serve a call (no infrastructure details follow it).
pub const UNAVAILABLE: &str = "CS_RUNTIME_UNAVAILABLE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LogLine {
    pub level: LogLevel,
    /// The whole line, `[level] text`, without a trailing newline.
    pub line: String,
}

/// The error types of contract §6 that a child can produce itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum ErrorKind {
    Exception,
    ValidationError,
    Timeout,
    MemoryLimit,
    SandboxError,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Exception => "Exception",
            ErrorKind::ValidationError => "ValidationError",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::MemoryLimit => "MemoryLimit",
            ErrorKind::SandboxError => "SandboxError",
        }
    }
}

/// Here rather than in `messages`, which this module already uses: the dependency points one
/// way.
impl From<ErrorKind> for crate::messages::ErrorType {
    fn from(k: ErrorKind) -> Self {
        use crate::messages::ErrorType;
        match k {
            ErrorKind::Exception => ErrorType::Exception,
            ErrorKind::ValidationError => ErrorType::ValidationError,
            ErrorKind::Timeout => ErrorType::Timeout,
            ErrorKind::MemoryLimit => ErrorType::MemoryLimit,
            ErrorKind::SandboxError => ErrorType::SandboxError,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GuestError {
    pub kind: ErrorKind,
    pub message: String,
    pub stack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Outcome {
    pub invocation_id: u64,
    /// The normalised result object (`statusCode`, `headers`, `body`, `isBase64Encoded`), or
    /// the error. Carried as fields rather than JSON text: a body is neither escaped here nor
    /// unescaped on the other side.
    pub result: Result<crate::messages::HttpResult, GuestError>,
    /// The result body was cut to fit `max_result_bytes`.
    pub result_truncated: bool,
    /// Log output went past `max_log_bytes`; later lines were dropped.
    pub logs_truncated: bool,
    /// Highest number of bytes the engine's allocator held during this invocation.
    pub memory_peak_bytes: u64,
    /// Time spent in the engine for this invocation, in microseconds.
    pub exec_us: u64,
    /// CPU time the child used for this invocation (`CLOCK_PROCESS_CPUTIME_ID`), in
    /// microseconds: next to `exec_us` it shows time spent waiting (timers, fetches) rather
    /// than computing. Reported by the child, so for operators, not for enforcement.
    pub cpu_us: u64,
}

/// Everything that can go wrong reading or writing a frame.
#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// The peer closed the pipe at a frame boundary.
    Closed,
    /// The length prefix announced more than the reader accepts.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// The body did not decode as the expected message.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "pipe error: {e}"),
            FrameError::Closed => write!(f, "pipe closed"),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    }
}

/// Encodes `msg` as one frame: length prefix plus body. A body over its direction's
/// [`Frame::MAX`] is [`FrameError::TooLarge`]: the peer would refuse it.
pub fn encode<T: Frame>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; PREFIX_LEN];
    msg.encode_limited(&mut buf)
        .map_err(|e| FrameError::Malformed(format!("cannot encode: {e}")))?;
    let body_len = buf.len() - PREFIX_LEN;
    if body_len > T::MAX {
        return Err(FrameError::TooLarge {
            len: body_len,
            max: T::MAX,
        });
    }
    let len = u32::try_from(body_len).map_err(|_| FrameError::TooLarge {
        len: body_len,
        max: u32::MAX as usize,
    })?;
    buf[..PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Reads the body length out of a prefix, refusing it when over `max`.
pub fn body_len(prefix: [u8; PREFIX_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one body; every byte must belong to the message.
pub fn decode_body<T: Frame>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > T::MAX {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: T::MAX,
        });
    }
    let (msg, used) = T::decode_limited(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Writes one frame and flushes.
pub fn write_frame<W: Write, T: Frame>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let buf = encode(msg)?;
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame of at most `max` body bytes. A clean end of stream before the prefix is
/// [`FrameError::Closed`].
pub fn read_frame<R: Read, T: Frame>(r: &mut R, max: usize) -> Result<T, FrameError> {
    let mut prefix = [0u8; PREFIX_LEN];
    r.read_exact(&mut prefix)?;
    let len = body_len(prefix, max.min(T::MAX))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    decode_body(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msg = FromChild::HostCall(HostCall {
            id: 7,
            op: HostOp::KvSet {
                key: "a".into(),
                value_json: "{\"x\":1}".into(),
                ttl_seconds: Some(5),
            },
        });
        let buf = encode(&msg).unwrap();
        let back: FromChild = read_frame(&mut &buf[..], MAX_FRAME_FROM_CHILD).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn oversized_prefix_is_refused_before_reading_the_body() {
        let mut buf = (u32::MAX).to_be_bytes().to_vec();
        buf.extend_from_slice(b"xx");
        match read_frame::<_, FromChild>(&mut &buf[..], MAX_FRAME_FROM_CHILD) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, u32::MAX as usize);
                assert_eq!(max, MAX_FRAME_FROM_CHILD);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn inner_length_beyond_the_body_is_malformed_not_allocated() {
        // Variant 3 (Log), level 0, then a string claiming 2^60 bytes.
        let body = [3u8, 0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let r: Result<FromChild, _> = decode_body(&body);
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut buf = encode(&ToChild::Init(Init {
            protocol_version: 1,
            child_id: 1,
            confine: None,
        }))
        .unwrap();
        buf.push(0);
        let r: Result<ToChild, _> = decode_body(&buf[PREFIX_LEN..]);
        assert!(matches!(r, Err(FrameError::Malformed(_))));
    }

    #[test]
    fn each_direction_has_its_own_limit() {
        // A host call just over the child-to-supervisor limit cannot even be encoded, so the
        // child learns it before writing; the same bytes fit the other direction.
        let big = "x".repeat(MAX_FRAME_FROM_CHILD);
        let call = FromChild::HostCall(HostCall {
            id: 1,
            op: HostOp::KvSet {
                key: "k".into(),
                value_json: big.clone(),
                ttl_seconds: None,
            },
        });
        assert!(matches!(
            encode(&call),
            Err(FrameError::TooLarge { max, .. }) if max == MAX_FRAME_FROM_CHILD
        ));
        let reply = ToChild::HostReply(HostReply {
            id: 1,
            result: Ok(HostValue::Kv(Some(big))),
        });
        let buf = encode(&reply).unwrap();
        // Read back as a child frame, the same body is refused before it is read.
        let r: Result<FromChild, _> = read_frame(&mut &buf[..], usize::MAX);
        assert!(matches!(r, Err(FrameError::TooLarge { max, .. }) if max == MAX_FRAME_FROM_CHILD));
    }

    #[test]
    fn end_of_stream_is_closed() {
        let r: Result<FromChild, _> = read_frame(&mut &[][..], MAX_FRAME_FROM_CHILD);
        assert!(matches!(r, Err(FrameError::Closed)));
    }
}
