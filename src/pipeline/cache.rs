//! The bundle cache (contract §1 step 4): parsed bundles keyed by sha256, least recently used
//! first out, bounded by count (`cache.bundles_max`) and by bytes (`cache.bytes_max`).
//!
//! It holds the verified bytes' parse — files and manifest — which any tenant's activation of
//! that sha256 may share, and, in the same entry, the **compiled modules** (QuickJS bytecode,
//! opaque bytes) that children returned, one blob per tenant: keyed by the typed
//! [`CompiledKey`] (tenant, sha256), handed only to a child bound to that tenant and that
//! bundle ([`crate::pool::compiled`] says why: QuickJS does not verify bytecode). Two tenants
//! with identical bundle bytes each compile their own. The blobs count in the entry's cost,
//! so `cache.bytes_max` bounds bundles and bytecode together, and an evicted bundle takes its
//! bytecode with it.

use crate::pool::{CompiledKey, CompiledModules};
use lru::LruCache;
use sandbox_proto::bundle::Bundle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct BundleCache {
    inner: Mutex<Inner>,
    max_items: usize,
    max_bytes: usize,
}

struct Entry {
    bundle: Arc<Bundle>,
    /// Compiled modules by tenant (of this entry's sha256).
    compiled: HashMap<String, Arc<[u8]>>,
}

impl Entry {
    /// The cost of the entry: the bundle's tar size (what the store sent; the parsed files
    /// are about the same size) plus every tenant's compiled modules.
    fn cost(&self) -> usize {
        BundleCache::cost(&self.bundle) + self.compiled_bytes()
    }

    fn compiled_bytes(&self) -> usize {
        self.compiled.values().map(|b| b.len()).sum()
    }
}

struct Inner {
    lru: LruCache<String, Entry>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

/// What the cache holds, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub items: usize,
    /// Bundles and compiled modules together.
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
    /// Compiled-module blobs held, and their bytes (part of `bytes`).
    pub bytecode_items: usize,
    pub bytecode_bytes: usize,
}

