//! Request signatures (UCloud SHA-1 scheme): pure code shared by the server, the CLI and the tests.
