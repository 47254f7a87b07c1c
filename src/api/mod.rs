//! The HTTP API: parameter map, signature check, dispatch and the response envelope.
pub mod params;
