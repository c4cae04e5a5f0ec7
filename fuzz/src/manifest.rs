//! The manifest reader (`sandbox_proto::manifest::Manifest::parse`), fed whole `manifest.json`
//! texts.

use sandbox_proto::manifest::Manifest;

pub fn check(data: &[u8]) {
    let m = match Manifest::parse(data) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.message().is_empty());
            return;
        }
    };
    let entry = &m.entry;
    assert!(
        !entry.is_empty()
            && entry.len() <= 256
            && !entry.starts_with('/')
            && entry
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
        "entry {entry:?}"
    );
    assert!((1..=900_000).contains(&m.limits.timeout_ms));
    assert!((16..=4096).contains(&m.limits.memory_mb));
    assert!((1..=100).contains(&m.limits.max_concurrency));
    if let Some(kv) = &m.capabilities.kv {
        assert!(kv.prefixes.len() <= 64 && kv.ops.len() <= 3);
    }
    if let Some(c) = &m.capabilities.codeq {
        assert!(c.publish_topics.len() <= 64);
    }
    if let Some(h) = &m.capabilities.http {
        assert!(h.allow_hosts.len() <= 128);
        assert!(h.timeout_ms.is_none_or(|t| (1..=30_000).contains(&t)));
    }

    // The JSON text of a manifest (what `run` packs for a lone script) reads back as the same.
    let json = m.to_json();
    assert_eq!(
        Manifest::parse(json.as_bytes()).as_ref(),
        Ok(&m),
        "to_json gave {json}"
    );
}
