//! Session and forwarded-user JWTs: only tokens signed with the key verify,
//! and their claims are Open WebUI's reading (`src/gate/jwt.rs`,
//! `fuzz::jwt`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelgate::gate::jwt::fuzz::jwt(data);
});
