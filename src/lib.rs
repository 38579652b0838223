//! modelgate: a transparent reverse proxy in front of Open WebUI that
//! enforces which models the members of an organization may use.
//!
//! # Layout
//! - [`cli`]: the `modelgate` command line (clap); `main.rs` only calls it.
//! - [`config`]: TOML file + environment → validated [`config::Config`].
//! - [`reload`]: the one path that swaps the live config (SIGHUP).
//! - [`server`]: the one accept loop (connection limit, graceful drain),
//!   generic over its [`server::Handler`]: the proxy and the admin listener.
//! - [`workers`]: thread per core for the proxy listeners (one
//!   single-threaded runtime per worker, one accept socket, upstream pools
//!   per worker in [`workers::PerWorker`]).
//! - [`proxy`]: the request path, one file per gate, each read top to
//!   bottom. `proxy/ingress.rs` (browser → Open WebUI): classify → guard
//!   (identify → bypass → authorize) → forward → rewrite → log.
//!   [`proxy::egress`] (Open WebUI → the model API, authoritative): identify
//!   (signed user header) → inspect → authorize → forward → log. The
//!   leaves they share: [`proxy::guard`], [`proxy::inspect`] (guarded bodies),
//!   [`proxy::budget`] (the memory all buffered bodies may take),
//!   [`proxy::rewrite`] (responses that name models, filtered for the
//!   user), [`proxy::headers`], [`proxy::upstream`] (pooled client, failure
//!   classes), [`proxy::upgrade`] (WebSocket tunnels; Socket.IO events
//!   redacted), [`proxy::body`], [`proxy::list_cache`], [`proxy::learn`]
//!   (the model ids the forwarded lists teach the store).
//! - [`gate`]: the pure leaves: credentials, JWTs (sessions, and Open
//!   WebUI's signed user header in [`gate::forwarded`]), paths, route table,
//!   body model extraction (inbound, and outbound in [`gate::outbound`]),
//!   list filtering ([`gate::filter`]), the ids a list names
//!   ([`gate::listed_ids`]) and the redaction of model ids in
//!   chats, channel messages, configuration and Socket.IO events
//!   (`gate::redact`).
//! - [`error`]: [`error::Refusal`], every refusal, and the one table that
//!   maps each to status, `error.code`, message and decision outcome.
//! - [`store`]: the access data: schema, read pool, lookups, moka caches,
//!   change watcher, admin writes, start-up bootstrap, the model ids seen
//!   upstream ([`store::known`]) and rule targets ([`store::pattern`]:
//!   exact ids and `*` globs); the decision itself is [`store::access`]
//!   (deny wins, allow by link or glob, shadow mode).
//! - [`ops`]: the operator commands (`init`, `org` (modes, group
//!   bindings), `member`, `model` (allow/deny rules), `access`, `report`,
//!   `audit`, `db-bench`, `migrate`) as library functions.
//! - [`metrics`]: Prometheus families and typed record methods; label
//!   enums, organization-label interning, the store and process collectors
//!   and the two exposition formats (OpenMetrics, text 0.0.4) beside it.
//! - [`admin`]: the admin listener (`/health`, `/health/ready`,
//!   `/health/detailed`, `/health/model-access/{user}`, `/metrics`) and the
//!   management API under `/api/v1/` ([`admin::api`]: one route table read
//!   by the router and the OpenAPI document; each operation an [`ops`]
//!   call, as in the CLI).
//! - [`app`]: start-up wiring for `serve` (listeners, signals).
//! - [`demo`]: `modelgate demo`, the product in one command.
//! - [`logging`]: `tracing` subscriber set-up (text or JSON).
//! - [`hashing`]: the keyed fast hasher of the request path's caches and
//!   maps.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod gate;
pub mod hashing;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod store;
pub mod workers;
