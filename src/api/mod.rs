//! The HTTP API: the only code that knows HTTP and JSON.
//!
//! `http` holds the request pipeline and the envelope, `action` the one list of actions,
//! `handlers` one file per resource family, `params`/`args` the parameter map and its typed reads,
//! `error` the RetCode table.

pub mod action;
pub mod args;
pub mod error;
pub mod handlers;
mod http;
pub mod params;

pub use http::{router, ApiConfig, App, Ctx, Reply, REQUEST_ID_HEADER};
