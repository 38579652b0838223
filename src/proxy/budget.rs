//! The memory budget of buffered request bodies, shared by every request of
//! a gate (`limits.max_buffered_body_bytes`). Each body's cap bounds one
//! request; this bounds them all at once, so many concurrent large bodies
//! cannot take the process's memory with them. A body that does not fit is
//! refused with 503 at once, never queued.
//!
//! The budget is a semaphore counted in KiB (tokio's `acquire_many` takes a
//! `u32`); a body reserves its declared length before reading, or grows its
//! reservation chunk by chunk when no length was declared. The reservation
//! travels with the bytes into the forwarded request and is given back when
//! that body is dropped.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Refusal;
use crate::gate::body::check_content_type;
use crate::proxy::body::{self, Body};

const UNIT: usize = 1024;

/// The budget; cheap to clone.
#[derive(Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
}

/// Bytes read within the budget, and their share of it.
pub struct Buffered {
    pub bytes: Bytes,
    reservation: Option<OwnedSemaphorePermit>,
}

impl Buffered {
    /// The bytes as a request body that holds the reservation until it is
    /// dropped (sent upstream, or abandoned).
    pub fn into_body(self) -> Body {
        let reservation = self.reservation;
        body::full(self.bytes)
            .map_frame(move |frame| {
                let _held = &reservation;
                frame
            })
            .boxed()
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget {
            units: Arc::new(Semaphore::new(units(bytes).min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes of budget not reserved right now.
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits().saturating_mul(UNIT)
    }

    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Refusal> {
        let n = u32::try_from(units(bytes)).map_err(|_| Refusal::BodyBudgetExhausted)?;
        self.units
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Refusal::BodyBudgetExhausted)
    }

    /// Reads a guarded JSON body within its `cap` and the budget: refused
    /// before reading when `Content-Length` already says too much.
    pub async fn read_json(
        &self,
        cap: usize,
        headers: &HeaderMap,
        mut body: Body,
    ) -> Result<Buffered, Refusal> {
        check_content_type(headers)?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(Refusal::BodyTooLarge { cap });
        }
        // A declared length is reserved whole before a byte is read; hyper
        // refuses a body that runs past it. Without one the reservation
        // grows with what arrives.
        let declared = declared.and_then(|n| usize::try_from(n).ok());
        let mut reservation = self.reserve(declared.unwrap_or(0))?;
        let mut reserved = units(declared.unwrap_or(0)) * UNIT;
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(cap));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Refusal::BodyUnreadable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > cap {
                return Err(Refusal::BodyTooLarge { cap });
            }
            if len > reserved {
                // Whole units, so most chunks fit in what the last one
                // reserved.
                let more = units(len - reserved) * UNIT;
                reservation.merge(self.reserve(more)?);
                reserved += more;
            }
            buf.extend_from_slice(&data);
        }
        Ok(Buffered {
            bytes: buf.freeze(),
            reservation: Some(reservation),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn json_headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(n) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        h
    }

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(c))));
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn a_body_holds_its_share_until_its_request_body_is_dropped() {
        let budget = BodyBudget::new(4 * UNIT);
        let big = vec![b' '; 3 * UNIT];
        let held = budget
            .read_json(1 << 20, &json_headers(Some(big.len())), body::full(big))
            .await
            .unwrap();
        assert_eq!(budget.available_bytes(), UNIT);
        // A second body that would pass the budget is refused, not queued.
        let refused = budget
            .read_json(
                1 << 20,
                &json_headers(Some(2 * UNIT)),
                body::full(vec![b' '; 2 * UNIT]),
            )
            .await;
        assert!(matches!(refused, Err(Refusal::BodyBudgetExhausted)));
        let forwarded = held.into_body();
        assert_eq!(budget.available_bytes(), UNIT);
        drop(forwarded);
        assert_eq!(budget.available_bytes(), 4 * UNIT);
    }

    #[tokio::test]
    async fn an_undeclared_length_grows_its_share_and_is_refused_past_the_budget() {
        let budget = BodyBudget::new(2 * UNIT);
        let chunk: &'static [u8] = &[b' '; 1000];
        let ok = budget
            .read_json(1 << 20, &json_headers(None), chunked(vec![b"{}", chunk]))
            .await
            .unwrap();
        assert_eq!(ok.bytes.len(), 1002);
        drop(ok);
        assert_eq!(budget.available_bytes(), 2 * UNIT);
        let too_much = budget
            .read_json(
                1 << 20,
                &json_headers(None),
                chunked(vec![chunk, chunk, chunk]),
            )
            .await;
        assert!(matches!(too_much, Err(Refusal::BodyBudgetExhausted)));
        assert_eq!(
            budget.available_bytes(),
            2 * UNIT,
            "a refusal keeps nothing"
        );
    }
}
