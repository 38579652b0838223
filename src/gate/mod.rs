//! The gate: who is asking, which models a request names, and what a
//! model-list response may show.
pub mod body;
pub mod credential;
pub mod decode;
pub mod filter;
pub mod forwarded;
pub mod jwt;
pub mod listed_ids;
pub mod outbound;
pub mod path;
pub(crate) mod redact;
pub mod routes;
pub mod shape;
