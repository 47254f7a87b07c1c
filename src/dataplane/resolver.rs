//! Certificate selection for one listener snapshot: the default certificate plus an SNI table of
//! exact and wildcard names. It owns the matching rules; it does not load or cache certificates
//! (that is `DataPlane::load_cert`) and never blocks: `resolve` is two binary searches.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::LoadedCert;

/// A certificate as bound to one listener.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedCert {
    pub ssl_id: Arc<str>,
    pub is_default: bool,
    pub bound_seq: i64,
    pub key: Arc<CertifiedKey>,
    /// Shared with the certificate cache: a snapshot costs no copy of the names.
    pub names: Arc<[String]>,
}

impl ResolvedCert {
    /// Same binding and the very same key object: a TLS config built from it can be reused.
    fn same_as(&self, other: &ResolvedCert) -> bool {
        self.ssl_id == other.ssl_id
            && self.is_default == other.is_default
            && self.bound_seq == other.bound_seq
            && Arc::ptr_eq(&self.key, &other.key)
    }
}

/// One name of the SNI table: which certificate, which of its names. The names themselves stay
/// in the certificates (shared with the cache), so building a table copies no string.
#[derive(Debug, Clone, Copy)]
struct NameEntry {
    cert: usize,
    name: usize,
}

/// The immutable certificate table of one listener snapshot.
///
/// The SNI table is two sorted arrays rather than hash maps: a listener has at most a few dozen
/// certificates, building one is a sort without an allocation per name (certificate changes
/// build one per listener), and a lookup is a binary search.
#[derive(Debug)]
pub(crate) struct CertTable {
    default: Option<Arc<CertifiedKey>>,
    /// Full names ("www.example.com"), sorted, one entry per name: the most recently bound
    /// certificate carrying it.
    exact: Vec<NameEntry>,
    /// Wildcard names, sorted by parent ("*.example.com" under "example.com"), one per parent.
    wildcard: Vec<NameEntry>,
    certs: Vec<ResolvedCert>,
}

impl CertTable {
    pub fn build(certs: Vec<ResolvedCert>) -> CertTable {
        // The default is the one marked default; if several are (or none is, as a CLB may send),
        // the most recently bound stands in, so a listener with any certificate always has one.
        let default = certs
            .iter()
            .filter(|cert| cert.is_default)
            .max_by_key(|cert| cert.bound_seq)
            .or_else(|| certs.iter().max_by_key(|cert| cert.bound_seq))
            .map(|cert| cert.key.clone());
        let mut exact = Vec::new();
        let mut wildcard = Vec::new();
        // The default takes part in name matching like any other certificate: "most recently bound
        // wins" then also holds when a replaced default covers a name an older SNI cert covers.
        for (cert_index, cert) in certs.iter().enumerate() {
            for (name_index, name) in cert.names.iter().enumerate() {
                let entry = NameEntry {
                    cert: cert_index,
                    name: name_index,
                };
                match name.starts_with("*.") {
                    true => wildcard.push(entry),
                    false => exact.push(entry),
                }
            }
        }
        rank(&certs, &mut exact, false);
        rank(&certs, &mut wildcard, true);
        CertTable {
            default,
            exact,
            wildcard,
            certs,
        }
    }

    fn seq_of(&self, entry: &NameEntry) -> i64 {
        self.certs[entry.cert].bound_seq
    }

    fn lookup(&self, entries: &[NameEntry], wildcard: bool, name: &str) -> Option<NameEntry> {
        entries
            .binary_search_by(|entry| key_of(&self.certs, entry, wildcard).cmp(name))
            .ok()
            .map(|index| entries[index])
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }

    /// True when this table was built from the same bindings of the same key objects, so a
    /// snapshot can keep it (and its TLS config) instead of building another.
    pub fn same_bindings(&self, certs: &[ResolvedCert]) -> bool {
        self.certs.len() == certs.len() && self.certs.iter().zip(certs).all(|(a, b)| a.same_as(b))
    }

    /// The bindings this table was built from, in the order given.
    pub fn certs(&self) -> &[ResolvedCert] {
        &self.certs
    }

    /// The certificate for a requested name: the most recently bound of the exact and the
    /// wildcard match; the default when nothing matches or no name was sent.
    pub fn select(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let Some(name) = server_name else {
            return self.default.as_ref();
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        // rustls hands over names as sent; DNS names compare case-insensitively. Allocating only
        // for the rare upper-case name keeps the common path allocation-free.
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        let exact = self.lookup(&self.exact, false, name);
        // A wildcard covers exactly one label (RFC 6125 §6.4.3): "*.example.com" matches
        // "a.example.com" but neither "example.com" nor "a.b.example.com".
        let wildcard = name
            .split_once('.')
            .filter(|(label, parent)| !label.is_empty() && !parent.is_empty())
            .and_then(|(_, parent)| self.lookup(&self.wildcard, true, parent));
        let chosen = match (exact, wildcard) {
            (Some(e), Some(w)) if self.seq_of(&w) > self.seq_of(&e) => Some(w),
            (Some(e), _) => Some(e),
            (None, w) => w,
        };
        chosen
            .map(|entry| &self.certs[entry.cert].key)
            .or(self.default.as_ref())
    }
}

/// Sorts by name and keeps, per name, the most recently bound certificate; among equals the one
/// listed first (the sort is stable).
fn rank(certs: &[ResolvedCert], entries: &mut Vec<NameEntry>, wildcard: bool) {
    let seq = |entry: &NameEntry| certs[entry.cert].bound_seq;
    entries.sort_by(|a, b| {
        key_of(certs, a, wildcard)
            .cmp(key_of(certs, b, wildcard))
            .then_with(|| seq(b).cmp(&seq(a)))
    });
    entries
        .dedup_by(|later, first| key_of(certs, later, wildcard) == key_of(certs, first, wildcard));
}

/// The name an entry matches on: the full name, or a wildcard's parent.
fn key_of<'a>(certs: &'a [ResolvedCert], entry: &NameEntry, wildcard: bool) -> &'a str {
    let name = certs[entry.cert].names[entry.name].as_str();
    match wildcard {
        true => name.get(2..).unwrap_or_default(),
        false => name,
    }
}