impl BundleCache {
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        BundleCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                hits: 0,
                misses: 0,
            }),
            max_items: max_items.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cost of a bundle alone: its tar size (what the store sent) — the parsed files are
    /// about the same size.
    fn cost(b: &Bundle) -> usize {
        b.size.max(b.content_bytes())
    }

    /// The bundle with this sha256, counting a hit or a miss.
    pub fn get(&self, sha256: &str) -> Option<Arc<Bundle>> {
        let mut g = self.lock();
        let found = g.lru.get(sha256).map(|e| e.bundle.clone());
        if found.is_some() {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        found
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        let (bytecode_items, bytecode_bytes) = g.lru.iter().fold((0, 0), |(n, b), (_, e)| {
            (n + e.compiled.len(), b + e.compiled_bytes())
        });
        CacheStats {
            items: g.lru.len(),
            bytes: g.bytes,
            hits: g.hits,
            misses: g.misses,
            bytecode_items,
            bytecode_bytes,
        }
    }

    /// Inserts, then evicts least recently used bundles until both bounds hold. A bundle larger
    /// than `max_bytes` alone is not cached. A bundle inserted again starts with no compiled
    /// modules.
    pub fn insert(&self, bundle: Arc<Bundle>) {
        let cost = Self::cost(&bundle);
        if cost > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        let entry = Entry {
            bundle: bundle.clone(),
            compiled: HashMap::new(),
        };
        if let Some(old) = g.lru.put(bundle.sha256.clone(), entry) {
            g.bytes -= old.cost();
        }
        g.bytes += cost;
        self.evict(&mut g);
    }

    fn evict(&self, g: &mut Inner) {
        while g.lru.len() > self.max_items || g.bytes > self.max_bytes {
            match g.lru.pop_lru() {
                Some((_, evicted)) => g.bytes -= evicted.cost(),
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.lock().lru.contains(sha256)
    }
}

impl CompiledModules for BundleCache {
    fn get_compiled(&self, key: &CompiledKey) -> Option<Arc<[u8]>> {
        let mut g = self.lock();
        g.lru
            .get(&key.sha256)
            .and_then(|e| e.compiled.get(&key.tenant).cloned())
    }

    /// Kept only beside its bundle (an entry of this sha256), and only if the entry with it
    /// fits `max_bytes`; other entries are evicted, least recently used first, to make room.
    fn put_compiled(&self, key: &CompiledKey, bytes: Vec<u8>) -> bool {
        let mut g = self.lock();
        let Some(entry) = g.lru.get_mut(&key.sha256) else {
            return false;
        };
        let before = entry.cost();
        let old = entry.compiled.get(&key.tenant).map_or(0, |b| b.len());
        if before - old + bytes.len() > self.max_bytes {
            return false;
        }
        entry.compiled.insert(key.tenant.clone(), bytes.into());
        let after = entry.cost();
        g.bytes = g.bytes - before + after;
        // The entry just touched is the most recent: eviction takes others first.
        self.evict(&mut g);
        true
    }

    fn keeps(&self, key: &CompiledKey) -> bool {
        self.lock().lru.contains(&key.sha256)
    }

    fn remove_compiled(&self, key: &CompiledKey) {
        let mut g = self.lock();
        let Some(entry) = g.lru.peek_mut(&key.sha256) else {
            return;
        };
        if let Some(old) = entry.compiled.remove(&key.tenant) {
            g.bytes -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn bundle(tag: &str, pad: usize) -> Arc<Bundle> {
        let mut files = BTreeMap::new();
        files.insert(
            "function.js".to_string(),
            format!("export default () => '{tag}{}'", "x".repeat(pad)).into_bytes(),
        );
        files.insert(
            "manifest.json".to_string(),
            br#"{"schema":"cs.function.script.v1"}"#.to_vec(),
        );
        let tar = sandbox_proto::bundle::pack(&files).unwrap();
        Arc::new(sandbox_proto::bundle::parse_tar(&tar).unwrap())
    }

    #[test]
    fn evicts_by_count_least_recently_used_first() {
        let c = BundleCache::new(2, usize::MAX);
        let (a, b, d) = (bundle("a", 0), bundle("b", 0), bundle("d", 0));
        c.insert(a.clone());
        c.insert(b.clone());
        assert!(c.get(&a.sha256).is_some()); // a is now the most recent
        c.insert(d.clone());
        assert_eq!(c.len(), 2);
        assert!(c.contains(&a.sha256) && c.contains(&d.sha256));
        assert!(!c.contains(&b.sha256));
    }

    #[test]
    fn evicts_by_bytes() {
        let one = bundle("a", 10_000);
        let cost = BundleCache::cost(&one);
        let c = BundleCache::new(100, cost * 2 + cost / 2);
        c.insert(one.clone());
        c.insert(bundle("b", 10_000));
        assert_eq!(c.len(), 2);
        c.insert(bundle("c", 10_000));
        assert_eq!(c.len(), 2);
        assert!(!c.contains(&one.sha256));
        assert!(c.bytes() <= cost * 2 + cost / 2);
        // Too big to cache at all.
        let tiny = BundleCache::new(100, 10);
        tiny.insert(one);
        assert!(tiny.is_empty());
    }

    fn key(tenant: &str, b: &Bundle) -> CompiledKey {
        CompiledKey {
            tenant: tenant.into(),
            sha256: b.sha256.clone(),
        }
    }

    #[test]
    fn compiled_modules_are_per_tenant_and_per_bundle() {
        let c = BundleCache::new(10, usize::MAX);
        let (a, b) = (bundle("a", 0), bundle("b", 0));
        c.insert(a.clone());
        c.insert(b.clone());
        assert!(c.put_compiled(&key("t1", &a), vec![1; 10]));
        assert_eq!(
            c.get_compiled(&key("t1", &a)).as_deref(),
            Some(&[1u8; 10][..])
        );
        // The same bundle for another tenant, another bundle for the same tenant: nothing.
        assert!(c.get_compiled(&key("t2", &a)).is_none());
        assert!(c.get_compiled(&key("t1", &b)).is_none());
        // A tenant name that a joined "tenant:sha" key would confuse stays apart.
        assert!(c.put_compiled(&key("t1:x", &a), vec![2; 3]));
        assert_eq!(c.get_compiled(&key("t1", &a)).map(|b| b.len()), Some(10));
        c.remove_compiled(&key("t1", &a));
        assert!(c.get_compiled(&key("t1", &a)).is_none());
        assert_eq!(c.get_compiled(&key("t1:x", &a)).map(|b| b.len()), Some(3));
    }

    #[test]
    fn compiled_modules_count_in_the_bytes_bound() {
        let a = bundle("a", 1000);
        let cost = BundleCache::cost(&a);
        let c = BundleCache::new(10, cost * 3);
        c.insert(a.clone());
        assert!(c.put_compiled(&key("t1", &a), vec![0; cost]));
        assert_eq!(c.bytes(), cost * 2);
        let s = c.stats();
        assert_eq!((s.bytecode_items, s.bytecode_bytes), (1, cost));
        // Replacing counts the new size only.
        assert!(c.put_compiled(&key("t1", &a), vec![0; cost / 2]));
        assert_eq!(c.bytes(), cost + cost / 2);
        // More than the whole bound with its bundle: not kept, nothing else changes.
        assert!(!c.put_compiled(&key("t2", &a), vec![0; cost * 3]));
        assert_eq!(c.bytes(), cost + cost / 2);
        // Room is made by evicting other bundles, least recently used first.
        let b = bundle("b", 1000);
        c.insert(b.clone());
        assert!(c.put_compiled(&key("t2", &b), vec![0; cost]));
        assert!(c.bytes() <= cost * 3);
        assert!(!c.contains(&a.sha256) && c.contains(&b.sha256));
        // An evicted bundle took its compiled modules along; none is kept without a bundle.
        assert!(c.get_compiled(&key("t1", &a)).is_none());
        assert!(!c.put_compiled(&key("t1", &a), vec![0; 10]));
        assert_eq!(c.bytes(), c.stats().bytes);
    }

    #[test]
    fn a_bundle_inserted_again_has_no_compiled_modules() {
        let c = BundleCache::new(10, usize::MAX);
        let a = bundle("a", 0);
        c.insert(a.clone());
        assert!(c.put_compiled(&key("t1", &a), vec![1; 10]));
        c.insert(a.clone());
        assert!(c.get_compiled(&key("t1", &a)).is_none());
        assert_eq!(c.bytes(), BundleCache::cost(&a));
    }
}
