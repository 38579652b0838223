//! Route classification of any method and raw path never panics and depends
//! only on the decoded path (`src/gate/routes.rs`, `fuzz::routes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::routes::fuzz::routes(data);
});
