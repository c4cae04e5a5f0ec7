//! The cgroupfs file protocol shared by both backends: reading and writing interface files,
//! listing, killing and waiting for member processes, and removing directories.

use super::{CgroupError, CgroupFs, SweepReport};
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))
}

/// The contents, or `None` when the file does not exist (an interface file this kernel or
/// configuration does not have).
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

/// Writes `value` in one `write(2)`: cgroupfs parses each write separately and reports the
/// parse or apply error (EINVAL, EBUSY, ...) as the write's result. Never creates the file: on
/// cgroupfs a missing interface file means a missing feature, not something to create.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let op = || format!("write {value:?} to");
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| CgroupError::io(op(), path, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| CgroupError::io(op(), path, e))
}

/// Like [`write`], but `Ok(false)` when the file does not exist.
pub(crate) fn write_if_exists(path: &Path, value: &str) -> Result<bool, CgroupError> {
    if !path.exists() {
        return Ok(false);
    }
    write(path, value).map(|()| true)
}

/// Adds a pid to `cgroup.procs`. O_APPEND rather than O_TRUNC: the kernel treats both alike,
/// and a plain file (a test's model of cgroupfs) then accumulates members like the kernel does.
pub(crate) fn append_pid(dir: &Path, pid: u32) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    let op = || format!("write \"{pid}\" to");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| CgroupError::io(op(), &path, e))?;
    f.write_all(format!("{pid}\n").as_bytes())
        .map_err(|e| CgroupError::io(op(), &path, e))
}

/// The value of `key` in a flat-keyed file (`memory.events`, `memory.oom_control`,
/// `pids.events`: one `key value` per line).
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A single-value file (`memory.peak`, `memory.max_usage_in_bytes`): `None` when missing,
/// unreadable or not a number.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Tokens of `cgroup.controllers` / `cgroup.subtree_control`. A leading `+` is accepted so that a
/// test's plain-file model, which records what was written, reads back the same.
pub(crate) fn controller_set(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .map(|t| t.trim_start_matches('+').to_string())
        .collect()
}

/// Members of a cgroup. A cgroup that no longer exists has none.
pub(crate) fn read_procs(dir: &Path) -> Result<BTreeSet<u32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(CgroupError::io("read", &path, e)),
    };
    text.split_whitespace()
        .map(|t| {
            t.parse::<u32>().map_err(|_| CgroupError::Invalid {
                path: path.clone(),
                msg: format!("not a pid: {t:?}"),
            })
        })
        .collect()
}

pub(crate) fn read_procs_all(dirs: &[PathBuf]) -> Result<BTreeSet<u32>, CgroupError> {
    let mut all = BTreeSet::new();
    for d in dirs {
        all.extend(read_procs(d)?);
    }
    Ok(all)
}

