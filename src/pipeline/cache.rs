//! The bundle cache (contract §1 step 4): parsed bundles keyed by sha256, least recently used
//! first out, bounded by count (`cache.bundles_max`) and by bytes (`cache.bytes_max`).
//!
//! It holds what is safe to share between processes: the verified bytes' parse — files and
//! manifest. Compiled code lives only in warm children: QuickJS does not verify bytecode, so
//! bytecode never crosses a process boundary.

use lru::LruCache;
use sandbox_proto::bundle::Bundle;
use std::sync::{Arc, Mutex};

pub struct BundleCache {
    inner: Mutex<Inner>,
    max_items: usize,
    max_bytes: usize,
}

struct Inner {
    lru: LruCache<String, Arc<Bundle>>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

/// What the cache holds, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub items: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
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

    /// The cost of a bundle: its tar size (what the store sent) — the parsed files are about
    /// the same size.
    fn cost(b: &Bundle) -> usize {
        b.size.max(b.content_bytes())
    }

    /// The bundle with this sha256, counting a hit or a miss.
    pub fn get(&self, sha256: &str) -> Option<Arc<Bundle>> {
        let mut g = self.lock();
        let found = g.lru.get(sha256).cloned();
        if found.is_some() {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        found
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            items: g.lru.len(),
            bytes: g.bytes,
            hits: g.hits,
            misses: g.misses,
        }
    }

    /// Inserts, then evicts least recently used bundles until both bounds hold. A bundle larger
    /// than `max_bytes` alone is not cached.
    pub fn insert(&self, bundle: Arc<Bundle>) {
        let cost = Self::cost(&bundle);
        if cost > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        if let Some(old) = g.lru.put(bundle.sha256.clone(), bundle) {
            g.bytes -= Self::cost(&old);
        }
        g.bytes += cost;
        while g.lru.len() > self.max_items || g.bytes > self.max_bytes {
            match g.lru.pop_lru() {
                Some((_, evicted)) => g.bytes -= Self::cost(&evicted),
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
}
