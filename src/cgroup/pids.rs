//! The pids controller: a small `pids.max` bounds fork bombs (it counts threads too, so leave
//! room for the engine's own threads), and `pids.events` `max` counts refused forks so the
//! supervisor can say "too many processes" rather than report a confusing child error.
//! The file names are the same in v1 and v2; v1 kernels before `pids.events` existed give `None`.

use super::files::{flat_keyed, read_opt, write};
use super::CgroupError;
use std::path::Path;

pub(crate) fn apply(dir: &Path, max: Option<u64>) -> Result<(), CgroupError> {
    if let Some(m) = max {
        write(&dir.join("pids.max"), &m.to_string())?;
    }
    Ok(())
}

pub(crate) fn max_hits(dir: &Path) -> Option<u64> {
    let text = read_opt(&dir.join("pids.events")).ok()??;
    flat_keyed(&text, "max")
}