/// Pids we must never signal however they got into a cgroup file: 0 and 1 (`kill(0)` is our
/// process group, pid 1 is init) and the daemon itself.
fn signallable(pid: u32) -> bool {
    pid > 1 && pid != std::process::id() && pid <= i32::MAX as u32
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_kill(fd: &OwnedFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fd is a live pidfd we own; a null siginfo is allowed (the kernel fills one in).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn kill_pid(pid: u32) {
    // SAFETY: kill has no memory arguments; `signallable` excluded 0, 1 and ourselves.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Whether a process with this pid exists (ours to signal or not).
pub(crate) fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// SIGKILLs every member of `dirs`, safely against pid reuse: a listed pid may exit and its
/// number be reused by an unrelated process before we signal it. So each pid is first pinned
/// with a pidfd, the membership is read again, and only pids still listed are signalled through
/// their pidfd: if the pinned process had died, the signal goes nowhere (ESRCH) even if its
/// number now belongs to someone else. Without pidfd_open (kernels before 5.3) plain `kill` is
/// used, with that small race. Returns how many were signalled.
pub(crate) fn signal_members(dirs: &[PathBuf]) -> Result<usize, CgroupError> {
    let pids: Vec<u32> = read_procs_all(dirs)?
        .into_iter()
        .filter(|&p| signallable(p))
        .collect();
    if pids.is_empty() {
        return Ok(0);
    }
    let mut pinned = Vec::with_capacity(pids.len());
    for pid in pids {
        match pidfd_open(pid) {
            Ok(fd) => pinned.push((pid, Some(fd))),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {} // already gone
            Err(_) => pinned.push((pid, None)),                   // ENOSYS etc.: plain kill
        }
    }
    let still = read_procs_all(dirs)?;
    let mut n = 0;
    for (pid, fd) in pinned {
        if !still.contains(&pid) {
            continue;
        }
        match fd {
            Some(fd) => {
                if pidfd_kill(&fd).is_ok() {
                    n += 1;
                }
            }
            None => {
                kill_pid(pid);
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Kills whatever is in `dirs` (via `kill_file` = v2 `cgroup.kill` when given and present, else
/// [`signal_members`]), waits with a short exponential back-off until no member is left, then
/// removes every directory (a missing one counts as removed). All bounded by `timeout`.
/// Returns how many processes were found inside.
pub(crate) fn kill_wait_rmdir(
    fs: &dyn CgroupFs,
    dirs: &[PathBuf],
    kill_file: Option<&Path>,
    timeout: Duration,
) -> Result<usize, CgroupError> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(50);
    let mut found = 0;
    loop {
        let pids = read_procs_all(dirs)?;
        if pids.is_empty() {
            break;
        }
        found = found.max(pids.len());
        if start.elapsed() > timeout {
            return Err(CgroupError::Busy {
                path: dirs[0].clone(),
                pids: pids.into_iter().collect(),
                waited: start.elapsed(),
            });
        }
        match kill_file {
            Some(k) if write_if_exists(k, "1")? => {}
            _ => {
                signal_members(dirs)?;
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
    for dir in dirs {
        loop {
            match fs.rmdir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // A just-killed process may still be leaving; the count drops within moments.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < timeout => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(10));
                }
                Err(e) => return Err(CgroupError::io("remove", dir, e)),
            }
        }
    }
    Ok(found)
}

/// Removes `dir` and every cgroup below it, deepest first, killing members on the way.
/// `kill_file_name` is `Some("cgroup.kill")` on v2. Depth is bounded: we only ever create two
/// levels, so anything deeper is not ours to walk.
pub(crate) fn remove_tree(
    fs: &dyn CgroupFs,
    dir: &Path,
    kill_file_name: Option<&str>,
    timeout: Duration,
    report: &mut SweepReport,
) -> Result<(), CgroupError> {
    remove_tree_at(fs, dir, kill_file_name, timeout, report, 0)
}

fn remove_tree_at(
    fs: &dyn CgroupFs,
    dir: &Path,
    kill_file_name: Option<&str>,
    timeout: Duration,
    report: &mut SweepReport,
    depth: usize,
) -> Result<(), CgroupError> {
    if depth > 4 {
        return Err(CgroupError::Invalid {
            path: dir.to_path_buf(),
            msg: "cgroup tree deeper than this daemon creates; not removing".into(),
        });
    }
    for sub in subdirs(dir)? {
        remove_tree_at(fs, &sub, kill_file_name, timeout, report, depth + 1)?;
    }
    let kill_file = kill_file_name.map(|k| dir.join(k));
    let found = kill_wait_rmdir(fs, &[dir.to_path_buf()], kill_file.as_deref(), timeout)?;
    report.killed += found;
    report.removed.push(dir.to_path_buf());
    Ok(())
}

/// Child directories (cgroups) of `dir`; none if `dir` is gone.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| CgroupError::io("list", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| CgroupError::io("stat", &entry.path(), e))?;
        if ft.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// mkdir that accepts an existing directory.
pub(crate) fn mkdir_exist_ok(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, CgroupError> {
    match fs.mkdir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::io("create", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files() {
        let ev = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 3\noom_group_kill 1\n";
        assert_eq!(flat_keyed(ev, "oom_kill"), Some(3));
        assert_eq!(flat_keyed(ev, "oom"), Some(2));
        assert_eq!(flat_keyed(ev, "max"), Some(12));
        assert_eq!(flat_keyed(ev, "missing"), None);
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(flat_keyed(v1, "oom_kill"), Some(1));
        assert_eq!(flat_keyed("max 5", "max"), Some(5));
    }

    #[test]
    fn controllers() {
        let s = controller_set("cpuset cpu io memory pids\n");
        assert!(s.contains("memory") && s.contains("pids"));
        let s = controller_set("+memory +pids");
        assert!(s.contains("memory") && s.contains("pids"));
    }

    #[test]
    fn never_signal_ourselves_or_init() {
        assert!(!signallable(0));
        assert!(!signallable(1));
        assert!(!signallable(std::process::id()));
        assert!(!signallable(u32::MAX));
        assert!(signallable(2));
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!pid_alive(pid));
    }
}
