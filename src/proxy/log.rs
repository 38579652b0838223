//! The log phase: records the outcome now, and the byte count and total
//! duration when the body has been streamed to the end (or abandoned): one
//! structured line per request, and the request metrics at the same moment.

use std::sync::Arc;
use std::time::Duration;

use http::Response;

use super::body::{self, Body, Finish, Metered};
use super::Ctx;
use crate::metrics::{GaugeGuard, Metrics};

pub(super) fn log_phase(
    mut ctx: Ctx,
    resp: Response<Body>,
    metrics: Arc<Metrics>,
    in_flight: GaugeGuard,
) -> Response<Body> {
    ctx.status = resp.status();
    let (parts, body) = resp.into_parts();
    let log = AccessLog {
        ctx,
        metrics,
        _in_flight: in_flight,
    };
    Response::from_parts(parts, body::boxed(Metered::new(body, log)))
}

struct AccessLog {
    ctx: Ctx,
    metrics: Arc<Metrics>,
    /// Counts the request as in flight until its body is done.
    _in_flight: GaugeGuard,
}

impl Finish for AccessLog {
    fn finish(&mut self, bytes: u64, complete: bool) {
        let c = &self.ctx;
        self.metrics
            .record_request(c.gate, c.route, c.status, c.start.elapsed());
        let duration_ms = millis(c.start.elapsed());
        let upstream_ms = c.upstream_time.map(millis);
        tracing::info!(
            target: "modelgate::access",
            gate = c.gate.as_str(),
            request_id = c.request_id.to_str().unwrap_or("-"),
            method = %c.method,
            path = %c.path,
            status = c.status.as_u16(),
            route = c.route.as_str(),
            duration_ms,
            upstream_ms,
            bytes,
            complete,
            peer = %c.peer.ip(),
            user = c.user.as_deref(),
            decision = c.verdict.as_ref().map(tracing::field::display),
            error = c.refusal.as_ref().map(tracing::field::display),
            "request"
        );
    }
}

/// Milliseconds to the microsecond (3 decimals): `12.346`, not
/// `12.345678901`.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        assert_eq!(millis(Duration::from_nanos(12_345_678)), 12.346);
        assert_eq!(millis(Duration::from_nanos(400)), 0.0);
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
        assert_eq!(millis(Duration::from_micros(1)).to_string(), "0.001");
    }
}
