//! Credential extraction from arbitrary headers never panics, and the token
//! it settles on is one the other readers agree on
//! (`src/gate/credential.rs`, `fuzz::credential`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::credential::fuzz::credential(data);
});
