//! Certificate bundles: lenient PEM parsing, key matching and derived fields (spec §4.1); owns neither
//! storage, encryption at rest (`secret`), nor serving (`dataplane`), and does no IO and no clock reads.
//!
//! Lenient on purpose: the official SDK's regression scenario 4378 sends the RSA key in `CaCert` and
//! `PrivateKey = "abc"`, and real users upload certificates that have already expired, so validity is
//! "some certificate in the text has its private key somewhere in the text", nothing more.

use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};
use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::sign::{CertifiedKey, SigningKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::{Zeroize, Zeroizing};

/// How the private key is encoded, which is also the PEM label it came under and goes back out under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `PRIVATE KEY` (any algorithm).
    Pkcs8,
    /// `EC PRIVATE KEY`.
    Sec1,
    /// `RSA PRIVATE KEY`.
    Pkcs1,
}

impl KeyKind {
    fn pem_label(self) -> &'static str {
        match self {
            KeyKind::Pkcs8 => "PRIVATE KEY",
            KeyKind::Sec1 => "EC PRIVATE KEY",
            KeyKind::Pkcs1 => "RSA PRIVATE KEY",
        }
    }

    fn from_pem_label(label: &str) -> Option<KeyKind> {
        match label {
            "PRIVATE KEY" => Some(KeyKind::Pkcs8),
            "EC PRIVATE KEY" => Some(KeyKind::Sec1),
            "RSA PRIVATE KEY" => Some(KeyKind::Pkcs1),
            _ => None,
        }
    }
}

/// Why a text is not an acceptable certificate bundle. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no certificate found in the certificate content")]
    NoCertificate,
    #[error("no private key found in the certificate content")]
    NoPrivateKey,
    #[error("no private key in the certificate content matches any of its certificates")]
    KeyMismatch,
    #[error("unsupported certificate content: {0}")]
    Unsupported(String),
}

/// A validated leaf certificate, its chain and its private key, with the fields the API derives from them.
///
/// The key bytes are wiped when the bundle is dropped, so fields cannot be moved out of it; clone or
/// `std::mem::take` them instead.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// The certificate whose public key matches the private key.
    pub leaf_der: Vec<u8>,
    /// The other certificates, in the order given (leaf excluded).
    pub chain_der: Vec<Vec<u8>>,
    /// Private key, DER.
    pub key_der: Vec<u8>,
    pub key_kind: KeyKind,
    /// Leaf validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Leaf CN, or the first SAN DNS name when there is no CN, or "".
    pub domains: String,
    /// SAN DNS names of the leaf, in certificate order, as written.
    pub dns_names: Vec<String>,
}

impl Drop for CertBundle {
    fn drop(&mut self) {
        self.key_der.zeroize();
    }
}

impl fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBundle")
            .field("domains", &self.domains)
            .field("dns_names", &self.dns_names)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain_der.len())
            .field("key_kind", &self.key_kind)
            .finish_non_exhaustive()
    }
}

impl CertBundle {
    /// Leaf then chain, as PEM: what the data plane serves and what a client sees.
    pub fn chain_pem(&self) -> String {
        let mut out = String::new();
        for der in std::iter::once(&self.leaf_der).chain(&self.chain_der) {
            write_pem("CERTIFICATE", der, &mut out);
        }
        out
    }

    /// The private key as PEM under its original label.
    pub fn key_pem(&self) -> Zeroizing<String> {
        let label = self.key_kind.pem_label();
        // Sized up front so the buffer never reallocates and leaves an unwiped copy behind.
        let mut out = Zeroizing::new(String::with_capacity(pem_len(label, self.key_der.len())));
        write_pem(label, &self.key_der, &mut out);
        out
    }

