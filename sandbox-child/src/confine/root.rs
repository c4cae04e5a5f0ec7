//! Step `root`: an empty, read-only root directory, with nothing of the host's filesystem
//! reachable.
//!
//! In the child's private mount namespace: make every mount private (so nothing propagates
//! back to the host), mount a tiny tmpfs on an existing directory and make one empty directory
//! `/root` in it, `pivot_root` into the tmpfs with the old root stacked on top
//! (`pivot_root(".", ".")`), lazily detach the old root, remount the tmpfs read-only
//! (`nosuid,nodev,noexec,ro`), and finally `chroot("/root")` and `chdir("/")`.
//!
//! The last `chroot` leaves the process below its mount namespace's root, which the kernel
//! reads as "chrooted": it then refuses `unshare(CLONE_NEWUSER)` (EPERM) even with seccomp
//! off, where unprivileged user namespaces are otherwise open on most hosts. Climbing out of a
//! chroot needs `CAP_SYS_CHROOT`, dropped in the next steps; and above `/root` there is only
//! the empty tmpfs anyway.
//!
//! When the current root is the initramfs `rootfs` (pivot_root fails with `EINVAL`, as in a
//! busybox initramfs), the tmpfs is moved over `/` and the child `chroot`s into it instead; the
//! old root is then hidden below rather than detached.

use std::ffi::CStr;
use std::io;

/// Existing directories to mount the new root on (any will do: the mount is private).
const MOUNT_POINTS: [&CStr; 5] = [c"/tmp", c"/mnt", c"/proc", c"/dev", c"/run"];
/// The empty directory inside the tmpfs that becomes the child's root.
const INNER: &CStr = c"root";
/// Mount flags of the tmpfs (read-only comes with the remount, after `INNER` exists).
const FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

pub(super) fn enter_empty_root() -> Result<String, String> {
    // Nothing done in this namespace may propagate to the host's mounts.
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| format!("making / private: {e}"))?;

    let target = MOUNT_POINTS
        .iter()
        .copied()
        .find(|p| is_dir(p))
        .ok_or_else(|| "no directory to mount the new root on".to_string())?;
    mount(
        Some(c"cs-sandbox"),
        target,
        Some(c"tmpfs"),
        FLAGS,
        Some(c"size=4k,nr_inodes=3,mode=0555"),
    )
    .map_err(|e| format!("mounting an empty tmpfs on {target:?}: {e}"))?;
    chdir(target).map_err(|e| format!("chdir {target:?}: {e}"))?;
    // SAFETY: a valid NUL-terminated relative path.
    if unsafe { libc::mkdir(INNER.as_ptr(), 0o555) } != 0 {
        return Err(format!("mkdir {INNER:?}: {}", io::Error::last_os_error()));
    }

    let how = match pivot_root_here() {
        Ok(()) => "pivot_root; old root detached",
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // rootfs cannot be pivoted away from: move the tmpfs over / and chroot.
            mount(Some(c"."), c"/", None, libc::MS_MOVE, None)
                .map_err(|e| format!("moving the new root over /: {e}"))?;
            // SAFETY: the path is a valid NUL-terminated string.
            if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
                return Err(format!("chroot: {}", io::Error::last_os_error()));
            }
            "rootfs: moved over / and chroot (old root hidden)"
        }
        Err(e) => return Err(format!("pivot_root: {e}")),
    };
    mount(
        None,
        c"/",
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | FLAGS,
        None,
    )
    .map_err(|e| format!("remounting the new root read-only: {e}"))?;
    // SAFETY: a valid NUL-terminated relative path (the cwd is the new root).
    if unsafe { libc::chroot(INNER.as_ptr()) } != 0 {
        return Err(format!("chroot {INNER:?}: {}", io::Error::last_os_error()));
    }
    chdir(c"/").map_err(|e| format!("chdir /: {e}"))?;

    let entries = std::fs::read_dir("/")
        .map_err(|e| format!("cannot list the new root: {e}"))?
        .count();
    if entries != 0 {
        return Err(format!("the new root is not empty ({entries} entries)"));
    }
    Ok(format!(
        "empty read-only tmpfs root, mounted on {} ({how}), chroot into its empty /root",
        target.to_string_lossy()
    ))
}

/// `pivot_root(".", ".")`, then detach the old root, which now sits on top of the new one.
fn pivot_root_here() -> io::Result<()> {
    // SAFETY: both paths are valid NUL-terminated strings; the kernel checks the rest.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; MNT_DETACH unmounts the old root tree lazily, in this namespace only
    // (every mount was made private first).
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::other(format!(
            "detaching the old root: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string that outlives the
    // call; `data` is a string option list, as tmpfs expects.
    let rc = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: the path is a valid NUL-terminated string.
    if unsafe { libc::chdir(path.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_dir(path: &CStr) -> bool {
    path.to_str()
        .map(|p| std::path::Path::new(p).is_dir())
        .unwrap_or(false)
}
