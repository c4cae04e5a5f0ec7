//! Function bundles (contract §5): a tar archive holding at least `manifest.json` and the entry
//! module, addressed by the sha256 of all its bytes.
//!
//! A bundle is hostile input. [`parse_tar`] keeps regular files only and refuses absolute names,
//! `..`, links and devices, duplicate names, and anything over [`MAX_BUNDLE_BYTES`]; sizes are
//! checked from the headers before file contents are read.
//!
//! For local runs a directory or a lone `.js` file is first packed the way the Sous control plane
//! packs a bundle (USTAR, names sorted, mode 0644, mtime 0), so that every path through this
//! module ends in the same checks and a local run has the same sha256 the control plane would
//! compute for the same files.

use crate::manifest::Manifest;
use crate::protocol::BundleFile;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

/// contract §9: bundles are capped at 16 MiB.
pub const MAX_BUNDLE_BYTES: usize = 16 << 20;
/// A bundle with more files than this is refused (a tar of empty files costs headers only).
pub const MAX_FILES: usize = 4096;

#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    /// Every regular file of the bundle, `manifest.json` included, sorted by path.
    pub files: Vec<BundleFile>,
    /// Lower-case hex sha256 of the tar bytes.
    pub sha256: String,
    /// Size of the tar bytes.
    pub size: usize,
}

impl Bundle {
    pub fn entry(&self) -> &str {
        &self.manifest.entry
    }
    pub fn timeout_ms(&self) -> u64 {
        self.manifest.limits.timeout_ms
    }
    pub fn memory_mb(&self) -> u64 {
        self.manifest.limits.memory_mb
    }
    /// Bytes of file content the child will hold.
    pub fn content_bytes(&self) -> usize {
        self.files.iter().map(|f| f.contents.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// The path given on the command line does not exist or cannot be read (a usage error).
    NotFound(String),
    /// The archive itself is unacceptable (error type `BundleError`).
    Bundle(String),
    /// The manifest is missing or invalid (error type `ManifestError`).
    Manifest(String),
}

impl BundleError {
    /// The contract §6 error type this maps to.
    pub fn kind(&self) -> crate::messages::ErrorType {
        use crate::messages::ErrorType;
        match self {
            BundleError::NotFound(_) | BundleError::Bundle(_) => ErrorType::BundleError,
            BundleError::Manifest(_) => ErrorType::ManifestError,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            BundleError::NotFound(m) | BundleError::Bundle(m) | BundleError::Manifest(m) => m,
        }
    }
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for BundleError {}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses and validates a tar bundle.
pub fn parse_tar(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let bad = |m: String| BundleError::Bundle(m);
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(bad(format!(
            "bundle is {} bytes; the limit is {MAX_BUNDLE_BYTES} bytes (16 MiB)",
            bytes.len()
        )));
    }
    let mut archive = tar::Archive::new(bytes);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total: u64 = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt tar archive: {e}")))?;
        let raw_path = entry
            .path()
            .map_err(|e| bad(format!("tar entry with an unreadable name: {e}")))?
            .into_owned();
        let shown = raw_path.display().to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(bad(format!(
                "\"{shown}\" is a link; bundles may hold regular files only"
            )));
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(bad(format!(
                "\"{shown}\" is not a regular file (tar type {:?}); bundles may hold regular files only",
                kind
            )));
        }
        let name = normalise(&raw_path).map_err(|why| bad(format!("\"{shown}\": {why}")))?;
        let size = entry
            .header()
            .size()
            .map_err(|e| bad(format!("\"{shown}\": bad size field: {e}")))?;
        total = total.saturating_add(size);
        if total > MAX_BUNDLE_BYTES as u64 {
            return Err(bad(format!(
                "file contents exceed the bundle limit of {MAX_BUNDLE_BYTES} bytes"
            )));
        }
        if files.len() >= MAX_FILES {
            return Err(bad(format!("more than {MAX_FILES} files")));
        }
        // The header's size is only a claim: no file holds more than the archive itself.
        let mut contents = Vec::with_capacity(size.min(bytes.len() as u64) as usize);
        entry
            .read_to_end(&mut contents)
            .map_err(|e| bad(format!("\"{shown}\": cannot read contents: {e}")))?;
        if files.contains_key(&name) {
            return Err(bad(format!("\"{name}\" appears twice in the archive")));
        }
        files.insert(name, contents);
    }

    let manifest_bytes = files.get("manifest.json").ok_or_else(|| {
        BundleError::Manifest("manifest.json: missing from the bundle".to_string())
    })?;
    let manifest = Manifest::parse(manifest_bytes).map_err(|e| BundleError::Manifest(e.into()))?;
    match files.get(&manifest.entry) {
        None => {
            return Err(BundleError::Manifest(format!(
                "entry: \"{}\" is not a file of the bundle",
                manifest.entry
            )))
        }
        Some(src) if std::str::from_utf8(src).is_err() => {
            return Err(bad(format!("\"{}\" is not valid UTF-8", manifest.entry)))
        }
        Some(_) => {}
    }
    Ok(Bundle {
        manifest,
        files: files
            .into_iter()
            .map(|(path, contents)| BundleFile { path, contents })
            .collect(),
        sha256: sha256_hex(bytes),
        size: bytes.len(),
    })
}

/// A relative, `/`-separated path with no `.`/`..`/root components.
fn normalise(path: &Path) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                let s = p.to_str().ok_or("name is not valid UTF-8")?;
                parts.push(s);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("names may not contain \"..\""),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute names are not allowed")
            }
        }
    }
    if parts.is_empty() {
        return Err("empty name");
    }
    Ok(parts.join("/"))
}

