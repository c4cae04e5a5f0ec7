//! `manifest.json` texts (`cs.function.script.v1`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::manifest::check(data);
});
