//! Compiled modules: the QuickJS bytecode of a bundle, handed back to the supervisor so the
//! next child bound to the same tenant and bundle reads it instead of parsing the source.
//!
//! Why: parsing is most of a cold start for a large bundle (a 1.4 MB esbuild bundle of mathjs
//! takes ~80–120 ms to parse here; reading its bytecode a fraction of that). Why it is safe
//! enough: QuickJS does not verify bytecode — hostile bytecode can corrupt the engine's memory.
//! The supervisor therefore hands a blob only to a child bound to the same tenant and the same
//! bundle sha256 as the child that produced it, and that child was already running exactly
//! that tenant's code: whatever a forged blob could do, the code that forged it could do
//! already, in an identically confined process. Bytecode never crosses a tenant or a bundle.
//!
//! The envelope guards against what is *not* an attack: a blob made by another child build
//! (an upgrade while the supervisor kept its cache) or damaged bytes. It is
//!
//! ```text
//! magic "CSQJSBC\0" | format u16 | identity len u16 | identity (UTF-8) | sha256(payload) [32]
//! payload: count u32 | count × (path len u32 | path | code len u32 | code)      (little endian)
//! ```
//!
//! where the identity names the child version, the QuickJS-NG version, the architecture and the
//! protocol ([`build_identity`]). A blob whose identity is not this build's, whose checksum
//! does not hold, or that QuickJS refuses to read, is *rejected*: the child compiles the
//! source, says why, and returns fresh bytecode that replaces the entry.

use super::alloc::MemoryState;
use rquickjs::{Ctx, Module, WriteOptions};
use sandbox_proto::protocol::MAX_BYTECODE_BYTES;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;

const MAGIC: &[u8; 8] = b"CSQJSBC\0";
/// Bumped when the envelope changes.
const FORMAT: u16 = 1;
const DIGEST_LEN: usize = 32;

/// What identifies the bytecode this child writes and reads: the same string on both sides
/// means the same QuickJS and the same child (version, architecture, byte order, protocol).
pub fn build_identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        // SAFETY: JS_GetVersion returns a pointer to a static NUL-terminated string (the
        // QuickJS-NG version, compiled in); it takes no argument and touches no runtime.
        let qjs = unsafe { std::ffi::CStr::from_ptr(rquickjs::qjs::JS_GetVersion()) };
        let endian = if cfg!(target_endian = "little") {
            "le"
        } else {
            "be"
        };
        format!(
            "sandbox-child {} quickjs-ng {} {}-{endian}-{} protocol {}",
            env!("CARGO_PKG_VERSION"),
            qjs.to_string_lossy(),
            std::env::consts::ARCH,
            usize::BITS,
            sandbox_proto::protocol::PROTOCOL_VERSION,
        )
    })
}

/// The compiled modules of one bundle, by bundle path.
pub type Modules = BTreeMap<String, Vec<u8>>;

/// Wraps `modules` in the envelope, naming `identity` (this build's: [`build_identity`]).
pub fn encode_with_identity(identity: &str, modules: &Modules) -> Vec<u8> {
    let mut payload = Vec::new();
    put_u32(&mut payload, modules.len());
    for (path, code) in modules {
        put_u32(&mut payload, path.len());
        payload.extend_from_slice(path.as_bytes());
        put_u32(&mut payload, code.len());
        payload.extend_from_slice(code);
    }
    let id = identity.as_bytes();
    let id_len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(payload.len() + 64 + id.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(&id[..usize::from(id_len)]);
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    out
}

/// [`encode_with_identity`] with this build's identity.
pub fn encode(modules: &Modules) -> Vec<u8> {
    encode_with_identity(build_identity(), modules)
}

/// Why a compiled-module blob cannot be used by this child (it then compiles the source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("not a compiled-module blob (bad magic)")]
    BadMagic,
    #[error("envelope format {found}, this child reads {FORMAT}")]
    Format { found: u16 },
    #[error(
        "made by another child build ('{theirs}'; this is '{}')",
        build_identity()
    )]
    OtherBuild { theirs: String },
    #[error("truncated header")]
    TruncatedHeader,
    #[error("checksum mismatch (damaged bytes)")]
    Checksum,
    #[error("truncated payload")]
    TruncatedPayload,
    #[error("a module path is not UTF-8")]
    PathNotUtf8,
    #[error("trailing bytes after the modules")]
    Trailing,
}

