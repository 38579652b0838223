//! Filtered model lists, reused across the users of one organization set.
//!
//! Filtering an OpenRouter-sized list costs ~330 µs of CPU; every member of
//! an organization gets the same answer for the same upstream list. An entry
//! is keyed by the upstream body's fingerprint, the shape, the user's
//! organizations and the access data's generation, and is only stored when
//! the generation did not move while it was computed — so nothing computed
//! from access data older than the key's generation can ever be served.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

use crate::gate::shape::ListShape;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    body: u128,
    shape: ListShape,
    generation: u64,
    organizations: Arc<[String]>,
}

impl ListKey {
    /// `organizations` must be the user's complete, sorted list of active
    /// organizations: two users with the same list may use the same models.
    pub fn new(
        body: &[u8],
        shape: ListShape,
        generation: u64,
        organizations: &[String],
    ) -> ListKey {
        ListKey {
            body: xxhash_rust::xxh3::xxh3_128(body),
            shape,
            generation,
            organizations: organizations.into(),
        }
    }

    /// The upstream body's hash: a new one is a cheap sign the list changed
    /// (`proxy::learn`).
    pub fn fingerprint(&self) -> u128 {
        self.body
    }
}

/// A filtered list body; `None` for a single model the user may not see.
#[derive(Clone, Debug)]
pub struct CachedList {
    pub body: Option<Bytes>,
    pub removed: usize,
}

#[derive(Clone)]
pub struct ListCache {
    cache: Cache<ListKey, CachedList>,
}

impl ListCache {
    /// Bounded by the bytes it holds.
    pub fn new(max_bytes: u64, ttl: Duration) -> ListCache {
        let cache = Cache::builder()
            .weigher(|k: &ListKey, v: &CachedList| {
                let size = v.body.as_ref().map_or(0, Bytes::len)
                    + 64
                    + k.organizations.iter().map(String::len).sum::<usize>();
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .max_capacity(max_bytes)
            .time_to_live(ttl)
            .build();
        ListCache { cache }
    }

    pub async fn get(&self, key: &ListKey) -> Option<CachedList> {
        self.cache.get(key).await
    }

    pub async fn insert(&self, key: ListKey, value: CachedList) {
        self.cache.insert(key, value).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_separate_bodies_orgs_and_generations() {
        let orgs = vec!["a".to_owned()];
        let k = ListKey::new(b"{\"data\":[]}", ListShape::Data, 1, &orgs);
        assert_eq!(k, ListKey::new(b"{\"data\":[]}", ListShape::Data, 1, &orgs));
        assert_ne!(
            k,
            ListKey::new(b"{\"data\":[1]}", ListShape::Data, 1, &orgs)
        );
        assert_ne!(k, ListKey::new(b"{\"data\":[]}", ListShape::Data, 2, &orgs));
        assert_ne!(
            k,
            ListKey::new(b"{\"data\":[]}", ListShape::Items, 1, &orgs)
        );
        assert_ne!(
            k,
            ListKey::new(
                b"{\"data\":[]}",
                ListShape::Data,
                1,
                &["a".into(), "b".into()]
            )
        );
        let cache = ListCache::new(1 << 20, Duration::from_secs(60));
        cache
            .insert(
                k.clone(),
                CachedList {
                    body: Some(Bytes::from_static(b"x")),
                    removed: 2,
                },
            )
            .await;
        assert_eq!(cache.get(&k).await.unwrap().removed, 2);
    }
}
