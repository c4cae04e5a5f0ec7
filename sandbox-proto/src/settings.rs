//! How a child confines itself: the settings the supervisor sends in the `Init` frame (the
//! identity, the rlimits, which steps apply), and the identity lookup the supervisor does to fill
//! them. Data only: the child's `confine` module applies them.

use bincode::{Decode, Encode};

/// How the child confines itself. Travels inside the supervisor's `Init` frame.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ConfineSettings {
    /// Unprivileged uid to run as (never 0). See [`default_identity`].
    pub uid: u32,
    /// Unprivileged gid to run as (never 0).
    pub gid: u32,
    /// Apply the seccomp allowlist. `false` only when explicitly asked (debugging a policy).
    pub seccomp: bool,
    /// Enter new mount/IPC/UTS/network/cgroup namespaces and an empty root. Without them the
    /// host filesystem stays visible (only identity, capabilities and seccomp protect it).
    pub namespaces: bool,
    pub rlimits: Rlimits,
    /// File descriptors that stay open (the pipes: 0, 1, 2). Every other fd is closed.
    pub keep_fds: Vec<u32>,
    /// The supervisor's pid as the child sees it (`getppid()`), or 0 when unknown; then the
    /// parent seen when the child's `confine` starts is taken.
    pub parent_pid: u32,
}

impl ConfineSettings {
    /// Full confinement as `uid`/`gid` with the default limits.
    pub fn new(uid: u32, gid: u32) -> Self {
        ConfineSettings {
            uid,
            gid,
            seccomp: true,
            namespaces: true,
            rlimits: Rlimits::default(),
            keep_fds: vec![0, 1, 2],
            parent_pid: 0,
        }
    }
}

/// The identity a confined child runs as: the system user `cs-sandbox` when `/etc/passwd`
/// has it, else `nobody` (65534, 65534). Called by the supervisor, which sends the result
/// in [`ConfineSettings`].
pub fn default_identity() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    lookup_user(&passwd, "cs-sandbox")
        .or_else(|| lookup_user(&passwd, "nobody"))
        .filter(|&(u, g)| u != 0 && g != 0)
        .unwrap_or((65534, 65534))
}

/// `name:x:uid:gid:...` → `(uid, gid)`.
fn lookup_user(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// Resource limits of a confined child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Rlimits {
    /// `RLIMIT_AS`, bytes. The supervisor passes the largest `memoryMb` (4096 MiB) plus a
    /// margin, so it bounds every bundle; the per-bundle bound is the engine's allocator and the
    /// cgroup.
    pub address_space_bytes: u64,
    /// `RLIMIT_STACK`, bytes (the main thread's stack growth).
    pub stack_bytes: u64,
    /// `RLIMIT_NOFILE`: one more than the highest fd that may exist. With the kept fds 0, 1, 2
    /// a value of 3 means no new fd can be created at all (sockets, io_uring, memfd, ...), which
    /// still holds when seccomp is off for debugging.
    pub nofile: u64,
    /// `RLIMIT_FSIZE`, bytes: 0, no file writes (pipes are not files).
    pub fsize_bytes: u64,
    /// `RLIMIT_CORE`, bytes: 0, no core dumps.
    pub core_bytes: u64,
    /// `RLIMIT_NPROC`: counted per uid, including the child itself, so 1 refuses every fork.
    pub nproc: u64,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits {
            address_space_bytes: (4096 + 512) << 20,
            stack_bytes: 8 << 20,
            nofile: 3,
            fsize_bytes: 0,
            core_bytes: 0,
            nproc: 1,
        }
    }
}

/// Address space a bound child may map beyond its function's memory limit: the binary, the
/// stack, the allocator's own mappings and the engine outside the counted heap. Virtual
/// memory, not resident: the cgroup bounds what is really used.
pub const ADDRESS_SPACE_HEADROOM: u64 = 512 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      cs-sandbox:x:998:997::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(lookup_user(passwd, "cs-sandbox"), Some((998, 997)));
        assert_eq!(lookup_user(passwd, "nobody"), Some((65534, 65534)));
        assert_eq!(lookup_user(passwd, "cs"), None);
        assert_eq!(lookup_user("broken:x:y:1\n", "broken"), None);
        let (u, g) = default_identity();
        assert!(u != 0 && g != 0);
    }

    #[test]
    fn settings_round_trip_through_bincode() {
        let s = ConfineSettings::new(65534, 65534);
        let cfg = bincode::config::standard();
        let bytes = bincode::encode_to_vec(&s, cfg).unwrap();
        let (back, _): (ConfineSettings, usize) = bincode::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, s);
    }
}
