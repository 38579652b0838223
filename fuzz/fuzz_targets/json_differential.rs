//! Our strict JSON reading against serde_json's last-wins one: the same
//! `model` and `models` wherever ours accepts (`src/gate/body.rs`,
//! `fuzz::json_differential`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::body::fuzz::json_differential(data);
});
