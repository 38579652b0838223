//! Reading a guarded request body: JSON only, uncompressed, within its cap,
//! and the model ids it makes the server call (arena candidates included).

use bytes::Bytes;
use http::{header, HeaderMap};

use crate::config::Config;
use crate::error::Refusal;
use crate::gate::body::{
    check_content_type, requested_from_bytes, top_level_model_from_bytes, BodyError,
};
use crate::gate::routes::CallSpec;
use crate::proxy::body::{collect_limited, Body, CollectError};
use crate::proxy::guard::unavailable;
use crate::store::AccessStore;

/// Reads a guarded request body, refused before reading when
/// `Content-Length` already says too much.
pub async fn read_json_body(cap: usize, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(Refusal::BodyTooLarge { cap });
    }
    match collect_limited(body, cap).await {
        Ok(bytes) => Ok(bytes),
        Err(CollectError::TooLarge) => Err(Refusal::BodyTooLarge { cap }),
        Err(CollectError::Body(e)) => Err(Refusal::BodyUnreadable(e.to_string())),
    }
}

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
    spec: CallSpec,
) -> Result<Vec<String>, Refusal> {
    let requested = parse_off_thread(bytes, move |b| requested_from_bytes(b, &spec)).await?;
    let mut models = requested.models;
    for reply_to in &requested.replies {
        let model = store.message_model(reply_to).await.map_err(unavailable)?;
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
