//! modelgate: a transparent reverse proxy in front of Open WebUI that
//! enforces which models the members of an organization may use.
//!
//! # Layout
//! (filled in as modules land)
pub mod gate;
pub mod store;
