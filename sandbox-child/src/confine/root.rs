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

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, mkdir, pivot_root};
use std::path::Path;

/// Existing directories to mount the new root on (any will do: the mount is private).
const MOUNT_POINTS: [&str; 5] = ["/tmp", "/mnt", "/proc", "/dev", "/run"];
/// The empty directory inside the tmpfs that becomes the child's root.
const INNER: &str = "root";

/// Mount flags of the tmpfs (read-only comes with the remount, after `INNER` exists).
fn flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

const NONE: Option<&str> = None;

pub(super) fn enter_empty_root() -> Result<String, String> {
    // Nothing done in this namespace may propagate to the host's mounts.
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| format!("making / private: {e}"))?;

    let target = MOUNT_POINTS
        .iter()
        .copied()
        .find(|p| Path::new(p).is_dir())
        .ok_or_else(|| "no directory to mount the new root on".to_string())?;
    mount(
        Some("cs-sandbox"),
        target,
        Some("tmpfs"),
        flags(),
        Some("size=4k,nr_inodes=3,mode=0555"),
    )
    .map_err(|e| format!("mounting an empty tmpfs on {target:?}: {e}"))?;
    chdir(target).map_err(|e| format!("chdir {target:?}: {e}"))?;
    mkdir(INNER, Mode::from_bits_truncate(0o555)).map_err(|e| format!("mkdir {INNER:?}: {e}"))?;

    let how = match pivot_root_here() {
        Ok(()) => "pivot_root; old root detached",
        Err(nix::errno::Errno::EINVAL) => {
            // rootfs cannot be pivoted away from: move the tmpfs over / and chroot.
            mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE)
                .map_err(|e| format!("moving the new root over /: {e}"))?;
            chroot(".").map_err(|e| format!("chroot: {e}"))?;
            "rootfs: moved over / and chroot (old root hidden)"
        }
        Err(e) => return Err(format!("pivot_root: {e}")),
    };
    mount(
        NONE,
        "/",
        NONE,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags(),
        NONE,
    )
    .map_err(|e| format!("remounting the new root read-only: {e}"))?;
    // The cwd is the new root.
    chroot(INNER).map_err(|e| format!("chroot {INNER:?}: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;

    let entries = std::fs::read_dir("/")
        .map_err(|e| format!("cannot list the new root: {e}"))?
        .count();
    if entries != 0 {
        return Err(format!("the new root is not empty ({entries} entries)"));
    }
    Ok(format!(
        "empty read-only tmpfs root, mounted on {target} ({how}), chroot into its empty /root"
    ))
}

/// `pivot_root(".", ".")`, then detach the old root, which now sits on top of the new one
/// (lazily, in this namespace only: every mount was made private first).
fn pivot_root_here() -> nix::Result<()> {
    pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)
}
