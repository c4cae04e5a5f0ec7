//! The cgroup v2 backend (production: systemd with `Delegate=yes`).
//!
//! v2 has one tree and the "no internal processes" rule: a cgroup that hands controllers to its
//! children (`cgroup.subtree_control`) may not itself hold processes. A delegated service's
//! cgroup holds the daemon, so [`CgroupManager::prepare`] first moves the daemon into a leaf
//! `<own>/<leaf_name>` and only then enables `+memory +pids [+cpu]` in `<own>`, then creates the
//! parent `<own>/<prefix>.<pid>` beside the leaf and enables the controllers in it too:
//!
//! ```text
//! <own>/                         cgroup.subtree_control = memory pids [cpu]
//!     supervisor/                the daemon (all its threads)
//!     cs-invoker-pool.<pid>/     cgroup.subtree_control = memory pids [cpu]
//!         <child>/               memory.max, memory.swap.max=0, memory.oom.group=1, pids.max, ...
//! ```
//!
//! Only the daemon's own process is moved. If `<own>` holds other processes (the daemon was not
//! started alone in a delegated cgroup, e.g. from a login shell's scope) prepare refuses with a
//! message naming them, rather than moving processes that are not ours.
//!
//! When `<own>` already delegates the controllers (e.g. the root cgroup of a systemd host, or a
//! second manager in the same process after the first moved it), nothing is moved. If the daemon
//! is already in a cgroup named `<leaf_name>` whose parent delegates memory and pids, that
//! parent is taken as `<own>`: it is where an earlier prepare in this process put us.
//!
//! `clone3(CLONE_INTO_CGROUP)` could place a child without a migration; the supervisor spawns
//! through `Command`, so [`ChildCgroup::pre_exec_attacher`] (one write between fork and exec) is
//! the offered path.

use super::child::{sweep_base, Child};
use super::detect::ProcSelf;
use super::files::{self, append_pid, controller_set, mkdir_exist_ok, read_procs, write};
use super::{
    cpu, memory, pids, validate_name, CgroupConfig, CgroupError, CgroupLimits, CgroupManager,
    CgroupVersion, ChildCgroup, LiveSet, SweepReport, Unavailable,
};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

const KILL_FILE: &str = "cgroup.kill";

/// Serialises [`V2Manager::open`] with the move-into-the-leaf step of
/// [`CgroupManager::prepare`] within this process. Between the move and the write of
/// `cgroup.subtree_control` the base delegates nothing yet, so a second manager opened in that
/// window (tests open one per cgroup prefix, concurrently) would take the leaf for its base.
static SETUP: Mutex<()> = Mutex::new(());

pub struct V2Manager {
    cfg: CgroupConfig,
    /// The delegated cgroup: the daemon's own cgroup at start-up.
    base: PathBuf,
    /// `<base>/<leaf_name>`, where the daemon lives once prepared.
    leaf: PathBuf,
    /// `<base>/<prefix>.<pid>`.
    parent: PathBuf,
    /// Controllers we enable: memory, pids and (when wanted and offered) cpu.
    controllers: Vec<&'static str>,
    live: LiveSet,
    prepared: Mutex<bool>,
}

