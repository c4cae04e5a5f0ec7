//! `performance.now()` and `performance.timeOrigin` (High Resolution Time).
//!
//! The time origin is when this process created its first engine — for a pool child, its
//! start, as a Node process's origin is its own start — so `now()` is monotonic across the
//! activations a warm child serves and is measured on the monotonic clock (`Instant`, the
//! vDSO's `clock_gettime`, already allowed by the seccomp policy).

use rquickjs::{Ctx, Function, Object, Result};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Origin {
    mono: Instant,
    unix_ms: f64,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| Origin {
        mono: Instant::now(),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0),
    })
}

/// Fixes the time origin (called when the engine is created, so a lazily built `performance`
/// still counts from the child's start).
pub fn init() {
    origin();
}

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let perf = Object::new(ctx.clone())?;
    perf.set(
        "now",
        Function::new(ctx.clone(), || origin().mono.elapsed().as_secs_f64() * 1e3)?
            .with_name("now")?,
    )?;
    perf.set("timeOrigin", origin().unix_ms)?;
    perf.set(
        "toJSON",
        Function::new(ctx.clone(), |ctx: Ctx<'js>| -> Result<Object<'js>> {
            let o = Object::new(ctx)?;
            o.set("timeOrigin", origin().unix_ms)?;
            Ok(o)
        })?
        .with_name("toJSON")?,
    )?;
    let exports = Object::new(ctx.clone())?;
    exports.set("performance", perf)?;
    Ok(exports)
}
