//! The forward leaf: point the request at the upstream, fix its headers,
//! send it through the pooled client and hand back the response, streaming;
//! a WebSocket handshake becomes a tracked tunnel.

use http::{header, uri, HeaderValue, Request, Response, StatusCode, Uri, Version};

use super::body::{self, Body};
use super::{headers, upgrade, Ctx, Proxy};
use crate::config::Config;
use crate::error::Refusal;
use crate::metrics::RouteLabel;

impl Proxy {
    pub(super) async fn forward(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        let upgrading = headers::wants_upgrade(&req);
        let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
        prepare_request(config, ctx, &mut req, upgrading)?;

        let started = std::time::Instant::now();
        let result = self.upstream.send(config, req).await;
        let took = started.elapsed();
        ctx.upstream_time = Some(took);
        let mut resp = result?;
        self.metrics.observe_upstream(ctx.gate, ctx.route, took);

        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                ctx.route = RouteLabel::Upgrade;
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                upgrade::spawn_tunnel(
                    &self.tunnels,
                    client_upgrade,
                    upstream_upgrade,
                    ctx.request_id.clone(),
                    self.metrics.track_upgraded(),
                    ctx.socket.take(),
                );
                let (mut parts, _) = resp.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers, true);
                parts.headers.insert(
                    config.proxy.request_id_header.clone(),
                    ctx.request_id.clone(),
                );
                return Ok(Response::from_parts(parts, body::empty()));
            }
        }

        Ok(downstream(config, ctx, resp))
    }
}

/// An upstream response as the client gets it: no hop-by-hop headers, the
/// request id echoed, the body streamed.
pub(super) fn downstream<B>(config: &Config, ctx: &Ctx, resp: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<body::BoxError>,
{
    let (mut parts, incoming) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    parts.headers.insert(
        config.proxy.request_id_header.clone(),
        ctx.request_id.clone(),
    );
    Response::from_parts(parts, body::boxed(incoming))
}

/// Points the request at the upstream and fixes its headers.
fn prepare_request(
    config: &Config,
    ctx: &Ctx,
    req: &mut Request<Body>,
    upgrading: bool,
) -> Result<(), Refusal> {
    // An HTTP/2 client names the host in the URI authority, not a header.
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    // Origin form: the pool knows the upstream's address. The path is
    // shared, not parsed again.
    let mut target = uri::Parts::default();
    target.path_and_query = Some(
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| uri::PathAndQuery::from_static("/")),
    );
    *req.uri_mut() = Uri::from_parts(target).map_err(|_| Refusal::BadTarget)?;
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    headers::strip_hop_by_hop(h, upgrading);
    headers::set_forwarded(
        h,
        ctx.peer.ip(),
        host.as_ref(),
        config.proxy.trust_forwarded_headers,
    );
    h.insert(
        config.proxy.request_id_header.clone(),
        ctx.request_id.clone(),
    );
    match (config.proxy.preserve_host, host) {
        (true, Some(host)) => {
            h.insert(header::HOST, host);
        }
        // The client fills in the upstream authority when Host is absent.
        _ => {
            h.remove(header::HOST);
        }
    }
    Ok(())
}