/// Opens the envelope: the modules, or why they cannot be used here.
pub fn decode(blob: &[u8]) -> Result<Modules, BlobError> {
    use BlobError::{TruncatedHeader as Header, TruncatedPayload as Payload};
    let mut r = Reader(blob);
    if r.take(MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(BlobError::BadMagic);
    }
    let format = r.u16().ok_or(Header)?;
    if format != FORMAT {
        return Err(BlobError::Format { found: format });
    }
    let id_len = usize::from(r.u16().ok_or(Header)?);
    let id = r.take(id_len).ok_or(Header)?;
    if id != build_identity().as_bytes() {
        return Err(BlobError::OtherBuild {
            theirs: String::from_utf8_lossy(id).into_owned(),
        });
    }
    let digest = r.take(DIGEST_LEN).ok_or(Header)?;
    let payload = r.0;
    if Sha256::digest(payload).as_slice() != digest {
        return Err(BlobError::Checksum);
    }
    let count = r.u32().ok_or(Payload)?;
    let mut modules = Modules::new();
    for _ in 0..count {
        let len = r.u32().ok_or(Payload)?;
        let path = r.take(len).ok_or(Payload)?;
        let path = std::str::from_utf8(path).map_err(|_| BlobError::PathNotUtf8)?;
        let len = r.u32().ok_or(Payload)?;
        let code = r.take(len).ok_or(Payload)?;
        modules.insert(path.to_string(), code.to_vec());
    }
    if !r.0.is_empty() {
        return Err(BlobError::Trailing);
    }
    Ok(modules)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
}

/// Per-load state shared by the engine and the module loader: the modules to read from
/// bytecode, and the bytecode of those compiled from source (when the supervisor wants it).
pub struct CompiledState {
    /// path → bytecode, read by the loader instead of the source while a load runs.
    cached: RefCell<Modules>,
    /// Record the bytecode of every module compiled from source.
    record: Cell<bool>,
    written: RefCell<Modules>,
    written_bytes: Cell<usize>,
    memory: Rc<MemoryState>,
}

pub type Compiled = Rc<CompiledState>;

/// Room the counted heap must have left before a module's bytecode is written (the writer's
/// buffer is a QuickJS allocation): twice the source plus this.
const WRITE_SLACK_BYTES: usize = 1 << 20;

impl CompiledState {
    pub fn new(memory: Rc<MemoryState>) -> Compiled {
        Rc::new(CompiledState {
            cached: RefCell::new(Modules::new()),
            record: Cell::new(false),
            written: RefCell::new(Modules::new()),
            written_bytes: Cell::new(0),
            memory,
        })
    }

    /// Starts a load: `cached` modules are read from bytecode; with `record`, modules compiled
    /// from source are written.
    pub fn begin(&self, cached: Modules, record: bool) {
        *self.cached.borrow_mut() = cached;
        self.record.set(record);
        self.written.borrow_mut().clear();
        self.written_bytes.set(0);
    }

    /// Ends a load: the recorded modules (if recording lasted), and nothing kept.
    pub fn finish(&self) -> Option<Modules> {
        self.cached.borrow_mut().clear();
        let recorded = std::mem::take(&mut *self.written.borrow_mut());
        let keep = self.record.replace(false);
        keep.then_some(recorded)
    }

    /// The bytecode of `path`, if this load reads it from bytecode.
    pub fn take_cached(&self, path: &str) -> Option<Vec<u8>> {
        self.cached.borrow_mut().remove(path)
    }

