//! Learning the model ids the upstream offers from the lists the gates
//! forward anyway (see `store::known`): which responses teach, and how a
//! streamed list is copied while it passes.
//!
//! - Ingress: Open WebUI's `/api/models` (and `/api/v1/models`) as it
//!   answered an Open WebUI admin. Open WebUI filters the list for each
//!   user by its own access control, so a member's list is a per-user
//!   subset; learning it would make the known set flap with whoever asked
//!   last. An admin's list is whole (unless Open WebUI's
//!   `BYPASS_ADMIN_ACCESS_CONTROL` is off).
//! - Egress: the model API's own `GET /models` (Open WebUI calls it on the
//!   base URL it was given: `/models`, or under `/v1`, `/api/v1`).
//!
//! Only a success that parses as `{"data": [{"id": ...}]}` teaches; the
//! recorder decides how often (once per interval per source), and nothing
//! here delays or fails the response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Response};
use http_body::{Frame, SizeHint};

use std::sync::Arc;

use super::body::{self, Body, BoxError};
use crate::gate::decode::decode_body;
use crate::gate::listed_ids::listed_ids;
use crate::metrics::{Gate, KnownListResult, Metrics};
use crate::store::known::{KnownSource, KnownTicket, RecordResult};
use crate::store::AccessStore;

/// The largest list copied to learn from. Lists are a few hundred KB to a
/// few MB (OpenRouter's, with descriptions); a bigger body is just not
/// learned. One copy per source at a time, so this bounds the memory too.
pub const MAX_LEARNED_LIST_BYTES: usize = 16 * 1024 * 1024;

/// Counts every looked-at list in `metrics`
/// (`modelgate_known_model_lists_total`). Either gate may install it; the
/// store keeps the first.
pub fn count_into(store: &AccessStore, metrics: &Arc<Metrics>) {
    let metrics = Arc::clone(metrics);
    store
        .known_recorder()
        .observe(Arc::new(move |source, result| {
            let gate = match source {
                KnownSource::Ingress => Gate::Ingress,
                KnownSource::Egress => Gate::Egress,
            };
            let result = match result {
                RecordResult::Recorded => KnownListResult::Recorded,
                RecordResult::Unchanged => KnownListResult::Unchanged,
                RecordResult::Failed => KnownListResult::Failed,
            };
            metrics.record_known_model_list(gate, result);
        }));
}

/// The copy's cap: [`MAX_LEARNED_LIST_BYTES`], or less when the operator
/// allows smaller lists (`access.max_list_bytes`).
pub fn learn_cap(config: &crate::config::Config) -> usize {
    config
        .access
        .max_list_bytes
        .get()
        .min(MAX_LEARNED_LIST_BYTES)
}

/// Whether Open WebUI's answer to `path` (routing form, no query) teaches
/// the ingress's list when it was asked by an Open WebUI admin.
pub fn ingress_teaches(path: &str, admin: bool) -> bool {
    admin && matches!(path, "/api/models" | "/api/v1/models")
}

/// Whether the model API's answer to this egress call is its model list.
pub fn egress_teaches(method: &Method, path: &str) -> bool {
    method == Method::GET
        && matches!(
            path.trim_end_matches('/'),
            "/models" | "/v1/models" | "/api/v1/models"
        )
}

/// An already buffered and decoded list (the ingress filters it anyway);
/// `fingerprint` is its hash when the caller has one, so the same body is
/// not parsed twice. Over [`MAX_LEARNED_LIST_BYTES`] it is not learned,
/// like a streamed one.
pub fn offer_buffered(
    store: &AccessStore,
    source: KnownSource,
    fingerprint: Option<u128>,
    body: Bytes,
) {
    if body.len() > MAX_LEARNED_LIST_BYTES {
        return;
    }
    if let Some(ticket) = store.known_recorder().begin(source, fingerprint) {
        ticket.record_with(move || listed_ids(&body));
    }
}

/// The response with its body copied as it streams, to be learned from
/// once it ended whole; the client gets every frame as soon as it arrives.
/// An error status, a recorder not wanting a list now, or several
/// `Content-Encoding` headers leave the response untouched.
pub fn learn_while_streaming(
    store: &AccessStore,
    source: KnownSource,
    resp: Response<Body>,
    cap: usize,
) -> Response<Body> {
    if !resp.status().is_success() {
        return resp;
    }
    let mut encodings = resp.headers().get_all(header::CONTENT_ENCODING).iter();
    let encoding = encodings.next().cloned();
    if encodings.next().is_some() {
        return resp;
    }
    let Some(ticket) = store.known_recorder().begin(source, None) else {
        return resp;
    };
    let (parts, inner) = resp.into_parts();
    let tee = Tee {
        inner,
        copy: BytesMut::new(),
        cap,
        encoding,
        ticket: Some(ticket),
    };
    Response::from_parts(parts, body::boxed(tee))
}

/// Passes frames through untouched, keeping a copy of the data up to `cap`.
struct Tee {
    inner: Body,
    copy: BytesMut,
    cap: usize,
    encoding: Option<HeaderValue>,
    /// Taken when the copy is handed on, or given up (too large, failed).
    ticket: Option<KnownTicket>,
}

impl Tee {
    fn give_up(&mut self) {
        self.ticket = None;
        self.copy = BytesMut::new();
    }

    fn finish(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let bytes = std::mem::take(&mut self.copy).freeze();
        let (encoding, cap) = (self.encoding.take(), self.cap);
        ticket.record_with(move || {
            let decoded = decode_body(encoding.as_ref(), &bytes, cap).ok()?;
            listed_ids(&decoded)
        });
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Every field is Unpin (the inner body is a Pin<Box<..>>).
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if this.ticket.is_some() => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() > this.cap {
                        this.give_up();
                    } else {
                        this.copy.extend_from_slice(data);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.give_up(),
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // hyper may drop a body whose end it knows from its length without
        // polling the final `None`; that body still arrived whole.
        if http_body::Body::is_end_stream(&self.inner) {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_responses_teach() {
        assert!(ingress_teaches("/api/models", true));
        assert!(ingress_teaches("/api/v1/models", true));
        assert!(!ingress_teaches("/api/models", false));
        assert!(!ingress_teaches("/api/models/base", true));
        assert!(!ingress_teaches("/openai/models", true));
        for path in ["/models", "/models/", "/v1/models", "/api/v1/models"] {
            assert!(egress_teaches(&Method::GET, path), "{path}");
        }
        assert!(!egress_teaches(&Method::POST, "/models"));
        assert!(!egress_teaches(&Method::GET, "/models/openai/gpt-4o"));
        assert!(!egress_teaches(&Method::GET, "/chat/completions"));
    }
}