impl std::fmt::Debug for V2Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl V2Manager {
    /// Finds the daemon's v2 cgroup and checks that it offers memory and pids. Writes nothing.
    pub fn open(cfg: &CgroupConfig) -> Result<Self, Unavailable> {
        let _setup = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let ps = ProcSelf::read(&cfg.proc_self)?;
        let cgroup_file = cfg.proc_self.join("cgroup");
        let Some(line) = ps
            .cgroups
            .iter()
            .find(|c| c.hierarchy == 0 && c.controllers.is_empty())
        else {
            return Err(Unavailable::new(format!(
                "no cgroup v2 membership: {} has no \"0::\" line",
                cgroup_file.display()
            )));
        };
        let mounts: Vec<_> = ps.mounts.iter().filter(|m| m.fstype == "cgroup2").collect();
        if mounts.is_empty() {
            return Err(Unavailable::new(format!(
                "no cgroup2 filesystem mounted (none in {})",
                cfg.proc_self.join("mountinfo").display()
            )));
        }
        let Some(own) = mounts
            .iter()
            .filter_map(|m| super::detect::resolve(m, &line.path))
            .find(|p| p.is_dir())
        else {
            return Err(Unavailable::new(format!(
                "own cgroup v2 {} is not visible under {}",
                line.path,
                mounts
                    .iter()
                    .map(|m| m.mount_point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let delegates = |dir: &std::path::Path| {
            files::read(&dir.join("cgroup.subtree_control"))
                .map(|t| {
                    let s = controller_set(&t);
                    s.contains("memory") && s.contains("pids")
                })
                .unwrap_or(false)
        };
        let base = match own.parent() {
            Some(up)
                if own.file_name().and_then(|n| n.to_str()) == Some(cfg.leaf_name.as_str())
                    && own != mounts[0].mount_point
                    && delegates(up) =>
            {
                up.to_path_buf()
            }
            _ => own,
        };
        let cfile = base.join("cgroup.controllers");
        let offered = std::fs::read_to_string(&cfile)
            .map(|t| controller_set(&t))
            .map_err(|e| Unavailable::new(format!("cannot read {}: {e}", cfile.display())))?;
        for need in ["memory", "pids"] {
            if !offered.contains(need) {
                return Err(Unavailable::new(format!(
                    "no cgroup v2 {need} controller: {} lacks {need} (has: {})",
                    cfile.display(),
                    if offered.is_empty() {
                        "nothing".to_string()
                    } else {
                        offered.iter().cloned().collect::<Vec<_>>().join(" ")
                    }
                )));
            }
        }
        let mut controllers = vec!["memory", "pids"];
        if cfg.cpu && offered.contains("cpu") {
            controllers.push("cpu");
        }
        Ok(V2Manager {
            leaf: base.join(&cfg.leaf_name),
            parent: base.join(format!("{}.{}", cfg.prefix, std::process::id())),
            base,
            controllers,
            cfg: cfg.clone(),
            live: LiveSet::default(),
            prepared: Mutex::new(false),
        })
    }

    /// The delegated cgroup (the daemon's own at start-up).
    pub fn base(&self) -> &std::path::Path {
        &self.base
    }

    /// The leaf the daemon moves itself into.
    pub fn leaf(&self) -> &std::path::Path {
        &self.leaf
    }

    fn enable_line(&self) -> String {
        self.controllers
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn create_dir(&self, name: &str, limits: &CgroupLimits) -> Result<Child, CgroupError> {
        if limits.cpu.is_some() && !self.has_cpu() {
            return Err(CgroupError::Unsupported {
                what: "cpu limit",
                why: format!(
                    "{} does not offer the cpu controller (or it is disabled in the configuration)",
                    self.base.join("cgroup.controllers").display()
                ),
            });
        }
        let dir = self.parent.join(name);
        let child = Child {
            version: CgroupVersion::V2,
            name: name.to_string(),
            memory: dir.clone(),
            pids: dir.clone(),
            dirs: vec![dir.clone()],
            fs: self.cfg.fs.clone(),
            live: self.live.clone(),
            timeout: self.cfg.remove_timeout,
            removed: AtomicBool::new(false),
        };
        if !mkdir_exist_ok(&*self.cfg.fs, &dir)? {
            // Left by a crashed daemon with our pid: not live (create checked), so clear it.
            files::remove_tree(
                &*self.cfg.fs,
                &dir,
                Some(KILL_FILE),
                self.cfg.remove_timeout,
                &mut SweepReport::default(),
            )?;
            mkdir_exist_ok(&*self.cfg.fs, &dir)?;
        }
        memory::apply_v2(&dir, limits.memory_bytes)?;
        pids::apply(&dir, limits.pids_max)?;
        if let Some(l) = &limits.cpu {
            cpu::apply_v2(&dir, l)?;
        }
        Ok(child)
    }
}

impl CgroupManager for V2Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn prepare(&self) -> Result<(), CgroupError> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if *prepared {
            return Ok(());
        }
        let _setup = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let sc_path = self.base.join("cgroup.subtree_control");
        let enabled = controller_set(&files::read(&sc_path)?);
        if !self.controllers.iter().all(|c| enabled.contains(*c)) {
            let me = std::process::id();
            let procs = read_procs(&self.base)?;
            let others: Vec<u32> = procs.iter().copied().filter(|&p| p != me).collect();
            if !others.is_empty() {
                return Err(CgroupError::Invalid {
                    path: self.base.join("cgroup.procs"),
                    msg: format!(
                        "holds processes {others:?} besides this daemon ({me}); cgroup v2 forbids \
                         processes in a cgroup that enables controllers for its children and only \
                         our own process is ours to move: run the daemon alone in a delegated \
                         cgroup (systemd Delegate=yes)"
                    ),
                });
            }
            if procs.contains(&me) {
                mkdir_exist_ok(&*self.cfg.fs, &self.leaf)?;
                append_pid(&self.leaf, me)?;
            }
            write(&sc_path, &self.enable_line())?;
        }
        mkdir_exist_ok(&*self.cfg.fs, &self.parent)?;
        write(
            &self.parent.join("cgroup.subtree_control"),
            &self.enable_line(),
        )?;
        *prepared = true;
        Ok(())
    }

    fn parent_paths(&self) -> Vec<PathBuf> {
        vec![self.parent.clone()]
    }

    fn has_cpu(&self) -> bool {
        self.controllers.contains(&"cpu")
    }

    fn create(
        &self,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Box<dyn ChildCgroup>, CgroupError> {
        validate_name(name)?;
        self.prepare()?;
        if !self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string())
        {
            return Err(CgroupError::Invalid {
                path: self.parent.join(name),
                msg: "a live child cgroup of this name exists".into(),
            });
        }
        match self.create_dir(name, limits) {
            Ok(c) => Ok(Box::new(c)),
            Err(e) => {
                self.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                Err(e)
            }
        }
    }

    fn sweep(&self) -> Result<SweepReport, CgroupError> {
        let mut report = SweepReport::default();
        sweep_base(
            &*self.cfg.fs,
            &self.base,
            &self.cfg.prefix,
            &self.live,
            Some(KILL_FILE),
            self.cfg.remove_timeout,
            &mut report,
        )?;
        Ok(report)
    }

    fn teardown(&self) -> Result<SweepReport, CgroupError> {
        let mut report = SweepReport::default();
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        files::remove_tree(
            &*self.cfg.fs,
            &self.parent,
            Some(KILL_FILE),
            self.cfg.remove_timeout,
            &mut report,
        )?;
        *prepared = false;
        Ok(report)
    }

    fn describe(&self) -> String {
        format!(
            "cgroup v2: parent={} (controllers {}), daemon leaf={}",
            self.parent.display(),
            self.controllers.join(" "),
            self.leaf.display()
        )
    }
}

impl Drop for V2Manager {
    /// Best effort and non-destructive: removes the parent if it is empty. The daemon stays in
    /// its leaf (moving it back would violate the no-internal-processes rule).
    fn drop(&mut self) {
        let _ = self.cfg.fs.rmdir(&self.parent);
    }
}
