//! Steps `capabilities`, `identity` and `no-new-privs`.
//!
//! Order matters: the bounding set can only be dropped while `CAP_SETPCAP` is held, and the
//! supplementary groups only cleared while `CAP_SETGID` is; so bounding and ambient sets first,
//! then groups, gid and uid, then whatever capabilities survived the uid change are cleared
//! explicitly and checked.
//!
//! The capability sets go through the `caps` crate, credentials and `prctl`s through `nix`.
//! One raw `prctl` stays: `caps` knows the capabilities up to the newest it was written for, so
//! the bounding set is verified for every number the kernel answers, whether `caps` names it
//! or not.

use caps::{CapSet, Capability};
use nix::sys::prctl;
use nix::unistd::{getgroups, getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};

/// Drops every capability from the bounding set and clears the ambient set.
pub(super) fn drop_bounding_and_ambient() -> Result<String, String> {
    let before = caps::read(None, CapSet::Bounding)
        .map_err(|e| format!("reading the bounding set: {e}"))?
        .len();
    caps::clear(None, CapSet::Bounding).map_err(|e| format!("emptying the bounding set: {e}"))?;
    let left = bounding_left();
    if left != 0 {
        return Err(format!(
            "{left} capabilities unknown to the caps crate remain in the bounding set"
        ));
    }
    let ambient = if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing the ambient set: {e}"))?;
        "ambient set cleared"
    } else {
        "no ambient set on this kernel"
    };
    Ok(format!(
        "bounding set emptied ({before} capabilities dropped), {ambient}"
    ))
}

/// Capabilities still in the bounding set, probing every number up to the kernel's last.
fn bounding_left() -> usize {
    let mut left = 0;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ takes a capability number and no pointers.
        match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } {
            1 => left += 1,
            0 => {}
            // EINVAL: past the kernel's last capability.
            _ => break,
        }
    }
    left
}

/// No supplementary groups, then real/effective/saved gid and uid, checked afterwards.
pub(super) fn set_ids(uid: u32, gid: u32) -> Result<String, String> {
    if uid == 0 || gid == 0 {
        return Err(format!(
            "refusing to run as uid {uid} / gid {gid}: the child needs an unprivileged identity"
        ));
    }
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[]).map_err(|e| format!("setgroups([]): {e}"))?;
    setresgid(g, g, g).map_err(|e| format!("setresgid({gid}): {e}"))?;
    setresuid(u, u, u).map_err(|e| format!("setresuid({uid}): {e}"))?;

    let r = getresuid().map_err(|e| format!("getresuid: {e}"))?;
    if (r.real, r.effective, r.saved) != (u, u, u) {
        return Err(format!(
            "uid is ({}, {}, {}) after setresuid({uid})",
            r.real, r.effective, r.saved
        ));
    }
    let r = getresgid().map_err(|e| format!("getresgid: {e}"))?;
    if (r.real, r.effective, r.saved) != (g, g, g) {
        return Err(format!(
            "gid is ({}, {}, {}) after setresgid({gid})",
            r.real, r.effective, r.saved
        ));
    }
    let groups = getgroups().map_err(|e| format!("getgroups: {e}"))?;
    if !groups.is_empty() {
        return Err(format!(
            "{} supplementary groups after setgroups([])",
            groups.len()
        ));
    }
    Ok(format!(
        "uid {uid}, gid {gid} (real, effective, saved), no supplementary groups"
    ))
}

/// Clears effective, inheritable and permitted sets (in that order: effective must stay a
/// subset of permitted), verifies them and the bounding set, and marks the process not
/// dumpable (no ptrace from same-uid processes, `/proc/<pid>` owned by root).
pub(super) fn clear_capabilities() -> Result<String, String> {
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| format!("clearing the {set:?} set: {e}"))?;
    }
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        let left = caps::read(None, set).map_err(|e| format!("reading the {set:?} set: {e}"))?;
        if !left.is_empty() {
            let mut names: Vec<String> = left.iter().map(|c| c.to_string()).collect();
            names.sort();
            return Err(format!(
                "capabilities remain in the {set:?} set: {}",
                names.join(", ")
            ));
        }
    }
    if caps::has_cap(None, CapSet::Bounding, Capability::CAP_SYS_ADMIN).unwrap_or(true) {
        return Err("CAP_SYS_ADMIN is still in the bounding set".to_string());
    }
    prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE(0): {e}"))?;
    Ok("effective, permitted, inheritable sets empty (verified); not dumpable".into())
}

pub(super) fn set_no_new_privs() -> Result<String, String> {
    prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    match prctl::get_no_new_privs() {
        Ok(true) => Ok("no_new_privs set".into()),
        Ok(false) => Err("PR_GET_NO_NEW_PRIVS does not read 1".into()),
        Err(e) => Err(format!("PR_GET_NO_NEW_PRIVS: {e}")),
    }
}
