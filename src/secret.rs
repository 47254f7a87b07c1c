//! Encryption of secrets at rest (API private keys, certificate private keys) under the master key.