    /// Writes the bytecode of `module` (just declared from `source_len` bytes of source, not
    /// yet evaluated: an evaluated module's function is no longer bytecode) when recording.
    /// Stops recording, rather than fail the load, when the heap has no room for the writer or
    /// the total would not fit [`MAX_BYTECODE_BYTES`]: the bundle is then not cached.
    pub fn record(&self, ctx: &Ctx<'_>, path: &str, module: &Module<'_>, source_len: usize) {
        if !self.record.get() {
            return;
        }
        let limit = self.memory.limit();
        let needed = source_len
            .saturating_mul(2)
            .saturating_add(WRITE_SLACK_BYTES);
        if limit.saturating_sub(self.memory.live()) < needed {
            self.record.set(false);
            return;
        }
        // The writer's buffer is freed before `write` returns; lifting the counted limit
        // meanwhile keeps the sticky "limit reached" flag for the guest's allocations (the
        // headroom check above bounds what this can take).
        self.memory.set_limit(u64::MAX);
        let written = module.write(WriteOptions::default());
        self.memory.set_limit(limit as u64);
        match written {
            Ok(code) => {
                let total = self
                    .written_bytes
                    .get()
                    .saturating_add(code.len())
                    .saturating_add(path.len() + 8);
                if total > MAX_BYTECODE_BYTES - 1024 {
                    self.record.set(false);
                    self.written.borrow_mut().clear();
                    return;
                }
                self.written_bytes.set(total);
                self.written.borrow_mut().insert(path.to_string(), code);
            }
            Err(_) => {
                // Whatever QuickJS raised is not the guest's: cleared, and no caching.
                let _ = ctx.catch();
                self.record.set(false);
            }
        }
    }
}

/// Reads one module from bytecode and checks it is the module `path` names.
///
/// Only bytecode from [`decode`] reaches here, i.e. bytecode of this exact build, intact, that
/// the supervisor handed this child because a child bound to the same tenant and bundle wrote
/// it (see the module documentation for why that is acceptable).
pub fn read<'js>(ctx: &Ctx<'js>, path: &str, code: &[u8]) -> rquickjs::Result<Module<'js>> {
    // SAFETY: QuickJS does not verify bytecode, so this is only sound for bytecode QuickJS
    // itself wrote. These bytes were written by `Module::write` in a child of this same build
    // (the envelope's identity and checksum held in `decode`), bound to the same tenant and
    // bundle as this one; the supervisor hands them to no other binding. A child able to forge
    // them was already running this tenant's code in a sandbox like this one, so a forgery
    // gains nothing that code did not have. The reader is bounds-checked against `code`, and
    // it copies what it keeps (QuickJS-NG's ROM-data mode is gone), so `code` may be dropped
    // after the call.
    let module = unsafe { Module::load(ctx.clone(), code)? };
    let name: String = module.name()?;
    if name != path {
        return Err(rquickjs::Exception::throw_internal(
            ctx,
            &format!("bytecode for '{path}' holds the module '{name}'"),
        ));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules() -> Modules {
        let mut m = Modules::new();
        m.insert("function.js".into(), vec![1, 2, 3]);
        m.insert("lib/a.js".into(), vec![4; 100]);
        m
    }

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode(&modules())).unwrap(), modules());
    }

    #[test]
    fn another_build_is_rejected_naming_both() {
        let e = decode(&encode_with_identity(
            "sandbox-child 0.0.0 elsewhere",
            &modules(),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("another child build"), "{e}");
        assert!(
            e.contains("0.0.0 elsewhere") && e.contains(build_identity()),
            "{e}"
        );
    }

    #[test]
    fn damage_anywhere_is_rejected() {
        let blob = encode(&modules());
        for i in [0, 9, 12, blob.len() - 50, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flipped byte {i} was accepted");
        }
        for n in [0, 5, blob.len() - 1] {
            assert!(decode(&blob[..n]).is_err(), "{n} bytes were accepted");
        }
    }

    #[test]
    fn identity_names_the_quickjs_version() {
        let id = build_identity();
        assert!(id.starts_with("sandbox-child "), "{id}");
        assert!(id.contains("quickjs-ng 0."), "{id}");
    }
}
