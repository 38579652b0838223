//! The gate: who is asking, which models a request names, and what a
//! model-list response may show.
pub mod credential;
pub mod decode;
pub mod filter;
pub mod jwt;
pub mod shape;