    /// The key in the form rustls takes, borrowing the bundle's bytes (no unwiped copy).
    pub fn private_key_der(&self) -> PrivateKeyDer<'_> {
        let der = self.key_der.as_slice();
        match self.key_kind {
            KeyKind::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            KeyKind::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
            KeyKind::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        }
    }

    /// Leaf and chain with an aws-lc-rs signer, ready for a rustls certificate resolver.
    ///
    /// Re-checks the key against the leaf because the fields are public and may not come from
    /// [`parse_bundle`].
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        let key = load_signing_key(&self.private_key_der())?;
        let (_, leaf) = parse_certificate(&self.leaf_der).ok_or(CertError::NoCertificate)?;
        if !key_matches(key.as_ref(), &leaf) {
            return Err(CertError::KeyMismatch);
        }
        let chain = std::iter::once(&self.leaf_der)
            .chain(&self.chain_der)
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        Ok(Arc::new(CertifiedKey::new(chain, key)))
    }

    /// Names a TLS client may ask for in SNI: the SAN DNS names, or the CN when there are none;
    /// lower-cased (DNS names compare case-insensitively) and without duplicates.
    pub fn server_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let sources: Vec<String> = if self.dns_names.is_empty() {
            leaf_common_name(&self.leaf_der).into_iter().collect()
        } else {
            self.dns_names.clone()
        };
        for name in sources {
            let name = name.to_ascii_lowercase();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// `HashValue`: lower-case MD5 hex of the stored `SSLContent` (ucloud-cli labels the field "MD5").
pub fn content_hash(ssl_content: &str) -> String {
    hex::encode(Md5::digest(ssl_content.as_bytes()))
}

/// SSLContent stored for form B (UserCert + PrivateKey + CaCert): the three joined with "\n", empty parts skipped.
///
/// Whitespace-only parts count as empty: certimate compares contents with all whitespace removed,
/// so they carry nothing, and skipping them avoids runs of blank lines in what DescribeSSL returns.
pub fn join_content(user_cert: &str, private_key: &str, ca_cert: &str) -> String {
    [user_cert, private_key, ca_cert]
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses the combined certificate text leniently (spec §4.1): every `CERTIFICATE` block and every
/// unencrypted private key block anywhere in the text, in any order, with anything between them.
/// The first key (in text order) whose public key matches a certificate picks the leaf.
/// Validity dates are recorded but not checked.
pub fn parse_bundle(text: &str) -> Result<CertBundle, CertError> {
    let mut cert_ders: Vec<Vec<u8>> = Vec::new();
    let mut keys: Vec<(KeyKind, Zeroizing<Vec<u8>>)> = Vec::new();
    let mut saw_encrypted_key = false;

    for block in pem_blocks(text) {
        if block.label == "CERTIFICATE" {
            if let Some(der) = decode_certificate(block.body) {
                cert_ders.push(der);
            }
        } else if block.label == "ENCRYPTED PRIVATE KEY" {
            saw_encrypted_key = true;
        } else if let Some(kind) = KeyKind::from_pem_label(block.label) {
            if is_encrypted_legacy(block.body) {
                saw_encrypted_key = true;
            } else if let Some(der) = decode_private_key(kind, block.body) {
                keys.push((kind, der));
            }
        }
    }

    // Blocks that base64-decode but are not X.509 are dropped, so garbage never reaches a TLS client.
    let certs: Vec<(&[u8], X509Certificate<'_>)> = cert_ders
        .iter()
        .filter_map(|der| parse_certificate(der))
        .collect();
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }

    let mut unloadable_key = false;
    let mut matched: Option<(usize, usize)> = None;
    'keys: for (key_index, (kind, der)) in keys.iter().enumerate() {
        let Ok(signing_key) = load_signing_key(&borrowed_key(*kind, der)) else {
            unloadable_key = true;
            continue;
        };
        for (cert_index, (_, cert)) in certs.iter().enumerate() {
            if key_matches(signing_key.as_ref(), cert) {
                matched = Some((key_index, cert_index));
                break 'keys;
            }
        }
    }

    let Some((key_index, leaf_index)) = matched else {
        // A key we could not use is the likeliest partner of the certificate, so name it rather than "mismatch".
        return Err(if saw_encrypted_key {
            CertError::Unsupported("encrypted private keys are not supported".into())
        } else if unloadable_key {
            CertError::Unsupported(
                "private key type not supported (RSA 2048-8192, ECDSA P-256/P-384/P-521 and Ed25519 are)"
                    .into(),
            )
        } else if keys.is_empty() {
            CertError::NoPrivateKey
        } else {
            CertError::KeyMismatch
        });
    };

    let (leaf_raw, leaf) = &certs[leaf_index];
    let chain_der = certs
        .iter()
        .map(|(raw, _)| *raw)
        .filter(|raw| raw != leaf_raw)
        .map(<[u8]>::to_vec)
        .collect();
    let (key_kind, key_der) = &keys[key_index];
    let dns_names = san_dns_names(leaf);
    let domains = common_name(leaf)
        .or_else(|| dns_names.first().cloned())
        .unwrap_or_default();

    Ok(CertBundle {
        leaf_der: leaf_raw.to_vec(),
        chain_der,
        key_der: key_der.to_vec(),
        key_kind: *key_kind,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        domains,
        dns_names,
    })
}

const BEGIN_MARKER: &str = "-----BEGIN ";
const DASHES: &str = "-----";
/// Longer labels are not PEM labels we know; the bound keeps a stray BEGIN from swallowing text.
const MAX_LABEL_LEN: usize = 64;

struct PemBlock<'a> {
    label: &'a str,
    body: &'a str,
}

