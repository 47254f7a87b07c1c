//! Domain types: ids, certificates, load balancers, listeners and bindings; no serde, no SQL.
pub mod certificate;
