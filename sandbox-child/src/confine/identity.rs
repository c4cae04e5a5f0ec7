//! Steps `capabilities`, `identity` and `no-new-privs`.
//!
//! Order matters: the bounding set can only be dropped while `CAP_SETPCAP` is held, and the
//! supplementary groups only cleared while `CAP_SETGID` is; so bounding and ambient sets first,
//! then groups, gid and uid, then whatever capabilities survived the uid change are cleared
//! explicitly and checked with `capget`.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;
/// `CAP_SYS_ADMIN`, checked again after the bounding set was emptied.
const CAP_SYS_ADMIN: libc::c_ulong = 21;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// Drops every capability from the bounding set (up to the kernel's last one) and clears the
/// ambient set.
pub(super) fn drop_bounding_and_ambient() -> Result<String, String> {
    let mut dropped = 0;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ takes a capability number, no pointers.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if present < 0 {
            // EINVAL: past the kernel's last capability.
            break;
        }
        if present == 1 {
            // SAFETY: PR_CAPBSET_DROP takes a capability number, no pointers.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(os_err(&format!("PR_CAPBSET_DROP({cap})")));
            }
            dropped += 1;
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let ambient = if rc == 0 {
        "ambient set cleared"
    } else if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        "no ambient set on this kernel"
    } else {
        return Err(os_err("PR_CAP_AMBIENT_CLEAR_ALL"));
    };
    Ok(format!(
        "bounding set emptied ({dropped} capabilities dropped), {ambient}"
    ))
}

/// No supplementary groups, then real/effective/saved gid and uid, checked afterwards.
pub(super) fn set_ids(uid: u32, gid: u32) -> Result<String, String> {
    if uid == 0 || gid == 0 {
        return Err(format!(
            "refusing to run as uid {uid} / gid {gid}: the child needs an unprivileged identity"
        ));
    }
    // SAFETY: a zero-length list; the pointer is not read.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(os_err("setgroups([])"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(os_err(&format!("setresgid({gid})")));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(os_err(&format!("setresuid({uid})")));
    }

    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable u32s.
    if unsafe { libc::getresuid(&mut r, &mut e, &mut s) } != 0 || (r, e, s) != (uid, uid, uid) {
        return Err(format!("uid is ({r}, {e}, {s}) after setresuid({uid})"));
    }
    // SAFETY: as above.
    if unsafe { libc::getresgid(&mut r, &mut e, &mut s) } != 0 || (r, e, s) != (gid, gid, gid) {
        return Err(format!("gid is ({r}, {e}, {s}) after setresgid({gid})"));
    }
    // SAFETY: size 0 only asks for the count; the pointer is not written.
    let groups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if groups != 0 {
        return Err(format!("{groups} supplementary groups after setgroups([])"));
    }
    Ok(format!(
        "uid {uid}, gid {gid} (real, effective, saved), no supplementary groups"
    ))
}

/// Clears effective, permitted and inheritable sets, verifies them (and the bounding set) with
/// `capget`, and marks the process not dumpable (no ptrace from same-uid processes, `/proc/<pid>`
/// owned by root).
pub(super) fn clear_capabilities() -> Result<String, String> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let zero = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as version 3 expects; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, zero.as_ptr()) };
    if rc != 0 {
        return Err(os_err("capset(0)"));
    }
    let mut now = [CapData {
        effective: u32::MAX,
        permitted: u32::MAX,
        inheritable: u32::MAX,
    }; 2];
    // SAFETY: as above; the kernel writes two CapData entries.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, now.as_mut_ptr()) };
    if rc != 0 {
        return Err(os_err("capget"));
    }
    if now != zero {
        return Err(format!(
            "capabilities remain: effective {:08x}{:08x}, permitted {:08x}{:08x}, inheritable {:08x}{:08x}",
            now[1].effective,
            now[0].effective,
            now[1].permitted,
            now[0].permitted,
            now[1].inheritable,
            now[0].inheritable
        ));
    }
    // SAFETY: PR_CAPBSET_READ takes a capability number, no pointers.
    if unsafe { libc::prctl(libc::PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) } != 0 {
        return Err("CAP_SYS_ADMIN is still in the bounding set".to_string());
    }
    // SAFETY: PR_SET_DUMPABLE takes an integer.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(os_err("PR_SET_DUMPABLE(0)"));
    }
    Ok("effective, permitted, inheritable sets 0 (verified with capget); not dumpable".into())
}

pub(super) fn set_no_new_privs() -> Result<String, String> {
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(os_err("PR_SET_NO_NEW_PRIVS"));
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } != 1 {
        return Err("PR_GET_NO_NEW_PRIVS does not read 1".into());
    }
    Ok("no_new_privs set".into())
}
