//! HTTP Upgrade (WebSocket) passthrough: once both sides agreed to switch
//! protocols, bytes are copied both ways until either side closes.

use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

use crate::metrics::GaugeGuard;

/// Joins the client's and the upstream's upgraded connections. Tracked so a
/// graceful shutdown can wait for open tunnels within its drain time.
pub fn spawn_tunnel(
    tracker: &TaskTracker,
    client: OnUpgrade,
    upstream: OnUpgrade,
    request_id: HeaderValue,
    open: GaugeGuard,
) {
    tracker.spawn(async move {
        // Counted as an open upgraded connection until the tunnel ends.
        let _open = open;
        let rid = request_id.to_str().unwrap_or("-").to_owned();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(request_id = %rid, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(request_id = %rid, to_upstream, to_client, "tunnel closed")
            }
            Err(e) => tracing::debug!(request_id = %rid, error = %e, "tunnel ended with an error"),
        }
    });
}
