//! The cgroup v1 backend: one hierarchy per controller (memory, pids, optional cpu).
//!
//! For hosts where these controllers are only mounted as v1 (the development machines: memory at
//! `/sys/fs/cgroup/memory/<own path>`, pids at `/sys/fs/cgroup/pids/<own path>`, the `unified`
//! v2 mount without controllers). v1 allows processes in inner cgroups, so the daemon stays where
//! it is and the parent `<prefix>.<pid>` is created inside its own cgroup in each hierarchy; the
//! daemon's own cgroup itself is never written.
//!
//! Differences from v2 the supervisor should know: no `memory.oom.group` (the OOM killer kills
//! one process; teardown kills the rest), no `cgroup.kill` (members are SIGKILLed one by one
//! through pidfds), and a process must be attached to each hierarchy separately.

use super::child::{sweep_base, Child};
use super::detect::ProcSelf;
use super::files::{self, mkdir_exist_ok};
use super::{
    cpu, memory, pids, validate_name, CgroupConfig, CgroupError, CgroupLimits, CgroupManager,
    CgroupVersion, ChildCgroup, LiveSet, SweepReport, Unavailable,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// One controller hierarchy: the daemon's own cgroup in it and our parent below that.
#[derive(Clone, Debug)]
struct Ctl {
    own: PathBuf,
    parent: PathBuf,
}

pub struct V1Manager {
    cfg: CgroupConfig,
    memory: Ctl,
    pids: Ctl,
    cpu: Option<Ctl>,
    live: LiveSet,
    prepared: Mutex<bool>,
}

impl std::fmt::Debug for V1Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The daemon's own cgroup directory in the v1 hierarchy that carries `ctl`.
fn locate(ps: &ProcSelf, proc_self: &Path, ctl: &str) -> Result<PathBuf, Unavailable> {
    let mounts: Vec<_> = ps
        .mounts
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.super_opts.iter().any(|o| o == ctl))
        .collect();
    if mounts.is_empty() {
        return Err(Unavailable::new(format!(
            "no cgroup v1 {ctl} controller: no cgroup mount with option {ctl} in {}",
            proc_self.join("mountinfo").display()
        )));
    }
    let Some(line) = ps
        .cgroups
        .iter()
        .find(|c| c.hierarchy != 0 && c.controllers.iter().any(|c| c == ctl))
    else {
        return Err(Unavailable::new(format!(
            "no cgroup v1 {ctl} controller: {} has no {ctl} line",
            proc_self.join("cgroup").display()
        )));
    };
    mounts
        .iter()
        .filter_map(|m| super::detect::resolve(m, &line.path))
        .find(|p| p.is_dir())
        .ok_or_else(|| {
            Unavailable::new(format!(
                "cgroup v1 {ctl}: own cgroup {} is not visible under {}",
                line.path,
                mounts
                    .iter()
                    .map(|m| m.mount_point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

impl V1Manager {
    /// Locates the hierarchies without writing anything; [`CgroupManager::prepare`] creates the
    /// parent.
    pub fn open(cfg: &CgroupConfig) -> Result<Self, Unavailable> {
        let ps = ProcSelf::read(&cfg.proc_self)?;
        let parent_name = format!("{}.{}", cfg.prefix, std::process::id());
        let ctl = |name: &str| -> Result<Ctl, Unavailable> {
            let own = locate(&ps, &cfg.proc_self, name)?;
            Ok(Ctl {
                parent: own.join(&parent_name),
                own,
            })
        };
        let memory = ctl("memory")?;
        if !memory.own.join("memory.limit_in_bytes").exists() {
            return Err(Unavailable::new(format!(
                "no cgroup v1 memory controller: {} lacks memory.limit_in_bytes",
                memory.own.display()
            )));
        }
        let pids = ctl("pids")?;
        let cpu = if cfg.cpu { ctl("cpu").ok() } else { None };
        Ok(V1Manager {
            cfg: cfg.clone(),
            memory,
            pids,
            cpu,
            live: LiveSet::default(),
            prepared: Mutex::new(false),
        })
    }

    fn ctls(&self) -> impl Iterator<Item = &Ctl> {
        [&self.memory, &self.pids]
            .into_iter()
            .chain(self.cpu.as_ref())
    }

    /// Distinct hierarchies (co-mounted controllers share one).
    fn bases(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
        for c in self.ctls() {
            if !out.iter().any(|(own, _)| own == &c.own) {
                out.push((c.own.clone(), c.parent.clone()));
            }
        }
        out
    }

    fn create_dirs(&self, name: &str, limits: &CgroupLimits) -> Result<Child, CgroupError> {
        let memory = self.memory.parent.join(name);
        let pids = self.pids.parent.join(name);
        let cpu_dir = match (&limits.cpu, &self.cpu) {
            (None, _) => None,
            (Some(_), Some(c)) => Some(c.parent.join(name)),
            (Some(_), None) => {
                return Err(CgroupError::Unsupported {
                    what: "cpu limit",
                    why: "no cgroup v1 cpu hierarchy (or disabled in the configuration)".into(),
                })
            }
        };
        let mut dirs = vec![memory.clone()];
        for d in [Some(pids.clone()), cpu_dir.clone()].into_iter().flatten() {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        let child = Child {
            version: CgroupVersion::V1,
            name: name.to_string(),
            memory,
            pids,
            dirs,
            fs: self.cfg.fs.clone(),
            live: self.live.clone(),
            timeout: self.cfg.remove_timeout,
            removed: AtomicBool::new(false),
        };
        // From here on, dropping `child` on an error removes whatever was created.
        for d in &child.dirs {
            if !mkdir_exist_ok(&*self.cfg.fs, d)? {
                // Left by a crashed daemon with our pid: not live (create checked), so clear it.
                files::remove_tree(
                    &*self.cfg.fs,
                    d,
                    None,
                    self.cfg.remove_timeout,
                    &mut SweepReport::default(),
                )?;
                mkdir_exist_ok(&*self.cfg.fs, d)?;
            }
        }
        memory::apply_v1(&child.memory, limits.memory_bytes)?;
        pids::apply(&child.pids, limits.pids_max)?;
        if let (Some(l), Some(d)) = (&limits.cpu, &cpu_dir) {
            cpu::apply_v1(d, l)?;
        }
        Ok(child)
    }
}

impl CgroupManager for V1Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn prepare(&self) -> Result<(), CgroupError> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if *prepared {
            return Ok(());
        }
        for (_, parent) in self.bases() {
            mkdir_exist_ok(&*self.cfg.fs, &parent)?;
        }
        *prepared = true;
        Ok(())
    }

    fn parent_paths(&self) -> Vec<PathBuf> {
        self.bases().into_iter().map(|(_, p)| p).collect()
    }

    fn has_cpu(&self) -> bool {
        self.cpu.is_some()
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
                path: self.memory.parent.join(name),
                msg: "a live child cgroup of this name exists".into(),
            });
        }
        match self.create_dirs(name, limits) {
            Ok(c) => Ok(Box::new(c)),
            Err(e) => {
                // create_dirs' Child (if any) was dropped and removed its directories.
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
        for (own, _) in self.bases() {
            sweep_base(
                &*self.cfg.fs,
                &own,
                &self.cfg.prefix,
                &self.live,
                None,
                self.cfg.remove_timeout,
                &mut report,
            )?;
        }
        Ok(report)
    }

    fn teardown(&self) -> Result<SweepReport, CgroupError> {
        let mut report = SweepReport::default();
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        for (_, parent) in self.bases() {
            files::remove_tree(
                &*self.cfg.fs,
                &parent,
                None,
                self.cfg.remove_timeout,
                &mut report,
            )?;
        }
        *prepared = false;
        Ok(report)
    }

    fn describe(&self) -> String {
        format!(
            "cgroup v1: memory={}, pids={}, cpu={}",
            self.memory.parent.display(),
            self.pids.parent.display(),
            self.cpu
                .as_ref()
                .map(|c| c.parent.display().to_string())
                .unwrap_or_else(|| "none".into())
        )
    }
}

impl Drop for V1Manager {
    /// Best effort and non-destructive: removes the (empty) parents; a parent that still has
    /// children stays (use [`CgroupManager::teardown`] to kill and remove everything).
    fn drop(&mut self) {
        for (_, parent) in self.bases() {
            let _ = self.cfg.fs.rmdir(&parent);
        }
    }
}
