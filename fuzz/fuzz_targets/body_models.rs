//! Strict JSON parsing and model extraction of guarded request bodies never
//! panic, whatever the bytes (`src/gate/body.rs`, `fuzz::body_models`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::body::fuzz::body_models(data);
});
