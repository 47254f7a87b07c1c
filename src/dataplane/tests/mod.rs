//! End-to-end tests of the data plane over real loopback sockets and real TLS: certificate
//! selection and hot swap (`tls`), forwarding and health (`proxy`), listener lifecycle, the
//! descriptor budget and metrics (`lifecycle`), batch updates and certificate replacement
//! (`updates`). Fixtures live in `support`.

pub(crate) mod support;

mod lifecycle;
mod proxy;
mod tls;
mod updates;
