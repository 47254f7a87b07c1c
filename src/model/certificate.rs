//! Certificate bundles: lenient PEM parsing, key matching and derived fields.