/// Packs files as the control plane does: USTAR, names sorted, mode 0644, mtime 0.
pub fn pack(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, BundleError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, contents) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(contents.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, contents.as_slice())
            .map_err(|e| BundleError::Bundle(format!("cannot pack \"{name}\": {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| BundleError::Bundle(format!("cannot finish the archive: {e}")))
}

/// Loads a bundle from a path given by a user: a directory holding `manifest.json` and the
/// entry module, a `.tar` file, or a lone `.js` file (which gets
/// [`Manifest::default_for_script`]).
pub fn load_path(path: &Path) -> Result<Bundle, BundleError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| BundleError::NotFound(format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        let mut files = BTreeMap::new();
        let mut total = 0usize;
        read_dir_into(path, path, &mut files, &mut total)?;
        parse_tar(&pack(&files)?)
    } else if path.extension().is_some_and(|e| e == "js" || e == "mjs") {
        let src = read_capped(path)?;
        let mut files = BTreeMap::new();
        files.insert(
            "manifest.json".to_string(),
            Manifest::default_for_script().to_json().into_bytes(),
        );
        files.insert("function.js".to_string(), src);
        parse_tar(&pack(&files)?)
    } else {
        parse_tar(&read_capped(path)?)
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, BundleError> {
    let f = std::fs::File::open(path)
        .map_err(|e| BundleError::NotFound(format!("{}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| BundleError::Bundle(format!("{}: {e}", path.display())))?;
    if buf.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::Bundle(format!(
            "{} is larger than the bundle limit of {MAX_BUNDLE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

fn read_dir_into(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut usize,
) -> Result<(), BundleError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BundleError::NotFound(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| BundleError::Bundle(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // .git, editor files: never part of a bundle
        }
        let kind = entry
            .file_type()
            .map_err(|e| BundleError::Bundle(format!("{}: {e}", path.display())))?;
        if kind.is_dir() {
            read_dir_into(root, &path, files, total)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| normalise(p).ok())
                .ok_or_else(|| {
                    BundleError::Bundle(format!("{}: unusable file name", path.display()))
                })?;
            let contents = read_capped(&path)?;
            *total += contents.len();
            if *total > MAX_BUNDLE_BYTES {
                return Err(BundleError::Bundle(format!(
                    "{}: files add up to more than the bundle limit of {MAX_BUNDLE_BYTES} bytes",
                    root.display()
                )));
            }
            files.insert(rel, contents);
        } else {
            return Err(BundleError::Bundle(format!(
                "{}: not a regular file (links are not followed into a bundle)",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Vec<u8> {
        br#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js"}"#.to_vec()
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            // set_path refuses "..": write the name bytes directly, as a hostile packer would.
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn control_plane_bundle_parses_and_hashes() {
        let mut files = BTreeMap::new();
        files.insert(
            "function.js".to_string(),
            b"export default () => 1".to_vec(),
        );
        files.insert("manifest.json".to_string(), manifest());
        let tar = pack(&files).unwrap();
        let b = parse_tar(&tar).unwrap();
        assert_eq!(b.sha256, sha256_hex(&tar));
        assert_eq!(b.files.len(), 2);
        assert_eq!(b.entry(), "function.js");
    }

    #[test]
    fn hostile_archives_are_refused() {
        let m = manifest();
        let f: &[u8] = b"export default () => 1";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                raw_tar(&[
                    ("manifest.json", tar::EntryType::Regular, &m),
                    ("../evil.js", tar::EntryType::Regular, f),
                ]),
                "..",
            ),
            (
                raw_tar(&[
                    ("manifest.json", tar::EntryType::Regular, &m),
                    ("/etc/passwd", tar::EntryType::Regular, f),
                ]),
                "absolute",
            ),
            (
                raw_tar(&[
                    ("manifest.json", tar::EntryType::Regular, &m),
                    ("function.js", tar::EntryType::Symlink, b""),
                ]),
                "link",
            ),
            (
                raw_tar(&[
                    ("manifest.json", tar::EntryType::Regular, &m),
                    ("function.js", tar::EntryType::Regular, f),
                    ("./function.js", tar::EntryType::Regular, f),
                ]),
                "twice",
            ),
            (
                raw_tar(&[
                    ("manifest.json", tar::EntryType::Regular, &m),
                    ("dev", tar::EntryType::Char, b""),
                ]),
                "regular",
            ),
        ];
        for (bytes, want) in cases {
            match parse_tar(&bytes) {
                Err(BundleError::Bundle(msg)) => assert!(msg.contains(want), "{msg}"),
                other => panic!("expected a BundleError containing {want:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_and_garbage_archives_are_refused() {
        let big = vec![0u8; MAX_BUNDLE_BYTES + 1];
        assert!(matches!(parse_tar(&big), Err(BundleError::Bundle(_))));
        let garbage = vec![0x41u8; 1024];
        assert!(matches!(parse_tar(&garbage), Err(BundleError::Bundle(_))));
    }

    #[test]
    fn missing_manifest_or_entry_is_a_manifest_error() {
        let f: &[u8] = b"export default () => 1";
        let no_manifest = raw_tar(&[("function.js", tar::EntryType::Regular, f)]);
        assert!(matches!(
            parse_tar(&no_manifest),
            Err(BundleError::Manifest(m)) if m.starts_with("manifest.json")
        ));
        let m = manifest();
        let no_entry = raw_tar(&[("manifest.json", tar::EntryType::Regular, &m)]);
        assert!(matches!(
            parse_tar(&no_entry),
            Err(BundleError::Manifest(m)) if m.starts_with("entry:")
        ));
    }
}
