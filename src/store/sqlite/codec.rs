//! Column encodings of the SQLite backend (attributes, name lists, addresses, sealed text) and the
//! random API key material; no queries here.

use crate::model::{Attrs, BindingRole, LbKind};
use crate::secret::MasterKey;
use crate::store::{Paging, StoreError, StoreResult};
use rand::Rng;
use rusqlite::types::Type;
use rusqlite::Row;
use std::net::Ipv4Addr;
use zeroize::{Zeroize, Zeroizing};

/// `Attrs` as one form-urlencoded text column: ordered, lossless for any UTF-8, and readable in
/// the `sqlite3` shell, without a serde dependency in the store.
pub(super) fn encode_attrs(attrs: &Attrs) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(attrs.iter())
        .finish()
}

pub(super) fn decode_attrs(text: &str) -> Attrs {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// A list of names as repeated `n=` pairs, so no separator character can clash with a name.
pub(super) fn encode_names(names: &[String]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(names.iter().map(|name| ("n", name.as_str())))
        .finish()
}

pub(super) fn decode_names(text: &str) -> Vec<String> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(_, name)| name.into_owned())
        .collect()
}

/// Addresses are stored as their 32-bit number so that allocation can scan ranges in order.
pub(super) fn address_text(number: i64) -> String {
    u32::try_from(number)
        .map(|n| Ipv4Addr::from(n).to_string())
        .unwrap_or_default()
}

/// Random text from an alphabet, drawn from the OS generator because these are credentials.
fn random_text(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A public key: 40 alphanumerics (~238 bits). Only `[A-Za-z0-9]`, never `+`, `/` or `=`, so it
/// survives unescaped query strings (spec §3.4: a `+` decodes to a space and yields RetCode 172).
pub(super) fn random_public_key() -> String {
    random_text(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        40,
    )
}

/// A private key: 40 lower-case hex characters (160 bits).
pub(super) fn random_private_key() -> String {
    random_text(b"0123456789abcdef", 40)
}

/// Opens a sealed text column. A failure means a wrong master key or a tampered row: either way
/// an operator problem, reported as a backend error without the secret.
pub(super) fn open_text(
    master: &MasterKey,
    aad: &str,
    sealed: &[u8],
) -> StoreResult<Zeroizing<String>> {
    let mut plain = master
        .open(aad, sealed)
        .map_err(|e| StoreError::Backend(anyhow::Error::new(e).context(format!("open {aad}"))))?;
    let bytes = std::mem::take(&mut *plain);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(StoreError::Backend(anyhow::anyhow!("{aad} is not UTF-8")))
        }
    }
}

/// Reads a `kind` column. An unknown value means a corrupt row; reported as a conversion error so
/// row callbacks stay plain `rusqlite` code.
pub(super) fn kind_at(row: &Row<'_>, index: usize) -> rusqlite::Result<LbKind> {
    let text: String = row.get(index)?;
    LbKind::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown load balancer kind {text:?}").into(),
        )
    })
}

/// Reads a `role` column (see `kind_at`).
pub(super) fn role_at(row: &Row<'_>, index: usize) -> rusqlite::Result<BindingRole> {
    let value: i64 = row.get(index)?;
    BindingRole::from_i64(value).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Integer,
            format!("unknown binding role {value}").into(),
        )
    })
}

/// SQLite wants signed 64-bit limits; anything larger means "no limit".
pub(super) fn limit_offset(paging: Paging) -> (i64, i64) {
    (
        i64::try_from(paging.limit).unwrap_or(i64::MAX),
        i64::try_from(paging.offset).unwrap_or(i64::MAX),
    )
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_round_trip_any_text() {
        let mut attrs = Attrs::new();
        attrs.insert("Method".into(), "Roundrobin".into());
        attrs.insert("a=b&c".into(), "x y+z%\n中".into());
        attrs.insert(String::new(), String::new());
        assert_eq!(decode_attrs(&encode_attrs(&attrs)), attrs);
        assert!(decode_attrs("").is_empty());
    }

    #[test]
    fn names_round_trip_with_separators() {
        let names = vec![
            "a.example".to_string(),
            "b,c&d=e".to_string(),
            String::new(),
        ];
        assert_eq!(decode_names(&encode_names(&names)), names);
        assert!(decode_names(&encode_names(&[])).is_empty());
    }

    #[test]
    fn keys_have_the_promised_shape() {
        let public = random_public_key();
        assert_eq!(public.len(), 40);
        assert!(public.bytes().all(|b| b.is_ascii_alphanumeric()));
        let private = random_private_key();
        assert_eq!(private.len(), 40);
        assert!(private
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn addresses_format_as_dotted_quads() {
        assert_eq!(
            address_text(i64::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)))),
            "127.1.0.1"
        );
    }
}
