//! The bundle parser (`sandbox_proto::bundle::parse_tar`), fed whole archives.

use crate::alloc;
use sandbox_proto::bundle::{self, BundleError, MAX_BUNDLE_BYTES, MAX_FILES};
use sandbox_proto::manifest::Manifest;
use std::collections::BTreeMap;

/// Room beyond the archive's size: the parser's own bookkeeping (names, the manifest's JSON
/// tree), and the tar crate's read of a PAX or GNU long-name header, which reserves up to
/// 128 KiB whatever the header claims (`tar::Entry::read_all`; a constant, so not sized by
/// the input).
const SLACK: usize = (128 + 64) << 10;

pub fn check(data: &[u8]) {
    assert!(
        alloc::installed(),
        "the target must install alloc::Counting"
    );
    alloc::reset();
    let parsed = bundle::parse_tar(data);
    let largest = alloc::largest();
    // The archive holds everything the parser keeps; a size field it was told must not make it
    // reserve more than the archive could hold.
    assert!(
        largest <= data.len() + SLACK,
        "parsing a {}-byte archive allocated {largest} bytes at once",
        data.len()
    );
    let b = match parsed {
        Ok(b) => b,
        Err(e) => {
            assert!(
                matches!(e, BundleError::Bundle(_) | BundleError::Manifest(_)),
                "{e:?}"
            );
            assert!(!e.message().is_empty());
            return;
        }
    };

    assert_eq!(b.sha256, bundle::sha256_hex(data));
    assert_eq!(b.size, data.len());
    assert!(b.files.len() <= MAX_FILES);
    assert!(b.content_bytes() <= MAX_BUNDLE_BYTES);
    for pair in b.files.windows(2) {
        assert!(
            pair[0].path < pair[1].path,
            "names not sorted and unique: {:?} then {:?}",
            pair[0].path,
            pair[1].path
        );
    }
    for f in &b.files {
        let p = &f.path;
        assert!(!p.is_empty() && !p.starts_with('/'), "{p:?}");
        assert!(
            p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "not normalised: {p:?}"
        );
        assert!(!p.contains('\0'), "NUL in a name: {p:?}");
    }
    let file = |name: &str| b.files.iter().find(|f| f.path == name);
    let manifest = file("manifest.json").expect("a parsed bundle has manifest.json");
    assert_eq!(
        Manifest::parse(&manifest.contents).as_ref(),
        Ok(&b.manifest),
        "the bundle's manifest is its manifest.json"
    );
    let entry = file(b.entry()).expect("a parsed bundle has its entry module");
    assert!(std::str::from_utf8(&entry.contents).is_ok());

    // Packed again the way the control plane packs a bundle, the files parse to the same bundle.
    let files: BTreeMap<String, Vec<u8>> = b
        .files
        .iter()
        .map(|f| (f.path.clone(), f.contents.clone()))
        .collect();
    let repacked = bundle::pack(&files).expect("the files of a parsed bundle pack");
    let again = bundle::parse_tar(&repacked).expect("a repacked bundle parses");
    assert_eq!(again.files, b.files);
    assert_eq!(again.manifest, b.manifest);
}
