//! Frames the supervisor sends to a child (`ToChild`), read with the child's limit.
#![no_main]

use cs_invoker_pool_fuzz::alloc::Counting;
use libfuzzer_sys::fuzz_target;
use sandbox_proto::protocol::ToChild;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::frame::check::<ToChild>(data);
});
