//! The rewrite leaf for model lists: decode, filter (or reuse the same list
//! filtered for the same organizations), re-frame. A body that has the
//! list's shape but cannot be filtered is never passed on (502), whatever
//! its status; an error response that names no models passes unchanged.
//! The body must arrive whole within `timeouts.list_body` of its headers
//! (504 otherwise): it is buffered while its caller holds a list-filter
//! slot.

use std::collections::BTreeMap;
use std::time::Duration;

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::error::Refusal;
use crate::gate::filter::{decode_body, filter_list, FilterError, Filtered};
use crate::gate::shape::ListShape;
use crate::metrics::Metrics;
use crate::proxy::body::{boxed, collect_limited, full, Body, BoxError, CollectError};
use crate::proxy::guard::{unavailable, Identity};
use crate::proxy::inspect::INLINE_PARSE_BYTES;
use crate::proxy::learn::offer_buffered;
use crate::proxy::list_cache::{CachedList, ListCache, ListKey};
use crate::store::known::KnownSource;
use crate::store::AccessStore;

/// What filtering a list needs besides the response. `generation` is the
/// access data's generation read before the user was identified, so a list
/// computed from older data is never cached under a newer key.
pub struct ListFilter<'a> {
    pub store: &'a AccessStore,
    pub metrics: &'a Metrics,
    pub cache: &'a ListCache,
    pub generation: u64,
    pub cap: usize,
    /// From the response's headers to the end of its body.
    pub read_timeout: Duration,
    /// The upstream's list (before filtering) teaches the known model ids
    /// (`proxy::learn`).
    pub teaches: bool,
}

pub async fn filter_response(
    lf: ListFilter<'_>,
    who: &Identity,
    shape: ListShape,
    resp: Response<Body>,
) -> Result<Response<Body>, Refusal> {
    let ListFilter {
        store,
        metrics,
        cache,
        generation,
        cap,
        read_timeout,
        teaches,
    } = lf;
    let (mut parts, body) = resp.into_parts();
    let bytes = match tokio::time::timeout(read_timeout, collect_limited(body, cap)).await {
        Err(_) => {
            tracing::warn!(
                timeout_secs = read_timeout.as_secs(),
                "upstream model list body did not arrive in time"
            );
            return Err(Refusal::UpstreamTimeout);
        }
        Ok(Ok(b)) => b,
        Ok(Err(CollectError::TooLarge)) => {
            return Err(Refusal::UnfilterableList(FilterError::TooLarge))
        }
        Ok(Err(CollectError::Body(e))) => return Err(Refusal::ListUnreadable(e.to_string())),
    };
    let encodings: Vec<&HeaderValue> = parts
        .headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .collect();
    if encodings.len() > 1 {
        return Err(Refusal::UnfilterableList(FilterError::UnsupportedEncoding(
            "several Content-Encoding headers".into(),
        )));
    }
    let decoded = match decode_body(encodings.first().copied(), &bytes, cap)? {
        Cow::Borrowed(_) => bytes.clone(),
        Cow::Owned(d) => Bytes::from(d),
    };
    if !parts.status.is_success() && !names_models(shape, &decoded) {
        // An error that lists no models reaches the client as sent.
        return Ok(Response::from_parts(parts, full(bytes)));
    }
    // Only lists every member of the same organizations is sent alike are
    // shared: a per-user document (a chat of megabytes) is not even hashed.
    let key = shape
        .cacheable()
        .then(|| ListKey::new(&decoded, shape, generation, &who.access.organizations));
    if teaches && parts.status.is_success() {
        let fingerprint = key.as_ref().map(ListKey::fingerprint);
        offer_buffered(store, KnownSource::Ingress, fingerprint, decoded.clone());
    }
    let cached = match &key {
        Some(key) => cache.get(key).await,
        None => None,
    };
    let filtered = match cached {
        Some(hit) => hit,
        None => {
            let graph = store.model_graph().await.map_err(unavailable)?;
            let access = who.access.clone();
            let computed = filter_off_thread(decoded, move |body| {
                let mut permitted = |id: &str| access.decide(&graph, id).lets_through();
                filter_list(body, shape, &mut permitted)
            })
            .await?;
            let computed = match computed {
                Filtered::Forbidden => CachedList {
                    body: None,
                    removed: 1,
                },
                Filtered::List { body, removed, .. } => CachedList {
                    body: Some(Bytes::from(body)),
                    removed,
                },
            };
            // Only an answer computed entirely at `generation` may be
            // shared under it.
            if let Some(key) = key.filter(|_| store.generation() == generation) {
                cache.insert(key, computed.clone()).await;
            }
            computed
        }
    };
    metrics.record_list_rewrite(shape, filtered.removed as u64);
    let Some(body) = filtered.body else {
        return Err(Refusal::ModelHidden);
    };
    let h = &mut parts.headers;
    h.remove(header::CONTENT_ENCODING);
    h.remove(header::ETAG);
    h.remove(header::LAST_MODIFIED);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    // The list depends on who asked: no shared cache may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(Response::from_parts(parts, full(body)))
}

