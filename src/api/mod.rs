//! The HTTP API: the only code that knows HTTP and JSON.
//!
//! `http` holds the request pipeline and the envelope, `action` the one list of actions,
//! `handlers` one file per resource family, `params`/`args` the parameter map and its typed reads,
//! `error` the RetCode table.

pub mod args;
pub mod error;
pub mod params;
#[cfg(feature = "wip")]
pub mod action;
#[cfg(feature = "wip")]
pub mod handlers;
#[cfg(feature = "wip")]
mod http;

#[cfg(feature = "wip")]
pub use http::{router, ApiConfig, App, Ctx, Reply, REQUEST_ID_HEADER};
