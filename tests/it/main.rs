//! The one integration-test binary: every test starts the real `certbind serve` on port 0 with a
//! fresh data dir and talks to it over real sockets.

mod alb;
mod api;
mod clb;
mod concurrency;
mod dataplane;
mod model_based;
mod support;
mod wire;
