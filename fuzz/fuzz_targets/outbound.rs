//! The egress body reader never panics and names exactly the models a
//! last-wins JSON reader finds (`src/gate/outbound.rs`, `fuzz::outbound`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::outbound::fuzz::outbound(data);
});
