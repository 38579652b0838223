//! Access data: the organization schema inside Open WebUI's SQLite database,
//! the admin writes the CLI calls, and the cached, watched read path the
//! proxy asks "may this user use this model?".
//!
//! # Layout
//! - `error`  — `StoreError`, one enum for the layer (`is_unavailable` → 503)
//! - `schema` — `ensure_schema`: tables, seed indexes, view, audit triggers
//! - `admin`  — writes/listings for the CLI, `migrate`, `backup`
pub mod admin;
pub mod error;
pub mod schema;

pub use error::StoreError;
pub use schema::{ensure_schema, SchemaReport};
