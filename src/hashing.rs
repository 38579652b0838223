//! The hasher of the request path's caches and maps.
//!
//! std's `RandomState` (SipHash-1-3) was ~3% of a proxied call: every
//! request hashes a session token or Open WebUI's signed user header
//! (150-300 bytes) for the verified-token memo, then a user id, organization
//! ids and body keys. aHash is several times faster on such keys and, keyed
//! per instance, keeps what SipHash gave: keys a client chooses (API keys,
//! which are cached even when unknown, tokens, body keys) cannot be made to
//! collide without the key.

use std::hash::BuildHasher;

/// A keyed fast hasher for `HashMap`, `HashSet` and moka caches. Every
/// instance, `Default` included, has its own random keys: aHash's own
/// `Default` without a random source of its own falls back to fixed keys.
#[derive(Clone, Debug)]
pub struct Keyed(ahash::RandomState);

impl Keyed {
    /// Keys drawn through std's `RandomState` (seeded from the OS once per
    /// thread, varied per instance), so aHash needs no random source.
    pub fn new() -> Keyed {
        let seeds = std::hash::RandomState::new();
        Keyed(ahash::RandomState::with_seeds(
            seeds.hash_one(0u8),
            seeds.hash_one(1u8),
            seeds.hash_one(2u8),
            seeds.hash_one(3u8),
        ))
    }
}

impl Default for Keyed {
    fn default() -> Keyed {
        Keyed::new()
    }
}

impl BuildHasher for Keyed {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hasher_is_keyed_differently() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6InUxIn0.sig";
        let a = Keyed::new();
        assert_eq!(a.hash_one(token), a.hash_one(token));
        assert_eq!(a.hash_one(token), a.clone().hash_one(token));
        assert_ne!(a.hash_one(token), Keyed::new().hash_one(token));
        assert_ne!(a.hash_one(token), Keyed::default().hash_one(token));
    }
}
