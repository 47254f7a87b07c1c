//! The data plane: TLS listeners, certificate resolution and proxying to backends.
