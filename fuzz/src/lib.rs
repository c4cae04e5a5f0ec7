//! What the fuzz targets check, beyond "does not panic, hang or run out of memory".
//!
//! Each target in `fuzz_targets/` is one line calling a `check` function here, so the properties
//! live in one readable place and the targets stay trivially the same shape:
//!
//! - [`frame`]: both directions of the pipe protocol. A length prefix over the limit is refused
//!   before anything is sized by it; no single allocation while reading a frame exceeds the
//!   direction's limit; a frame that decodes re-encodes to a frame that decodes to the same value.
//! - [`bundle`]: a tar bundle that parses holds only normalised, unique, sorted names, its
//!   manifest and entry, within the size limits; packing its files again the way the control
//!   plane does gives the same bundle; parsing never allocates much more than the archive's size.
//! - [`manifest`]: a manifest that parses is within every documented range, and its JSON text
//!   ([`Manifest::to_json`]) parses back to the same manifest.
//! - [`request`]: an envelope that decodes carries a request within `cs.invoke.v1`, the same
//!   tenant on both levels, and the request serialises back to itself; a refusal is a short
//!   message (it is the dead-letter reason).
//! - [`config`]: the `serve` configuration reader, with environment overrides taken from the
//!   input too; a configuration that loads can be summarised and turned into its settings.
//!
//! [`Manifest::to_json`]: sandbox_proto::manifest::Manifest::to_json

pub mod alloc;
pub mod bundle;
pub mod config;
pub mod frame;
pub mod manifest;
pub mod request;
