//! Where the pool keeps the compiled modules (QuickJS bytecode) children return, so the next
//! child bound to the same tenant and bundle loads them instead of parsing the source.
//!
//! The bytes are opaque here: the supervisor never reads them, it only stores and forwards.
//! They are keyed by [`CompiledKey`], a typed (tenant, bundle sha256) pair — never a joined
//! string — because QuickJS does not verify bytecode: a blob must reach no child but one
//! bound to the tenant and bundle whose child wrote it (a child able to forge it was already
//! running that tenant's code). The store itself is the pipeline's bundle cache
//! ([`crate::pipeline::cache::BundleCache`]), which bounds the bytes together with the
//! bundles; the port is declared here so the pool does not depend on the pipeline.

use std::sync::Arc;

/// Which compiled modules: one tenant's compile of one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompiledKey {
    pub tenant: String,
    pub sha256: String,
}

/// A store of compiled modules. Implementations bound what they hold.
pub trait CompiledModules: Send + Sync + 'static {
    /// The bytes last stored for `key`.
    fn get_compiled(&self, key: &CompiledKey) -> Option<Arc<[u8]>>;
    /// Stores (or replaces) `key`'s bytes; false when they were not kept (no room, or the
    /// bundle itself is not cached).
    fn put_compiled(&self, key: &CompiledKey, bytes: Vec<u8>) -> bool;
    /// Forgets `key`'s bytes (a child rejected them).
    fn remove_compiled(&self, key: &CompiledKey);
    /// Whether bytes for `key` would be kept at all (its bundle is cached): otherwise the
    /// child is not asked to write them.
    fn keeps(&self, key: &CompiledKey) -> bool;
}
