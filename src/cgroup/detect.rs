//! Reading `/proc/self/cgroup` and `/proc/self/mountinfo`.
//!
//! Mount points are never assumed: a container may mount cgroupfs elsewhere, mount a hierarchy
//! with a non-`/` root (bind-mounted sub-tree), or co-mount controllers (`cpu,cpuacct`). The
//! daemon's own cgroup is the path in `/proc/self/cgroup` made relative to the mount's root.

use super::Unavailable;
use std::path::{Path, PathBuf};

/// One cgroup or cgroup2 line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Field 4: the path inside the hierarchy that is mounted (`/` unless bind-mounted).
    pub root: String,
    /// Field 5: where it is mounted.
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Super options (for v1 these name the controllers, e.g. `rw,cpu,cpuacct`).
    pub super_opts: Vec<String>,
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controller-list:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcCgroup {
    pub hierarchy: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts of a mountinfo text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        out.push(Mount {
            root: unescape(pre[3]),
            mount_point: PathBuf::from(unescape(pre[4])),
            fstype: fstype.to_string(),
            super_opts: post[2].split(',').map(str::to_string).collect(),
        });
    }
    out
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let hierarchy = it.next()?.parse().ok()?;
            let controllers = it.next()?;
            let path = it.next()?.to_string();
            Some(ProcCgroup {
                hierarchy,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path,
            })
        })
        .collect()
}

/// `own` (a path in the hierarchy) as a directory under `mount`, if the mount shows it.
pub(crate) fn resolve(mount: &Mount, own: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rel = if root.is_empty() {
        own
    } else {
        let rest = own.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest
    };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// The two files detection reads.
pub(crate) struct ProcSelf {
    pub mounts: Vec<Mount>,
    pub cgroups: Vec<ProcCgroup>,
}

impl ProcSelf {
    pub fn read(dir: &Path) -> Result<Self, Unavailable> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p)
                .map_err(|e| Unavailable::new(format!("cannot read {}: {e}", p.display())))
        };
        Ok(ProcSelf {
            mounts: parse_mountinfo(&read("mountinfo")?),
            cgroups: parse_proc_cgroup(&read("cgroup")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 /docker/abc /sys/fs/cgroup/cpu\\040acct rw,relatime - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].super_opts, vec!["rw", "cpu"]);
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m[2].mount_point, PathBuf::from("/sys/fs/cgroup/cpu acct"));
        assert_eq!(m[2].root, "/docker/abc");
        assert_eq!(m[3].fstype, "cgroup2");
    }

    #[test]
    fn proc_cgroup() {
        let c = parse_proc_cgroup(
            "4:memory:/process_api/04ab\n2:cpu,cpuacct:/\n0::/\n1:name=systemd:/x:y\n",
        );
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].controllers, vec!["memory"]);
        assert_eq!(c[0].path, "/process_api/04ab");
        assert_eq!(c[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(c[2].controllers.is_empty());
        assert_eq!(c[2].hierarchy, 0);
        assert_eq!(c[3].path, "/x:y");
    }

    #[test]
    fn resolving() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            resolve(&m[1], "/process_api/04ab"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/04ab"))
        );
        assert_eq!(
            resolve(&m[1], "/"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            resolve(&m[2], "/docker/abc/x"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu acct/x"))
        );
        assert_eq!(resolve(&m[2], "/docker/abcd"), None);
        assert_eq!(resolve(&m[2], "/other"), None);
        assert_eq!(resolve(&m[1], "/a/../b"), None);
    }
}
