//! Frames a (possibly hostile) child sends to the supervisor (`FromChild`), read with the
//! supervisor's limit.
#![no_main]

use cs_invoker_pool_fuzz::alloc::Counting;
use libfuzzer_sys::fuzz_target;
use sandbox_proto::protocol::FromChild;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::frame::check::<FromChild>(data);
});
