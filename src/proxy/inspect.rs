//! The model ids a guarded request body makes the server call (arena
//! candidates included). The body itself is read within its cap and the
//! memory budget by `proxy::budget`.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::error::Refusal;
use crate::gate::body::{requested_from_bytes, top_level_model_from_bytes, BodyError};
use crate::gate::routes::CallSpec;
use crate::proxy::guard::unavailable;
use crate::store::AccessStore;

/// Bodies larger than this are parsed on a blocking thread. An ordinary
/// body parses at about 1 ms per MiB, but an adversarial one (millions of
/// distinct keys) at about 10 ms per MiB (`benches/adversarial.rs`), and an
/// async worker thread held that long stalls every other client it serves;
/// at this size the worst case holds one for well under a millisecond.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Runs a body parser inline for small bodies and on a blocking thread for
/// large ones.
pub async fn parse_off_thread<T, F>(bytes: Bytes, parse: F) -> Result<T, Refusal>
where
    T: Send + 'static,
    F: FnOnce(&[u8]) -> Result<T, BodyError> + Send + 'static,
{
    if bytes.len() <= INLINE_PARSE_BYTES {
        return parse(&bytes).map_err(Refusal::from);
    }
    tokio::task::spawn_blocking(move || parse(&bytes))
        .await
        .map_err(|e| Refusal::BodyUnreadable(format!("parser task failed: {e}")))?
        .map_err(Refusal::from)
}

/// Model ids the request makes the upstream call: those it names, the
/// models that wrote the channel messages it replies to (read from the
/// store), arena candidates.
pub async fn requested_models(
    config: &Config,
    store: &AccessStore,
    bytes: Bytes,
    spec: Arc<CallSpec>,
) -> Result<Vec<String>, Refusal> {
    let requested = parse_off_thread(bytes, move |b| requested_from_bytes(b, &spec)).await?;
    let mut models = requested.models;
    for reply_to in &requested.replies {
        // Boxed: replies are rare, and a database read's future inline
        // would grow every guarded request's.
        let model = Box::pin(store.message_model(reply_to))
            .await
            .map_err(unavailable)?;
        if let Some(model) = model.filter(|m| !models.contains(m)) {
            models.push(model);
        }
    }
    expand_arena(config, &mut models);
    Ok(models)
}

/// The defence-in-depth read: the top-level `model` of a JSON body on a
/// route that is not in the table.
pub async fn unlisted_model(config: &Config, bytes: Bytes) -> Result<Vec<String>, Refusal> {
    let model = parse_off_thread(bytes, top_level_model_from_bytes).await?;
    let mut models: Vec<String> = model.into_iter().collect();
    expand_arena(config, &mut models);
    Ok(models)
}

/// An arena model calls one of its candidates at random: each must be
/// permitted, besides the arena id itself.
fn expand_arena(config: &Config, models: &mut Vec<String>) {
    let arena = &config.access.arena_models;
    let extra: Vec<String> = models
        .iter()
        .filter_map(|m| arena.get(m))
        .flatten()
        .filter(|c| !models.contains(c))
        .cloned()
        .collect();
    models.extend(extra);
}