/// Every well-formed `-----BEGIN X----- … -----END X-----` block, wherever it sits in the text.
///
/// A block ends before the next BEGIN marker: blocks never nest, so a BEGIN without its END is skipped
/// and the next one is still found, and each byte is scanned a bounded number of times whatever the input.
fn pem_blocks(text: &str) -> Vec<PemBlock<'_>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN_MARKER) {
        let after_begin = &rest[start + BEGIN_MARKER.len()..];
        let window_len = after_begin.find(BEGIN_MARKER).unwrap_or(after_begin.len());
        let window = &after_begin[..window_len];
        match block_in(window) {
            Some((block, consumed)) => {
                blocks.push(block);
                rest = &after_begin[consumed..];
            }
            None => rest = &after_begin[window_len..],
        }
    }
    blocks
}

/// The block at the start of `window` (just after a BEGIN marker) and how many bytes it spans.
fn block_in(window: &str) -> Option<(PemBlock<'_>, usize)> {
    let label_len = window.find(DASHES)?;
    let label = &window[..label_len];
    if label.is_empty() || label.len() > MAX_LABEL_LEN || label.contains(['\r', '\n']) {
        return None;
    }
    let body_start = label_len + DASHES.len();
    let end_marker = format!("-----END {label}-----");
    let body_len = window[body_start..].find(&end_marker)?;
    let body = &window[body_start..body_start + body_len];
    Some((
        PemBlock { label, body },
        body_start + body_len + end_marker.len(),
    ))
}

/// RFC 1421 encryption headers (`Proc-Type: 4,ENCRYPTED`), as written by `openssl rsa -aes256`.
fn is_encrypted_legacy(body: &str) -> bool {
    body.contains("Proc-Type:") && body.contains("ENCRYPTED")
}

/// The base64 payload of a block: header lines (they contain ':', base64 never does) and all
/// whitespace removed, so CRLF, indentation and single-line PEM all work.
fn base64_payload(body: &str) -> Zeroizing<String> {
    let mut payload = Zeroizing::new(String::with_capacity(body.len()));
    for line in body.lines().filter(|line| !line.contains(':')) {
        payload.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
    }
    payload
}

