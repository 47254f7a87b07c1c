//! certbind: a self-hosted load balancer that speaks the UCloud/SurferCloud ULB API.
//!
//! Reading order: `config` (what the operator sets), `auth` (pure signature code), `model` (domain
//! types and certificate parsing), `secret` (encryption at rest), `store` (the only code that knows
//! SQL), `api` (the only code that knows HTTP and JSON), `dataplane` (TLS listeners and proxying),
//! `cli` (the commands).
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod model;
pub mod probe;
pub mod secret;
pub mod server;
pub mod store;
