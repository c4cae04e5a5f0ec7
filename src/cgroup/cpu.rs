//! The cpu controller: CFS bandwidth (quota per period). Optional, because wall-clock deadlines
//! enforced by the supervisor already bound a run; the quota keeps one busy tenant from starving
//! the others on a shared host. v2: `cpu.max` = `"<quota> <period>"`; v1: `cpu.cfs_period_us`
//! then `cpu.cfs_quota_us` (period first, so the pair is never transiently invalid).

use super::files::write;
use super::{CgroupError, CpuLimit};
use std::path::Path;

/// The kernel accepts periods of 1 ms ..= 1 s and quotas of at least 1 ms.
fn validate(dir: &Path, l: &CpuLimit) -> Result<(), CgroupError> {
    if !(1_000..=1_000_000).contains(&l.period_us) || l.quota_us < 1_000 {
        return Err(CgroupError::Invalid {
            path: dir.to_path_buf(),
            msg: format!(
                "cpu limit {} us per {} us out of range (period 1000..=1000000, quota >= 1000)",
                l.quota_us, l.period_us
            ),
        });
    }
    Ok(())
}

pub(crate) fn apply_v2(dir: &Path, l: &CpuLimit) -> Result<(), CgroupError> {
    validate(dir, l)?;
    write(
        &dir.join("cpu.max"),
        &format!("{} {}", l.quota_us, l.period_us),
    )
}

pub(crate) fn apply_v1(dir: &Path, l: &CpuLimit) -> Result<(), CgroupError> {
    validate(dir, l)?;
    write(&dir.join("cpu.cfs_period_us"), &l.period_us.to_string())?;
    write(&dir.join("cpu.cfs_quota_us"), &l.quota_us.to_string())
}