/// Re-wraps the payload canonically so the decoding itself is rustls-pki-types' (constant-time for keys).
fn canonical_pem(label: &str, body: &str) -> Zeroizing<String> {
    let payload = base64_payload(body);
    let mut pem = Zeroizing::new(String::with_capacity(payload.len() + 2 * label.len() + 40));
    pem.push_str("-----BEGIN ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem.push_str(&payload);
    pem.push_str("\n-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem
}

fn decode_certificate(body: &str) -> Option<Vec<u8>> {
    let pem = canonical_pem("CERTIFICATE", body);
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

fn decode_private_key(kind: KeyKind, body: &str) -> Option<Zeroizing<Vec<u8>>> {
    let pem = canonical_pem(kind.pem_label(), body);
    let mut key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()?;
    let der = Zeroizing::new(key.secret_der().to_vec());
    key.zeroize();
    Some(der)
}

fn borrowed_key(kind: KeyKind, der: &[u8]) -> PrivateKeyDer<'_> {
    match kind {
        KeyKind::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        KeyKind::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        KeyKind::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
    }
}

fn load_signing_key(der: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, CertError> {
    // The provider's own error says which parsers were tried, never the key bytes.
    any_supported_type(der).map_err(|error| CertError::Unsupported(error.to_string()))
}

/// A certificate and the exact bytes it was parsed from, or None for anything that is not a single,
/// complete X.509 certificate (trailing bytes would be served to clients and rejected there).
fn parse_certificate(der: &[u8]) -> Option<(&[u8], X509Certificate<'_>)> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Some((der, cert)),
        _ => None,
    }
}

/// Compares SubjectPublicKeyInfo as rustls' `keys_match` does, plus one tolerance: some issuers
/// encode rsaEncryption without its NULL parameters, and for RSA the key bits alone identify the key.
fn key_matches(key: &dyn SigningKey, cert: &X509Certificate<'_>) -> bool {
    let Some(key_spki) = key.public_key() else {
        return false;
    };
    let cert_spki = cert.public_key();
    if key_spki.as_ref() == cert_spki.raw {
        return true;
    }
    match SubjectPublicKeyInfo::from_der(key_spki.as_ref()) {
        Ok((_, key_spki)) => {
            key_spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION
                && cert_spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION
                && key_spki.subject_public_key.data == cert_spki.subject_public_key.data
        }
        Err(_) => false,
    }
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .find(|cn| !cn.is_empty())
        .map(str::to_owned)
}

fn leaf_common_name(leaf_der: &[u8]) -> Option<String> {
    parse_certificate(leaf_der).and_then(|(_, cert)| common_name(&cert))
}

fn san_dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    // A malformed or duplicated SAN extension yields no names rather than refusing the upload.
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PEM_LINE_LEN: usize = 64;

fn pem_len(label: &str, der_len: usize) -> usize {
    let encoded = der_len.div_ceil(3) * 4;
    let lines = encoded.div_ceil(PEM_LINE_LEN);
    // "-----BEGIN " + label + "-----\n", payload with one newline per line, "-----END " + label + "-----\n"
    (11 + label.len() + 6) + encoded + lines + (9 + label.len() + 6)
}

fn write_pem(label: &str, der: &[u8], out: &mut String) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut line_len = 0;
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let sextets = [
            bytes[0] >> 2,
            ((bytes[0] & 0x03) << 4) | (bytes[1] >> 4),
            ((bytes[1] & 0x0f) << 2) | (bytes[2] >> 6),
            bytes[2] & 0x3f,
        ];
        for (position, sextet) in sextets.into_iter().enumerate() {
            let symbol = if position <= chunk.len() {
                BASE64_ALPHABET[usize::from(sextet)]
            } else {
                b'='
            };
            out.push(char::from(symbol));
        }
        line_len += 4;
        if line_len == PEM_LINE_LEN {
            out.push('\n');
            line_len = 0;
        }
    }
    if line_len > 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{
        date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa,
        KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    };
    use std::sync::OnceLock;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/certs/", $name))
        };
    }

    fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|der| der.unwrap().to_vec())
            .collect()
    }

    fn generated(
        alg: &'static rcgen::SignatureAlgorithm,
        names: &[&str],
        cn: Option<&str>,
    ) -> (String, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn rsa_pkcs1_bundle_derives_fields() {
        let text = format!("{}{}", fixture!("rsa2048.crt"), fixture!("rsa2048.key"));
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.key_kind, KeyKind::Pkcs1);
        assert_eq!(bundle.domains, "rsa.example.test");
        assert_eq!(
            bundle.dns_names,
            ["rsa.example.test", "www.rsa.example.test"]
        );
        assert!(bundle.chain_der.is_empty());
        assert_eq!(bundle.leaf_der, pem_ders(fixture!("rsa2048.crt"))[0]);
        assert!(bundle.not_before < bundle.not_after);
        bundle.certified_key().unwrap().keys_match().unwrap();
    }

    #[test]
    fn ecdsa_p256_sec1_key_first_with_crlf_and_garbage() {
        let text = format!(
            "Bag Attributes: whatever\r\n{}\r\n\r\nsome notes here\r\n{}trailing",
            fixture!("ec256.key").replace('\n', "\r\n"),
            fixture!("ec256.crt").replace('\n', "\r\n"),
        );
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.key_kind, KeyKind::Sec1);
        assert_eq!(bundle.domains, "ec.example.test");
        bundle.certified_key().unwrap().keys_match().unwrap();
    }

    #[test]
    fn generated_p256_p384_and_ed25519_pkcs8_keys_match() {
        for alg in [
            &PKCS_ECDSA_P256_SHA256,
            &PKCS_ECDSA_P384_SHA384,
            &PKCS_ED25519,
        ] {
            let (cert, key) = generated(alg, &["gen.example.test"], Some("gen.example.test"));
            let bundle = parse_bundle(&format!("{cert}{key}")).unwrap();
            assert_eq!(bundle.key_kind, KeyKind::Pkcs8);
            assert_eq!(bundle.domains, "gen.example.test");
            bundle.certified_key().unwrap().keys_match().unwrap();
        }
    }

    #[test]
    fn leaf_is_found_in_any_order_and_chain_keeps_given_order() {
        let leaf = fixture!("chain-leaf.crt");
        let intermediate = fixture!("chain-intermediate.crt");
        let root = fixture!("chain-root.crt");
        let key = fixture!("chain-leaf.key");
        let text = format!("{root}\n\n{key}\n{intermediate}junk\n{leaf}");
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.leaf_der, pem_ders(leaf)[0]);
        assert_eq!(
            bundle.chain_der,
            [pem_ders(root)[0].clone(), pem_ders(intermediate)[0].clone()]
        );
        assert_eq!(bundle.domains, "leaf.example.test");
        assert_eq!(bundle.certified_key().unwrap().cert.len(), 3);
        assert_eq!(
            bundle.chain_pem(),
            format!("{leaf}{root}{intermediate}"),
            "re-encoding reproduces openssl's canonical PEM"
        );
    }

    #[test]
    fn duplicate_leaf_is_not_repeated_in_the_chain() {
        let text = format!(
            "{leaf}{leaf}{}{}",
            fixture!("chain-intermediate.crt"),
            fixture!("chain-leaf.key"),
            leaf = fixture!("chain-leaf.crt"),
        );
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.chain_der.len(), 1);
    }

    #[test]
    fn wildcard_without_cn_uses_first_san() {
        let text = format!("{}{}", fixture!("wildcard.crt"), fixture!("wildcard.key"));
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.domains, "*.Wild.Example.Test");
        assert_eq!(
            bundle.dns_names,
            ["*.Wild.Example.Test", "wild.example.test"]
        );
        assert_eq!(
            bundle.server_names(),
            ["*.wild.example.test", "wild.example.test"]
        );
        bundle.certified_key().unwrap().keys_match().unwrap();
    }

    #[test]
    fn server_names_fall_back_to_cn_and_domains_to_empty() {
        let (cert, key) = generated(&PKCS_ECDSA_P256_SHA256, &[], Some("Only-CN.Example.Test"));
        let bundle = parse_bundle(&format!("{cert}{key}")).unwrap();
        assert!(bundle.dns_names.is_empty());
        assert_eq!(bundle.server_names(), ["only-cn.example.test"]);

        let (cert, key) = generated(&PKCS_ECDSA_P256_SHA256, &[], None);
        let bundle = parse_bundle(&format!("{cert}{key}")).unwrap();
        assert_eq!(bundle.domains, "");
        assert!(bundle.server_names().is_empty());
    }

    #[test]
    fn expired_and_not_yet_valid_certificates_are_accepted() {
        let text = format!("{}{}", fixture!("expired.crt"), fixture!("expired.key"));
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.not_before, 1_420_070_400); // 2015-01-01T00:00:00Z
        assert_eq!(bundle.not_after, 1_451_606_400); // 2016-01-01T00:00:00Z

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["future.example.test".to_string()]).unwrap();
        params.not_before = date_time_ymd(2090, 1, 1);
        params.not_after = date_time_ymd(2091, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let bundle = parse_bundle(&format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        assert_eq!(bundle.not_before, 3_786_912_000); // 2090-01-01T00:00:00Z
    }

    /// Spec §6.4, steps CreateSSL05/06: UserCert = leaf + intermediate with blank lines between,
    /// PrivateKey = "abc", and the leaf's RSA key sent as CaCert.
    #[test]
    fn scenario_4378_key_in_ca_cert_field() {
        let user_cert = fixture!("scenario-4378-user-cert.pem");
        let ca_cert = fixture!("scenario-4378-ca-cert.pem");
        let content = join_content(user_cert, "abc", ca_cert);
        assert_eq!(content, format!("{user_cert}\nabc\n{ca_cert}"));
        let bundle = parse_bundle(&content).unwrap();
        let ders = pem_ders(user_cert);
        assert_eq!(bundle.leaf_der, ders[0]);
        assert_eq!(bundle.chain_der, [ders[1].clone()]);
        assert_eq!(bundle.key_kind, KeyKind::Pkcs1);
        assert_eq!(bundle.domains, "m.ecology-emobile.com");
        assert_eq!(bundle.dns_names, ["m.ecology-emobile.com"]);
        assert_eq!(bundle.not_before, 1_480_982_400); // 2016-12-06T00:00:00Z
        assert_eq!(bundle.not_after, 1_512_604_799); // 2017-12-06T23:59:59Z
        bundle.certified_key().unwrap().keys_match().unwrap();
    }

    #[test]
    fn missing_parts_are_told_apart() {
        assert!(matches!(parse_bundle("abc"), Err(CertError::NoCertificate)));
        assert!(matches!(
            parse_bundle(fixture!("rsa2048.key")),
            Err(CertError::NoCertificate)
        ));
        assert!(matches!(
            parse_bundle(fixture!("rsa2048.crt")),
            Err(CertError::NoPrivateKey)
        ));
        let mismatched = format!("{}{}", fixture!("rsa2048.crt"), fixture!("ec256.key"));
        assert!(matches!(
            parse_bundle(&mismatched),
            Err(CertError::KeyMismatch)
        ));
    }

    #[test]
    fn encrypted_keys_are_unsupported() {
        for key in [
            fixture!("rsa2048-encrypted-pkcs8.key"),
            fixture!("rsa2048-encrypted-legacy.key"),
        ] {
            let text = format!("{}{key}", fixture!("rsa2048.crt"));
            match parse_bundle(&text) {
                Err(CertError::Unsupported(message)) => assert!(message.contains("encrypted")),
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
    }

    #[test]
    fn rsa_keys_below_2048_bits_are_unsupported() {
        let text = format!("{}{}", fixture!("rsa1024.crt"), fixture!("rsa1024.key"));
        match parse_bundle(&text) {
            Err(CertError::Unsupported(message)) => assert!(message.contains("not supported")),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[test]
    fn undecodable_blocks_are_skipped() {
        let cert = fixture!("ec256.crt");
        let key = fixture!("ec256.key");
        let text = format!(
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
             -----BEGIN CERTIFICATE-----\nunterminated\n\
             {cert}{key}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
        );
        let bundle = parse_bundle(&text).unwrap();
        assert!(bundle.chain_der.is_empty(), "garbage certificates dropped");
    }

    #[test]
    fn single_line_pem_is_accepted() {
        let flatten = |pem: &str| {
            let mut lines: Vec<&str> = pem.lines().collect();
            let end = lines.pop().unwrap();
            let begin = lines.remove(0);
            format!("{begin}{}{end}", lines.concat())
        };
        let text = format!(
            "{} {}",
            flatten(fixture!("ec256.crt")),
            flatten(fixture!("ec256.key"))
        );
        parse_bundle(&text).unwrap();
    }

    #[test]
    fn pem_output_round_trips() {
        let text = format!("{}{}", fixture!("rsa2048.key"), fixture!("rsa2048.crt"));
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.key_pem().as_str(), fixture!("rsa2048.key"));
        assert_eq!(bundle.chain_pem(), fixture!("rsa2048.crt"));
        let again = parse_bundle(&format!("{}{}", bundle.chain_pem(), *bundle.key_pem())).unwrap();
        assert_eq!(again, bundle);
        assert_eq!(
            bundle.key_pem().capacity(),
            bundle.key_pem().len(),
            "key PEM sized exactly, never reallocated"
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let text = format!("{}{}", fixture!("rsa2048.crt"), fixture!("rsa2048.key"));
        let bundle = parse_bundle(&text).unwrap();
        let debug = format!("{bundle:?}");
        assert!(debug.contains("rsa.example.test"));
        assert!(!debug.contains("key_der"));
    }

    #[test]
    fn certified_key_rejects_a_hand_built_mismatch() {
        let rsa = parse_bundle(&format!(
            "{}{}",
            fixture!("rsa2048.crt"),
            fixture!("rsa2048.key")
        ))
        .unwrap();
        let ec = parse_bundle(&format!(
            "{}{}",
            fixture!("ec256.crt"),
            fixture!("ec256.key")
        ))
        .unwrap();
        let mut forged = rsa.clone();
        forged.leaf_der = ec.leaf_der.clone();
        assert!(matches!(
            forged.certified_key(),
            Err(CertError::KeyMismatch)
        ));
        forged.leaf_der = vec![0x30, 0x00];
        assert!(matches!(
            forged.certified_key(),
            Err(CertError::NoCertificate)
        ));
    }

    /// The chain and key as parsed complete a real TLS 1.3 handshake with a client that trusts only the root.
    #[test]
    fn certified_key_serves_a_verifiable_chain() {
        use rustls::{
            ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
        };

        let text = format!(
            "{}{}{}",
            fixture!("chain-leaf.key"),
            fixture!("chain-intermediate.crt"),
            fixture!("chain-leaf.crt"),
        );
        let bundle = parse_bundle(&text).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                bundle.certified_key().unwrap(),
            )));
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                pem_ders(fixture!("chain-root.crt")).remove(0),
            ))
            .unwrap();
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client = ClientConnection::new(
            Arc::new(client_config),
            "api.leaf.example.test".try_into().unwrap(),
        )
        .unwrap();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();

        let mut buffer = Vec::new();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            buffer.clear();
            client.write_tls(&mut buffer).unwrap();
            server.read_tls(&mut buffer.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            buffer.clear();
            server.write_tls(&mut buffer).unwrap();
            client.read_tls(&mut buffer.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(client.peer_certificates().unwrap().len(), 2);
    }

    #[test]
    fn content_hash_is_lowercase_md5_hex() {
        assert_eq!(content_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(content_hash("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn join_content_skips_empty_parts() {
        assert_eq!(join_content("C", "K", "A"), "C\nK\nA");
        assert_eq!(join_content("C", "K", ""), "C\nK");
        assert_eq!(join_content("C", "", " \n"), "C");
        assert_eq!(join_content("", "", ""), "");
    }

    #[test]
    fn a_ca_certificate_is_not_mistaken_for_the_leaf() {
        // The intermediate's key is not in the text, so only the leaf can match even though a CA comes first.
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = CertificateParams::new(vec!["leaf.gen.test".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let text = format!("{}{}{}", ca.pem(), leaf_key.serialize_pem(), leaf.pem());
        let bundle = parse_bundle(&text).unwrap();
        assert_eq!(bundle.leaf_der, leaf.der().to_vec());
        assert_eq!(bundle.chain_der, [ca.der().to_vec()]);
    }

    fn valid_bundle_text() -> &'static str {
        static TEXT: OnceLock<String> = OnceLock::new();
        TEXT.get_or_init(|| {
            format!(
                "{}\n{}\n{}",
                fixture!("chain-leaf.crt"),
                fixture!("chain-intermediate.crt"),
                fixture!("chain-leaf.key")
            )
        })
    }

    fn pem_ish_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("-----BEGIN CERTIFICATE-----".to_string()),
            Just("-----END CERTIFICATE-----".to_string()),
            Just("-----BEGIN PRIVATE KEY-----".to_string()),
            Just("-----END PRIVATE KEY-----".to_string()),
            Just("-----BEGIN RSA PRIVATE KEY-----".to_string()),
            Just("-----END EC PRIVATE KEY-----".to_string()),
            Just("-----BEGIN ".to_string()),
            Just("-----".to_string()),
            Just("Proc-Type: 4,ENCRYPTED".to_string()),
            "[A-Za-z0-9+/=]{0,80}",
            "[\r\n \t]{0,3}",
            ".{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in ".{0,400}") {
            let _ = parse_bundle(&text);
        }

        #[test]
        fn pem_shaped_text_never_panics(pieces in proptest::collection::vec(pem_ish_piece(), 0..40)) {
            let _ = parse_bundle(&pieces.concat());
        }

        #[test]
        fn mutated_bundle_never_panics_and_any_result_is_consistent(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~\n]{0,3}"), 1..6)
        ) {
            let mut text = valid_bundle_text().to_string();
            for (index, op, insert) in edits {
                let position = index.index(text.len() + 1);
                match op {
                    0 => text.insert_str(position, &insert),
                    1 => { text.drain(position..(position + 1 + insert.len()).min(text.len())); }
                    2 => text.replace_range(position..(position + insert.len()).min(text.len()), &insert),
                    _ => text.truncate(position),
                }
            }
            if let Ok(bundle) = parse_bundle(&text) {
                let key = bundle.certified_key();
                prop_assert!(key.is_ok(), "a parsed bundle always yields a certified key: {:?}", key.err());
                prop_assert!(!bundle.chain_der.contains(&bundle.leaf_der));
            }
        }

        #[test]
        fn whitespace_inside_and_between_blocks_changes_nothing(
            insertions in proptest::collection::vec(
                (any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[ \t\r\n]{1,3}"),
                1..20,
            )
        ) {
            let original = parse_bundle(valid_bundle_text()).unwrap();
            let mut lines: Vec<String> = valid_bundle_text().lines().map(str::to_owned).collect();
            for (line, column, whitespace) in insertions {
                let count = lines.len();
                let line = &mut lines[line.index(count)];
                // Marker lines only take whitespace at their ends; base64 lines take it anywhere.
                let column = if line.contains("-----") {
                    if column.index(2) == 0 { 0 } else { line.len() }
                } else {
                    column.index(line.len() + 1)
                };
                line.insert_str(column, &whitespace);
            }
            let bundle = parse_bundle(&lines.join("\n"));
            prop_assert!(bundle.as_ref().is_ok_and(|bundle| *bundle == original), "{:?}", bundle);
        }
    }
}
