//! `cs.invoke` task payloads: a `cs.envelope.v1` envelope around a `cs.invoke.v1` request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cs_invoker_pool_fuzz::request::check(data);
});
