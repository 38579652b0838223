//! HTTP Upgrade (WebSocket) passthrough: once both sides agreed to switch
//! protocols, bytes are copied both ways until either side closes.
//!
//! Open WebUI's Socket.IO connection (`/ws/socket.io/`) is the exception:
//! it pushes other people's channel messages and chat turns, which name
//! their models, so what the upstream sends is read message by message and
//! redacted for the user ([`SocketFilter`]); what the browser sends passes
//! unchanged. The handshake is stripped of `Sec-WebSocket-Extensions` so the
//! upstream never compresses those messages.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;

use crate::gate::redact::redact_socket_packet;
use crate::metrics::GaugeGuard;
use crate::proxy::inspect::INLINE_PARSE_BYTES;
use crate::store::{AccessStore, UserAccess};

/// Whose view the upstream's Socket.IO messages are redacted for.
pub struct SocketFilter {
    pub store: AccessStore,
    pub access: Arc<UserAccess>,
}

impl std::fmt::Debug for SocketFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFilter")
            .field("user", &self.access.user_id)
            .finish()
    }
}

impl SocketFilter {
    /// The packet as the user may see it; `None` drops it (it could not be
    /// checked, or the access data cannot be read: fail closed).
    pub async fn apply(&self, packet: String) -> Option<String> {
        if !packet.starts_with("42") || !packet.contains("\"events") {
            return Some(packet);
        }
        let graph = match self.store.model_graph().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "access data unavailable: a Socket.IO event is dropped");
                return None;
            }
        };
        let access = self.access.clone();
        let redact = move |packet: String| {
            let mut permitted = |id: &str| access.decide(&graph, id).lets_through();
            match redact_socket_packet(&packet, &mut permitted) {
                Ok(Some(redacted)) => Some(redacted),
                Ok(None) => Some(packet),
                Err(e) => {
                    tracing::warn!(error = %e, "a Socket.IO event that cannot be checked is dropped");
                    None
                }
            }
        };
        // A chat turn with inline images can be megabytes: parsed off the
        // async worker, as large request bodies are.
        if packet.len() <= INLINE_PARSE_BYTES {
            return redact(packet);
        }
        tokio::task::spawn_blocking(move || redact(packet))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "a Socket.IO event's check failed; it is dropped");
                None
            })
    }
}

/// Joins the client's and the upstream's upgraded connections. Tracked so a
/// graceful shutdown can wait for open tunnels within its drain time.
pub fn spawn_tunnel(
    tracker: &TaskTracker,
    client: OnUpgrade,
    upstream: OnUpgrade,
    request_id: HeaderValue,
    open: GaugeGuard,
    filter: Option<SocketFilter>,
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
        if let Some(filter) = filter {
            match filtered(client, upstream, filter).await {
                Ok(()) => tracing::debug!(request_id = %rid, "socket tunnel closed"),
                Err(e) => {
                    tracing::debug!(request_id = %rid, error = %e, "socket tunnel ended with an error")
                }
            }
            return;
        }
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

/// A WebSocket tunnel that redacts what the upstream sends.
async fn filtered(
    client: Upgraded,
    upstream: Upgraded,
    filter: SocketFilter,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let client = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
    let upstream =
        WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, None).await;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let outbound = async {
        while let Some(message) = from_client.next().await {
            to_upstream.send(message?).await?;
        }
        to_upstream.close().await
    };
    let inbound = async {
        while let Some(message) = from_upstream.next().await {
            let message = match message? {
                Message::Text(packet) => match filter.apply(packet).await {
                    Some(packet) => Message::Text(packet),
                    None => continue,
                },
                other => other,
            };
            to_client.send(message).await?;
        }
        to_client.close().await
    };
    // Either side ending ends the tunnel.
    tokio::select! {
        r = outbound => r,
        r = inbound => r,
    }
}