/// Filters inline when the body is small and on a blocking thread when it
/// is large (a shared chat with inline images can be tens of MiB), so a
/// long parse never holds an async worker thread.
async fn filter_off_thread<F>(body: Bytes, filter: F) -> Result<Filtered, Refusal>
where
    F: FnOnce(&[u8]) -> Result<Filtered, FilterError> + Send + 'static,
{
    if body.len() <= INLINE_PARSE_BYTES {
        return Ok(filter(&body)?);
    }
    let filtered = tokio::task::spawn_blocking(move || filter(&body))
        .await
        .map_err(|e| Refusal::ListUnreadable(format!("filter task failed: {e}")))??;
    Ok(filtered)
}

/// Whether the upstream streams the response as one JSON document per line.
pub fn is_ndjson(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-ndjson"))
}

/// Redacts an NDJSON response line by line while it streams (`shape` is
/// each line's): a task reads the upstream body, splits it at newlines,
/// redacts each line (a large one on a blocking thread) and hands it on. A
/// line that cannot be checked, or longer than `line_cap`, ends the stream
/// with an error: the client sees a cut-off export, never an unredacted
/// line.
pub async fn redact_lines(
    store: &AccessStore,
    metrics: std::sync::Arc<Metrics>,
    who: &Identity,
    shape: ListShape,
    resp: Response<Body>,
    line_cap: usize,
) -> Result<Response<Body>, Refusal> {
    let (mut parts, mut body) = resp.into_parts();
    if parts.headers.contains_key(header::CONTENT_ENCODING) {
        return Err(Refusal::UnfilterableList(FilterError::UnsupportedEncoding(
            "a compressed NDJSON stream".into(),
        )));
    }
    let graph = store.model_graph().await.map_err(unavailable)?;
    let access = who.access.clone();
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::ETAG);
    h.remove(header::LAST_MODIFIED);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut removed = 0;
        let mut ended = false;
        loop {
            while let Some(end) = memchr::memchr(b'\n', &buf).or(ended.then_some(buf.len())) {
                if ended && buf.is_empty() {
                    break;
                }
                let line = buf.split_to((end + 1).min(buf.len())).freeze();
                let (graph, access) = (graph.clone(), access.clone());
                let out = redact_line(line, move |doc| {
                    let mut permitted = |id: &str| access.decide(&graph, id).lets_through();
                    filter_list(doc, shape, &mut permitted)
                })
                .await;
                let frame = match out {
                    Ok((line, r)) => {
                        removed += r;
                        Ok(Frame::data(line))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an NDJSON line that cannot be checked ends the stream");
                        Err(BoxError::from(e.to_string()))
                    }
                };
                let failed = frame.is_err();
                if tx.send(frame).await.is_err() || failed {
                    return;
                }
            }
            if ended {
                metrics.record_list_rewrite(shape, removed as u64);
                return;
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                        if buf.len() > line_cap && memchr::memchr(b'\n', &buf).is_none() {
                            let _ = tx
                                .send(Err("an NDJSON line exceeds the size cap".into()))
                                .await;
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                None => ended = true,
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(Response::from_parts(parts, boxed(StreamBody::new(stream))))
}

/// One NDJSON line redacted (its newline kept); blank lines pass.
async fn redact_line<F>(line: Bytes, filter: F) -> Result<(Bytes, usize), Refusal>
where
    F: FnOnce(&[u8]) -> Result<Filtered, FilterError> + Send + 'static,
{
    let text_end = line
        .iter()
        .rposition(|b| !b"\r\n".contains(b))
        .map_or(0, |i| i + 1);
    if line[..text_end].iter().all(u8::is_ascii_whitespace) {
        return Ok((line, 0));
    }
    let newline = line.slice(text_end..);
    match filter_off_thread(line.slice(..text_end), filter).await? {
        Filtered::List { body, removed, .. } => {
            let mut out = BytesMut::with_capacity(body.len() + newline.len());
            out.extend_from_slice(&body);
            out.extend_from_slice(&newline);
            Ok((out.freeze(), removed))
        }
        Filtered::Forbidden => Err(Refusal::ModelHidden),
    }
}

/// Whether a body has the shape's model-bearing part: the list member, the
/// array, the redacted fields, the single model's `id`. Only an error
/// response is asked; one that has it is filtered like a success (and
/// refused when it cannot be).
fn names_models(shape: ListShape, body: &[u8]) -> bool {
    let members = |names: &[&str]| {
        serde_json::from_slice::<BTreeMap<String, serde::de::IgnoredAny>>(body)
            .is_ok_and(|m| names.iter().any(|n| m.contains_key(*n)))
    };
    match shape {
        ListShape::Data => members(&["data"]),
        ListShape::OllamaModels => members(&["models"]),
        ListShape::Items => members(&["items"]),
        ListShape::BareList => serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body).is_ok(),
        ListShape::AppConfig => members(&["default_models", "default_pinned_models", "ui"]),
        ListShape::TaskConfig => members(&["TASK_MODEL", "TASK_MODEL_EXTERNAL"]),
        ListShape::Usage => members(&["model_ids"]),
        ListShape::Single => members(&["id"]),
        ListShape::Chat => members(&["chat"]),
        ListShape::ChannelMessage => members(&["meta", "content", "reply_to_message"]),
        ListShape::Folder => members(&["data"]),
        ListShape::UserSettings => members(&["ui"]),
        ListShape::SearchResults
        | ListShape::ChatStats
        | ListShape::ChatStatsExports
        | ListShape::Feedbacks => members(&["items"]),
        ListShape::ChatStatsExport => members(&["stats", "chat"]),
        ListShape::UserUsage => members(&["heatmap", "top_models", "insights"]),
        ListShape::Feedback => members(&["data", "meta", "snapshot"]),
        ListShape::Chats | ListShape::ChannelMessages | ListShape::Folders | ListShape::Groups => {
            serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_name_models_only_in_the_shape_s_own_place() {
        assert!(names_models(ListShape::Data, br#"{"data":[{"id":"x"}]}"#));
        assert!(!names_models(ListShape::Data, br#"{"detail":"x"}"#));
        assert!(!names_models(ListShape::Data, b"Internal Server Error"));
        assert!(names_models(ListShape::BareList, br#"[]"#));
        assert!(!names_models(
            ListShape::Single,
            br#"{"detail":"Model not found"}"#
        ));
        assert!(names_models(ListShape::Single, br#"{"id":"m"}"#));
        assert!(names_models(
            ListShape::TaskConfig,
            br#"{"TASK_MODEL":"m"}"#
        ));
    }
}
