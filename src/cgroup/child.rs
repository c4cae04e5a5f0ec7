//! One child's cgroup, shared by both backends: on v2 every controller is the same directory,
//! on v1 each controller has its own hierarchy and so its own directory.

use super::files::{self, append_pid, kill_wait_rmdir, read_procs_all, signal_members};
use super::{
    memory, pids, CgroupError, CgroupFs, CgroupVersion, ChildCgroup, LiveSet, SweepReport,
};
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Child {
    pub version: CgroupVersion,
    pub name: String,
    /// The memory controller's directory (v2: the cgroup).
    pub memory: PathBuf,
    /// The pids controller's directory (v2: the cgroup).
    pub pids: PathBuf,
    /// Every distinct directory, memory first.
    pub dirs: Vec<PathBuf>,
    pub fs: Arc<dyn CgroupFs>,
    pub live: LiveSet,
    pub timeout: Duration,
    pub removed: AtomicBool,
}

impl Child {
    fn kill_file(&self) -> Option<PathBuf> {
        (self.version == CgroupVersion::V2).then(|| self.memory.join("cgroup.kill"))
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildCgroup")
            .field("version", &self.version)
            .field("dirs", &self.dirs)
            .field("removed", &self.removed.load(Ordering::Relaxed))
            .finish()
    }
}

impl ChildCgroup for Child {
    fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> &Path {
        &self.memory
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    fn attach(&self, pid: u32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            append_pid(d, pid)?;
        }
        Ok(())
    }

    fn pre_exec_attacher(&self) -> PreExecAttach {
        PreExecAttach {
            procs: self
                .dirs
                .iter()
                .map(|d| {
                    CString::new(d.join("cgroup.procs").as_os_str().as_bytes())
                        .expect("cgroup paths are built from NUL-free names")
                })
                .collect(),
        }
    }

    fn birth_dir(&self) -> Option<io::Result<OwnedFd>> {
        use std::os::unix::fs::OpenOptionsExt;
        (self.version == CgroupVersion::V2).then(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(&self.memory)
                .map(OwnedFd::from)
        })
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        Ok(read_procs_all(&self.dirs)?.into_iter().collect())
    }

    fn oom_kills(&self) -> Result<u64, CgroupError> {
        match self.version {
            CgroupVersion::V2 => memory::oom_kills_v2(&self.memory),
            CgroupVersion::V1 => memory::oom_kills_v1(&self.memory),
        }
    }

    fn memory_peak(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => memory::peak_v2(&self.memory),
            CgroupVersion::V1 => memory::peak_v1(&self.memory),
        }
    }

    fn memory_current(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => memory::current_v2(&self.memory),
            CgroupVersion::V1 => memory::current_v1(&self.memory),
        }
    }

    fn pids_max_hits(&self) -> Option<u64> {
        pids::max_hits(&self.pids)
    }

    fn set_memory_limit(&self, bytes: u64) -> Result<(), CgroupError> {
        match self.version {
            CgroupVersion::V2 => memory::apply_v2(&self.memory, Some(bytes)),
            CgroupVersion::V1 => memory::apply_v1(&self.memory, Some(bytes)),
        }
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(k) = self.kill_file() {
            if files::write_if_exists(&k, "1")? {
                return Ok(());
            }
        }
        signal_members(&self.dirs).map(|_| ())
    }

    fn remove(&self) -> Result<(), CgroupError> {
        if self.removed.load(Ordering::Acquire) {
            return Ok(());
        }
        let kill_file = self.kill_file();
        kill_wait_rmdir(&*self.fs, &self.dirs, kill_file.as_deref(), self.timeout)?;
        self.removed.store(true, Ordering::Release);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("cgroup {} not removed: {e}", self.memory.display());
        }
    }
}

/// Moves the *calling* process into a child cgroup, for use between fork and exec.
///
/// Writing `0` to `cgroup.procs` means "the writer" in both v1 and v2, so no pid has to be known
/// or formatted; the paths are prepared as C strings beforehand. [`PreExecAttach::attach_current`]
/// then only calls `open`, `write` and `close` — async-signal-safe, no allocation, no locks — which
/// is what a `pre_exec` hook in a forked copy of a multi-threaded supervisor may do.
///
/// ```ignore
/// let attach = child_cgroup.pre_exec_attacher();
/// // SAFETY: attach_current only makes async-signal-safe system calls.
/// unsafe { cmd.pre_exec(move || attach.attach_current()) };
/// ```
#[derive(Clone, Debug)]
pub struct PreExecAttach {
    procs: Vec<CString>,
}

impl PreExecAttach {
    pub fn attach_current(&self) -> io::Result<()> {
        for p in &self.procs {
            // SAFETY: `p` is a valid NUL-terminated path; open has no other memory arguments.
            let fd = unsafe {
                libc::open(
                    p.as_ptr(),
                    libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is open for writing and the buffer is 2 valid bytes.
            let n = unsafe { libc::write(fd, b"0\n".as_ptr().cast(), 2) };
            let err = (n < 0).then(io::Error::last_os_error);
            // SAFETY: `fd` was opened above and is closed exactly once.
            unsafe { libc::close(fd) };
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Start-up sweep of one base directory (the daemon's own cgroup in one hierarchy): removes
/// `<prefix>.<pid>` parents whose pid is dead, and the non-live children of our own parent.
pub(crate) fn sweep_base(
    fs: &dyn CgroupFs,
    base: &Path,
    prefix: &str,
    live: &LiveSet,
    kill_file_name: Option<&str>,
    timeout: Duration,
    report: &mut SweepReport,
) -> Result<(), CgroupError> {
    let me = std::process::id();
    for dir in files::subdirs(base)? {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(pid) = super::parse_parent_name(prefix, name) else {
            continue;
        };
        if pid == me {
            // Our own parent already existed: a previous daemon with our pid (common in
            // containers, where the daemon is always pid 1 or close). Clear what is not live.
            for child in files::subdirs(&dir)? {
                let cname = child.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let is_live = live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(cname);
                if !is_live {
                    files::remove_tree(fs, &child, kill_file_name, timeout, report)?;
                }
            }
        } else if files::pid_alive(pid) {
            report.skipped_live.push(dir);
        } else {
            files::remove_tree(fs, &dir, kill_file_name, timeout, report)?;
        }
    }
    Ok(())
}
