//! Function bundles as they come out of KVRocks: whole tar archives.
#![no_main]

use cs_invoker_pool_fuzz::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::bundle::check(data);
});
