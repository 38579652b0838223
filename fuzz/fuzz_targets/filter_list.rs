//! Model-list filtering and response decoding never panic, and a filtered
//! list filters to itself (`src/gate/filter.rs`, `fuzz::filter`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::filter::fuzz::filter(data);
});
