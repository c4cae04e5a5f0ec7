//! Module resolution for the bundle.
//!
//! A guest may import only other files of its own bundle, by relative specifier (`./x.js`,
//! `../lib/y.js`). Everything else — bare names such as `std`, `os` or `fs` (QuickJS's libc
//! modules are not even compiled in, but the refusal must not depend on that), absolute paths,
//! URLs, and relative paths that climb out of the bundle — is refused with an error naming the
//! specifier. Sources are looked up in memory only: the child never opens a file for a guest.

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{Ctx, Exception, Module, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The bundle's files by normalised path, shared by the resolver and the loader. Empty until
/// the engine loads a bundle.
pub type Files = Rc<RefCell<BTreeMap<String, Vec<u8>>>>;

/// Why an import is refused; the `Display` is the message of the exception the guest sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error(
        "cannot import '{0}': only relative imports of files in the bundle \
         ('./x.js', '../lib/y.js') are allowed"
    )]
    NotRelative(String),
    #[error("cannot import '{0}': it points outside the bundle")]
    OutsideBundle(String),
    #[error("cannot import '{name}': no file '{path}' in the bundle")]
    NoSuchFile { name: String, path: String },
}

/// Resolves `name` imported from the module `base` to a bundle path, or explains why not.
pub fn resolve_path(
    files: &BTreeMap<String, Vec<u8>>,
    base: &str,
    name: &str,
) -> std::result::Result<String, ImportError> {
    if !(name.starts_with("./") || name.starts_with("../")) {
        return Err(ImportError::NotRelative(name.to_string()));
    }
    // Directory of the importing module, as path segments.
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in name.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ImportError::OutsideBundle(name.to_string()));
                }
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    if files.contains_key(&path) {
        Ok(path)
    } else {
        Err(ImportError::NoSuchFile {
            name: name.to_string(),
            path,
        })
    }
}

/// The resolver half: maps specifiers to bundle paths.
pub struct BundleResolver {
    pub files: Files,
}

impl Resolver for BundleResolver {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<String> {
        let files = self.files.borrow();
        resolve_path(&files, base, name).map_err(|e| Exception::throw_message(ctx, &e.to_string()))
    }
}

/// The loader half: compiles a resolved bundle file as a module — or, during a load that
/// came with the bundle's compiled modules, reads its bytecode ([`super::bytecode`]).
pub struct BundleLoader {
    pub files: Files,
    pub compiled: super::bytecode::Compiled,
}

impl Loader for BundleLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<Module<'js>> {
        // Copy the source out so no borrow is held while QuickJS compiles (which may call
        // back into the resolver for nested imports).
        if let Some(code) = self.compiled.take_cached(name) {
            return super::bytecode::read(ctx, name, &code);
        }
        let source = self.files.borrow().get(name).cloned();
        match source {
            Some(src) => {
                let len = src.len();
                let module = Module::declare(ctx.clone(), name, src)?;
                // Written now, before any module is evaluated (see `CompiledState::record`).
                self.compiled.record(ctx, name, &module, len);
                Ok(module)
            }
            None => Err(Exception::throw_message(
                ctx,
                &format!("cannot import '{name}': no such file in the bundle"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, Vec<u8>> {
        ["function.js", "lib/util.js", "lib/deep/x.js"]
            .iter()
            .map(|p| (p.to_string(), Vec::new()))
            .collect()
    }

    #[test]
    fn relative_paths_resolve_inside_the_bundle() {
        let f = files();
        assert_eq!(
            resolve_path(&f, "function.js", "./lib/util.js").unwrap(),
            "lib/util.js"
        );
        assert_eq!(
            resolve_path(&f, "lib/deep/x.js", "../util.js").unwrap(),
            "lib/util.js"
        );
        assert_eq!(
            resolve_path(&f, "lib/util.js", "./deep/./x.js").unwrap(),
            "lib/deep/x.js"
        );
        assert_eq!(
            resolve_path(&f, "lib/util.js", "../function.js").unwrap(),
            "function.js"
        );
    }

    #[test]
    fn everything_else_is_refused_naming_the_specifier() {
        let f = files();
        for spec in [
            "std",
            "os",
            "fs",
            "/etc/passwd",
            "file:///etc/passwd",
            "https://x.test/a.js",
            "../function.js",
            "./lib/../../function.js",
            "./missing.js",
        ] {
            let err = resolve_path(&f, "function.js", spec)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("'{spec}'")), "{spec}: {err}");
        }
    }
}
