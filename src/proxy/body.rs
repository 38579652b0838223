//! The body type modelgate hands to hyper in both directions, and the
//! wrapper that counts bytes and finishes the request's log record when the
//! body ends — for a streamed response that is after its last byte, not when
//! the headers were sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed streaming body: upstream bodies pass through it unbuffered.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// Why [`collect_limited`] stopped.
#[derive(Debug)]
pub enum CollectError {
    TooLarge,
    Body(BoxError),
}

/// Buffers at most `cap` bytes of `body`; stops reading as soon as the cap
/// is passed. (Hand-rolled rather than `http_body_util::Limited`, whose
/// generic error conversion defeats Send inference in the proxy's phases.)
pub async fn collect_limited(mut body: Body, cap: usize) -> Result<Bytes, CollectError> {
    // Sized from the length when known, so a 300 KB list is not grown by
    // doubling into a 512 KB buffer.
    let hint = usize::try_from(http_body::Body::size_hint(&body).lower()).unwrap_or(0);
    let mut buf = bytes::BytesMut::with_capacity(hint.min(cap));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(CollectError::Body)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(CollectError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Called once when a [`Metered`] body is finished or dropped.
pub trait Finish: Send + Sync + Unpin + 'static {
    /// `bytes` is what passed through; `complete` is false when the body was
    /// dropped or failed before its end (client went away, upstream reset).
    fn finish(&mut self, bytes: u64, complete: bool);
}

/// Passes frames through untouched, counting data bytes.
pub struct Metered<F: Finish> {
    inner: Body,
    bytes: u64,
    done: bool,
    finish: Option<F>,
}

impl<F: Finish> Metered<F> {
    pub fn new(inner: Body, finish: F) -> Self {
        Self {
            inner,
            bytes: 0,
            done: false,
            finish: Some(finish),
        }
    }

    fn complete(&mut self, ok: bool) {
        if let Some(mut f) = self.finish.take() {
            f.finish(self.bytes, ok);
        }
    }
}

impl<F: Finish> http_body::Body for Metered<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Every field is Unpin (the inner body is a Pin<Box<..>>).
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.complete(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                this.complete(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: Finish> Drop for Metered<F> {
    fn drop(&mut self) {
        // hyper may drop a body whose end it already knows from its length
        // without polling the final `None`; that is still a complete body.
        let ok = self.done || http_body::Body::is_end_stream(&self.inner);
        self.complete(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<(u64, bool)>>>);
    impl Finish for Record {
        fn finish(&mut self, bytes: u64, complete: bool) {
            self.0.lock().unwrap().push((bytes, complete));
        }
    }

    #[tokio::test]
    async fn counts_bytes_and_finishes_once() {
        let rec = Record::default();
        let body = Metered::new(full("hello"), rec.clone());
        let out = BodyExt::collect(body).await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello");
        assert_eq!(*rec.0.lock().unwrap(), vec![(5, true)]);
    }

    #[tokio::test]
    async fn dropped_early_is_incomplete() {
        let rec = Record::default();
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_from(rx));
        drop(Metered::new(boxed(stream), rec.clone()));
        assert_eq!(*rec.0.lock().unwrap(), vec![(0, false)]);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
