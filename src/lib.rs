//! modelgate: a transparent reverse proxy in front of Open WebUI that
//! enforces which models the members of an organization may use.
//!
//! # Layout
//! - [`cli`]: the `modelgate` command line (clap); `main.rs` only calls it.
//! - [`config`]: TOML file + environment → validated [`config::Config`].
//! - [`reload`]: the one path that swaps the live config (SIGHUP).
//! - [`server`]: accept loop, connection limits, graceful drain.
//! - [`proxy`]: the request path as phases over a per-request context;
//!   [`proxy::headers`] (hop-by-hop, forwarding), [`proxy::upstream`]
//!   (pooled client, 502/504), [`proxy::upgrade`] (WebSocket tunnels),
//!   [`proxy::body`] (streaming body type, byte counting for the log),
//!   [`proxy::enforce`] (the identify / authorize / list-rewrite phases),
//!   [`proxy::list_cache`] (filtered lists shared by one organization set).
//! - [`ops`]: the operator commands (`init`, `org`, `member`, `model`,
//!   `access`, `report`, `audit`, `db-bench`, `migrate`) as library functions.
//! - [`store`]: the access data: schema, read pool, lookups, moka caches,
//!   change watcher, admin writes, start-up bootstrap.
//! - [`gate`]: identity, route classification, model extraction, list filtering.
//! - [`app`]: start-up wiring for `serve` (listeners, signals).
//! - [`admin`]: the admin listener (`/health`, `/health/ready`,
//!   `/health/detailed`, `/health/model-access/{user}`, `/metrics`).
//! - [`demo`]: `modelgate demo`, the product in one command.
//! - [`error`]: every refusal and its JSON response, mapped in one place.
//! - [`metrics`]: Prometheus families, typed record methods, `/metrics` text.
//! - [`logging`]: `tracing` subscriber set-up (text or JSON).

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod gate;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod store;
