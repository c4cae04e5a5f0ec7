//! The `serve` configuration file, with environment overrides (see `src/config.rs` here).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::config::check(data);
});
