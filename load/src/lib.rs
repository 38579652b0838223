//! Load harness for modelgate: a fake upstream, a load generator, the setup
//! that builds the access database with the product's own store code, and
//! the report/plot tools `load/run.sh` strings together.
//!
//! # Layout
//! - `models`  — the deterministic model catalogue both sides agree on
//! - `mock`    — the fake Open WebUI upstream (`mock-upstream`)
pub mod mock;
pub mod models;
