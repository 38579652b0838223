//! Proxy header hygiene: hop-by-hop stripping (RFC 9110 §7.6.1),
//! `X-Forwarded-*`, and the request id.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message (RFC 9110
/// §7.6.1, plus the de-facto `Proxy-Connection` and `Keep-Alive`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// True when the message asks to switch protocols (`Connection: upgrade`
/// and an `Upgrade` header), e.g. a WebSocket handshake.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// An HTTP/1.1 request asking to switch protocols (HTTP/2 has no upgrades).
pub fn wants_upgrade<B>(req: &http::Request<B>) -> bool {
    req.version() == http::Version::HTTP_11 && is_upgrade(req.headers())
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers and any header the `Connection` header names.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` are put back so
/// the next hop sees the handshake.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages have none: one pass over the names present is cheaper
    // than the lookups below (every name `Connection` lists is only looked
    // for when `Connection` is there).
    if !headers
        .keys()
        .any(|name| name == header::UPGRADE || HOP_BY_HOP.contains(name))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if keep_upgrade {
        if let Some(up) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, up);
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Adds this hop to `X-Forwarded-For` and fills `X-Forwarded-Proto`/`-Host`.
///
/// With `trust` (modelgate behind nginx) values set by the previous hop are
/// kept; without it they are replaced by what this hop saw, so a client
/// cannot claim another address or scheme.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    host: Option<&HeaderValue>,
    trust: bool,
) {
    let this_hop = peer_text(peer);
    let mut chain = String::new();
    if trust {
        let prior = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        for hop in prior {
            chain.push_str(hop);
            chain.push_str(", ");
        }
    }
    // `insert` replaces every earlier value.
    if chain.is_empty() {
        headers.insert(X_FORWARDED_FOR.clone(), this_hop);
    } else {
        chain.push_str(this_hop.to_str().unwrap_or_default());
        match HeaderValue::from_str(&chain) {
            Ok(v) => {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
            Err(_) => {
                headers.remove(&X_FORWARDED_FOR);
            }
        }
    }
    if !trust || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !trust || !headers.contains_key(&X_FORWARDED_HOST) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// The peer's address as header text. Formatting it costs more than the
/// rest of the forwarding headers, and a gate has few peers (Open WebUI, or
/// the reverse proxy in front of it), so each thread keeps the last one.
fn peer_text(peer: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((ip, text)) if *ip == peer => text.clone(),
        _ => {
            // An address's text is always a valid header value.
            let text = HeaderValue::try_from(peer.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            *last = Some((peer, text.clone()));
            text
        }
    })
}

/// A request id from the client (or nginx) is kept when it is short and
/// printable — it ends up in logs — otherwise a fresh UUID is used.
pub fn request_id(headers: &HeaderMap, name: &HeaderName) -> HeaderValue {
    if let Some(v) = headers.get(name) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    // uuid's `fast-rng`: a thread-local CSPRNG seeded from the OS, instead
    // of a getrandom syscall per request.
    let mut text = [0u8; uuid::fmt::Simple::LENGTH];
    let id = uuid::Uuid::new_v4().simple().encode_lower(&mut text);
    // A UUID's hex text is always a valid header value.
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("authorization", "Bearer t"),
            ("content-type", "application/json"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["authorization", "content-type"]);
    }

    #[test]
    fn keeps_upgrade_when_asked() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("x-a", "1"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn forwarded_for_appends_when_trusted() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            "10.0.0.9".parse().unwrap(),
            Some(&"ex.com".parse().unwrap()),
            true,
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "ex.com");
    }

    #[test]
    fn forwarded_headers_replaced_when_untrusted() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        set_forwarded(
            &mut h,
            "10.0.0.9".parse().unwrap(),
            Some(&"ex.com".parse().unwrap()),
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "ex.com");
    }

    #[test]
    fn each_request_names_its_own_peer() {
        // The last peer's text is remembered per thread: a new peer must
        // not be given the previous one's address, nor a repeated one a
        // stale value.
        for peer in ["10.0.0.1", "10.0.0.2", "::1", "10.0.0.2", "10.0.0.1"] {
            let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-host", "evil")]);
            set_forwarded(&mut h, peer.parse().unwrap(), None, false);
            assert_eq!(h["x-forwarded-for"], peer);
            assert!(!h.contains_key("x-forwarded-host"));
        }
    }

    #[test]
    fn hop_by_hop_headers_are_found_wherever_they_are() {
        let mut clean = map(&[("content-type", "a"), ("x-custom", "b")]);
        strip_hop_by_hop(&mut clean, false);
        assert_eq!(clean.len(), 2);
        for hop in ["keep-alive", "te", "upgrade", "proxy-connection"] {
            let mut h = map(&[("content-type", "a"), (hop, "x")]);
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{hop} kept");
        }
        let mut named = map(&[("connection", "x-secret"), ("x-secret", "s")]);
        strip_hop_by_hop(&mut named, false);
        assert!(named.is_empty());
    }

    #[test]
    fn request_id_is_propagated_or_generated() {
        let name = HeaderName::from_static("x-request-id");
        assert_eq!(
            request_id(&map(&[("x-request-id", "abc-1")]), &name),
            "abc-1"
        );
        let fresh = request_id(&map(&[("x-request-id", "has space")]), &name);
        assert_eq!(fresh.len(), 32);
        assert_eq!(request_id(&HeaderMap::new(), &name).len(), 32);
    }
}
