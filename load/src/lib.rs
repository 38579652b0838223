//! Load harness for modelgate: a fake upstream, a load generator, the setup
//! that builds the access database with the product's own store code, and
//! the report/plot tools `load/run.sh` strings together.
//!
//! # Layout
//! - `models`  — the deterministic model catalogue both sides agree on
//! - `mock`    — the fake Open WebUI upstream (`mock-upstream`)
//! - `fixture` — users, tokens, allowed/forbidden models (setup → loadgen)
//! - `setup`   — the SQLite database built with `modelgate::store`
//! - `mix`     — request kinds, the weighted mix, the RNG
//! - `stats`   — histograms, the `Report`, Markdown tables
//! - `runner`  — the load generator (closed and open loop)
//! - `compare` — side-by-side runs, ratios, added p99 at half load
//! - `plot`    — the SVG latency-distribution picture
pub mod compare;
pub mod fixture;
pub mod mix;
pub mod mock;
pub mod models;
pub mod plot;
pub mod runner;
pub mod setup;
pub mod stats;
