//! The memory controller: the hard memory limit, swap 0, OOM attribution and peak use.
//!
//! | what              | v2                         | v1                                   |
//! |-------------------|----------------------------|--------------------------------------|
//! | limit             | `memory.max`               | `memory.limit_in_bytes`              |
//! | swap 0            | `memory.swap.max = 0`      | `memory.memsw.limit_in_bytes = limit`|
//! | kill the group    | `memory.oom.group = 1`     | — (the OOM killer picks one process) |
//! | OOM kills         | `memory.events` `oom_kill` | `memory.oom_control` `oom_kill`      |
//! | peak              | `memory.peak` (5.19+)      | `memory.max_usage_in_bytes`          |
//!
//! **Why swap 0**: with swap available, an allocation over the limit is paged out instead of
//! killed, so a hostile child thrashes the host's disk and its run ends by deadline, not by an
//! attributable `MemoryLimit`. **When the swap file does not exist** (v2 `memory.swap.max`
//! without `CONFIG_MEMCG_SWAP` or with swap accounting off; v1 `memory.memsw.*` likewise) swap
//! cannot be limited per cgroup: on v1 we then set `memory.swappiness = 0`, which stops reclaim
//! from swapping the cgroup's anonymous memory; on v2 there is no per-cgroup equivalent and the
//! limit only bounds RAM — harmless on hosts without swap (like the development machines),
//! a documented gap on hosts with swap and no swap accounting.
//!
//! **Why `memory.oom.group`**: without it the OOM killer kills the largest process and leaves
//! the rest of the child's processes running against a full cgroup; with it the whole cgroup
//! dies at once, which is what the supervisor reports anyway. v1 has no equivalent; teardown's
//! kill of every member covers the rest there.

use super::files::{flat_keyed, read, read_u64, write, write_if_exists};
use super::CgroupError;
use std::path::Path;

pub(crate) fn apply_v2(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    if let Some(b) = bytes {
        write(&dir.join("memory.max"), &b.to_string())?;
    }
    write_if_exists(&dir.join("memory.swap.max"), "0")?;
    write_if_exists(&dir.join("memory.oom.group"), "1")?;
    Ok(())
}

/// `memory.memsw.limit_in_bytes` limits memory+swap and must never be below
/// `memory.limit_in_bytes`, so the order of the two writes depends on the direction: lowering
/// writes the memory limit first, raising writes memsw first.
pub(crate) fn apply_v1(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let Some(b) = bytes else { return Ok(()) };
    let limit = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let raising = read_u64(&limit).is_some_and(|cur| b > cur);
    if raising && write_if_exists(&memsw, &b.to_string())? {
        write(&limit, &b.to_string())?;
        return Ok(());
    }
    write(&limit, &b.to_string())?;
    if !write_if_exists(&memsw, &b.to_string())? {
        write_if_exists(&dir.join("memory.swappiness"), "0")?;
    }
    Ok(())
}

fn counter(path: &Path, key: &str) -> Result<u64, CgroupError> {
    let text = read(path)?;
    flat_keyed(&text, key).ok_or_else(|| CgroupError::Invalid {
        path: path.to_path_buf(),
        msg: format!("no {key:?} counter (kernel too old?)"),
    })
}

pub(crate) fn oom_kills_v2(dir: &Path) -> Result<u64, CgroupError> {
    counter(&dir.join("memory.events"), "oom_kill")
}

/// The `oom_kill` line of `memory.oom_control` exists since kernel 4.13.
pub(crate) fn oom_kills_v1(dir: &Path) -> Result<u64, CgroupError> {
    counter(&dir.join("memory.oom_control"), "oom_kill")
}

pub(crate) fn peak_v2(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.peak"))
}

pub(crate) fn peak_v1(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.max_usage_in_bytes"))
}

pub(crate) fn current_v2(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.current"))
}

pub(crate) fn current_v1(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.usage_in_bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            fs::write(d.path().join(f), "max\n").unwrap();
        }
        d
    }

    fn get(d: &tempfile::TempDir, f: &str) -> Option<String> {
        fs::read_to_string(d.path().join(f))
            .ok()
            .map(|s| s.trim().to_string())
    }

    #[test]
    fn v2_without_swap_accounting_still_limits_memory() {
        let d = dir_with(&["memory.max"]);
        apply_v2(d.path(), Some(1 << 20)).unwrap();
        assert_eq!(get(&d, "memory.max").as_deref(), Some("1048576"));
        assert_eq!(get(&d, "memory.swap.max"), None, "never created");
        assert_eq!(get(&d, "memory.oom.group"), None);
    }

    #[test]
    fn v1_memsw_follows_the_limit_else_swappiness_zero() {
        let d = dir_with(&[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.swappiness",
        ]);
        apply_v1(d.path(), Some(4096)).unwrap();
        assert_eq!(get(&d, "memory.limit_in_bytes").as_deref(), Some("4096"));
        assert_eq!(
            get(&d, "memory.memsw.limit_in_bytes").as_deref(),
            Some("4096")
        );
        assert_eq!(get(&d, "memory.swappiness").as_deref(), Some("max"));

        let d = dir_with(&["memory.limit_in_bytes", "memory.swappiness"]);
        apply_v1(d.path(), Some(4096)).unwrap();
        assert_eq!(get(&d, "memory.swappiness").as_deref(), Some("0"));
        assert_eq!(get(&d, "memory.memsw.limit_in_bytes"), None);
    }

    #[test]
    fn missing_required_file_names_it() {
        let d = dir_with(&[]);
        let e = apply_v1(d.path(), Some(1)).unwrap_err().to_string();
        assert!(e.contains("memory.limit_in_bytes"), "{e}");
        assert!(e.contains("os error 2"), "{e}");
    }
}