impl ResolvesServerCert for CertTable {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None makes rustls refuse the handshake with a fatal alert; that happens only for an
        // HTTPS listener with no certificate, which the accept path counts and logs.
        self.select(client_hello.server_name()).cloned()
    }
}

/// Checks what a `CertSource` returned before it may be served: a non-empty chain whose leaf
/// matches the key, and names in the form the table matches on.
pub(crate) fn check_loaded(mut loaded: LoadedCert) -> anyhow::Result<LoadedCert> {
    if loaded.key.cert.is_empty() {
        anyhow::bail!("the certificate chain is empty");
    }
    match loaded.key.keys_match() {
        // A key type whose public half rustls cannot extract cannot be compared; the control plane
        // checked the pair at upload, so this is accepted as rustls itself does in `from_der`.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(error) => anyhow::bail!("the private key does not match the certificate: {error}"),
    }
    let mut names: Vec<String> = loaded
        .names
        .iter()
        .map(|name| {
            let name = name.trim();
            name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
        })
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    loaded.names = names;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::tests::support::cert_with_names;

    fn resolved(ssl_id: &str, names: &[&str], is_default: bool, seq: i64) -> ResolvedCert {
        let loaded = cert_with_names(names);
        ResolvedCert {
            ssl_id: ssl_id.into(),
            is_default,
            bound_seq: seq,
            key: loaded.key,
            names: loaded.names.into(),
        }
    }

    #[test]
    fn matching_rules() {
        let default = resolved("default", &["default.test"], true, 1);
        let exact = resolved("exact", &["shop.example.com"], false, 2);
        let wild = resolved("wild", &["*.example.com"], false, 3);
        let table = CertTable::build(vec![default.clone(), exact.clone(), wild.clone()]);
        let pick = |name: Option<&str>| table.select(name).cloned().unwrap();

        assert!(Arc::ptr_eq(&pick(None), &default.key));
        assert!(Arc::ptr_eq(&pick(Some("unknown.test")), &default.key));
        assert!(Arc::ptr_eq(&pick(Some("a.example.com")), &wild.key));
        assert!(Arc::ptr_eq(&pick(Some("A.Example.COM.")), &wild.key));
        // The wildcard is newer than the exact cert, so it wins for the name both cover.
        assert!(Arc::ptr_eq(&pick(Some("shop.example.com")), &wild.key));
        // One label only.
        assert!(Arc::ptr_eq(&pick(Some("example.com")), &default.key));
        assert!(Arc::ptr_eq(&pick(Some("a.b.example.com")), &default.key));

        let newer_exact = resolved("exact", &["shop.example.com"], false, 4);
        let table = CertTable::build(vec![default, wild, newer_exact.clone()]);
        let chosen = table.select(Some("shop.example.com")).unwrap();
        assert!(Arc::ptr_eq(chosen, &newer_exact.key));
    }

    #[test]
    fn empty_table_resolves_nothing() {
        let table = CertTable::build(Vec::new());
        assert!(table.is_empty());
        assert!(table.select(Some("a.test")).is_none());
        assert!(table.select(None).is_none());
    }

    #[test]
    fn without_a_marked_default_the_newest_cert_stands_in() {
        let old = resolved("old", &["a.test"], false, 1);
        let new = resolved("new", &["b.test"], false, 2);
        let table = CertTable::build(vec![old, new.clone()]);
        assert!(Arc::ptr_eq(table.select(None).unwrap(), &new.key));
    }

    #[test]
    fn every_name_of_a_large_table_is_found_and_ties_go_to_the_first_listed() {
        // 26 certificates (the SNI maximum plus a default) of 8 names each, bound out of order.
        let names: Vec<Vec<String>> = (0..26)
            .map(|c| (0..8).map(|n| format!("n{n}.c{c}.test")).collect())
            .collect();
        let certs: Vec<ResolvedCert> = names
            .iter()
            .enumerate()
            .map(|(c, names)| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                resolved(&format!("ssl-{c}"), &names, c == 0, (c as i64 * 7) % 26)
            })
            .collect();
        let table = CertTable::build(certs.clone());
        for (c, names) in names.iter().enumerate() {
            for name in names {
                let chosen = table.select(Some(name)).unwrap();
                assert!(Arc::ptr_eq(chosen, &certs[c].key), "{name}");
            }
        }
        assert!(Arc::ptr_eq(
            table.select(Some("n0.c99.test")).unwrap(),
            &certs[0].key
        ));

        let first = resolved("first", &["same.test", "*.same.test"], false, 5);
        let second = resolved("second", &["same.test", "*.same.test"], false, 5);
        let table = CertTable::build(vec![first.clone(), second]);
        for name in ["same.test", "a.same.test"] {
            assert!(Arc::ptr_eq(table.select(Some(name)).unwrap(), &first.key));
        }
    }
}
