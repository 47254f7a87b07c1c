//! Secrets at rest: the master key (from `CERTBIND_MASTER_KEY` or a 0600 key file), AES-256-GCM sealing
//! of records bound to their id and purpose, and owner-only atomic file writes; it does not decide what
//! is secret or where sealed bytes are stored (`store` does), and never logs key material.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// The environment variable that carries the master key; it wins over the key file.
pub const MASTER_KEY_ENV: &str = "CERTBIND_MASTER_KEY";

/// First byte of every sealed value, so the format can change without guessing.
const SEAL_VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A key file is 64 hex characters and a newline; anything far larger is not a key file.
const MAX_KEY_FILE_LEN: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `origin` is the environment variable's name or the key file's path; the value itself is never shown.
    #[error(
        "{origin}: the master key must be 64 hex characters or the base64 of 32 bytes ({problem})"
    )]
    MalformedKey { origin: String, problem: String },
    #[error("master key file {}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sealed secret is malformed: {0}")]
    MalformedSealed(&'static str),
    #[error("cannot decrypt secret: wrong master key, wrong record, or tampered data")]
    Decrypt,
}

/// The key-encryption key for everything sealed at rest. 32 bytes on the heap, wiped on drop.
pub struct MasterKey(Box<Zeroizing<[u8; KEY_LEN]>>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// CERTBIND_MASTER_KEY (64 hex chars or base64 of 32 bytes) wins; else read `path`; else create it
    /// with mode 0600.
    ///
    /// Creation writes a complete temporary file and hard-links it into place: the link fails if the
    /// path exists (the create_new guarantee, so two processes cannot end up with different keys) and,
    /// unlike create_new followed by a write, no process can ever read a half-written key file.
    /// An empty environment value is an error rather than "unset": silently falling back to a file key
    /// would seal data under a key the operator did not intend.
    pub fn load_or_create(env_value: Option<&str>, path: &Path) -> Result<MasterKey, SecretError> {
        if let Some(value) = env_value {
            return parse_key_text(value, MASTER_KEY_ENV);
        }
        if let Some(key) = read_key_file(path)? {
            return Ok(key);
        }
        create_key_file(path)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let mut bytes = bytes;
        let key = MasterKey(Box::new(Zeroizing::new(bytes)));
        bytes.zeroize();
        key
    }

    /// AES-256-GCM, random 96-bit nonce, AAD = the record id and purpose (e.g. "ssl-abc123/key"), output = version byte || nonce || ciphertext+tag.
    ///
    /// The version byte is authenticated too (it prefixes the AAD), so it cannot be swapped undetected.
    /// Random nonces are safe here: the 2^32-messages-per-key bound is far beyond a certificate store.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher()
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &authenticated_data(aad),
                &mut sealed[1 + NONCE_LEN..],
            )
            // AES-GCM only refuses plaintexts over 64 GiB, which no caller can hold in memory here.
            .expect("AES-GCM plaintext within the 64 GiB limit");
        sealed.extend_from_slice(&tag);
        sealed
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(SecretError::MalformedSealed("empty"));
        };
        if version != SEAL_VERSION {
            return Err(SecretError::MalformedSealed("unknown version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::MalformedSealed("truncated"));
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher()
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &authenticated_data(aad),
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| SecretError::Decrypt)?;
        Ok(plaintext)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0[..]))
    }
}

fn authenticated_data(aad: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + aad.len());
    data.push(SEAL_VERSION);
    data.extend_from_slice(aad.as_bytes());
    data
}

/// Hex first: a 64-character hex string is also valid base64, but of 48 bytes, so there is no ambiguity.
fn parse_key_text(text: &str, origin: &str) -> Result<MasterKey, SecretError> {
    let malformed = |problem: String| SecretError::MalformedKey {
        origin: origin.to_owned(),
        problem,
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(malformed("it is empty".into()));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if text.len() == 2 * KEY_LEN && hex::decode_to_slice(text, &mut bytes[..]).is_ok() {
        return Ok(MasterKey::from_bytes(*bytes));
    }
    match decode_base64(text) {
        Some(decoded) if decoded.len() == KEY_LEN => {
            bytes.copy_from_slice(&decoded);
            Ok(MasterKey::from_bytes(*bytes))
        }
        Some(decoded) => Err(malformed(format!("got base64 of {} bytes", decoded.len()))),
        None => Err(malformed(format!(
            "got {} characters that are neither",
            text.chars().count()
        ))),
    }
}

/// Standard or URL-safe alphabet, padding optional, no whitespace inside.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let symbols = text.trim_end_matches('=');
    if text.len() - symbols.len() > 2 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(symbols.len() * 3 / 4));
    let mut accumulator: u32 = 0;
    let mut bits = 0u32;
    for symbol in symbols.bytes() {
        let value = match symbol {
            b'A'..=b'Z' => symbol - b'A',
            b'a'..=b'z' => symbol - b'a' + 26,
            b'0'..=b'9' => symbol - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    accumulator.zeroize();
    // Six leftover bits means one dangling symbol, which encodes no byte.
    (bits < 6).then_some(out)
}

fn key_file_error(path: &Path) -> impl FnOnce(io::Error) -> SecretError + '_ {
    move |source| SecretError::KeyFile {
        path: path.to_owned(),
        source,
    }
}

fn read_key_file(path: &Path) -> Result<Option<MasterKey>, SecretError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(key_file_error(path)(error)),
    };
    let mode = file
        .metadata()
        .map_err(key_file_error(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", mode & 0o777),
            "master key file is readable by other users; it should be mode 0600"
        );
    }
    // Pre-sized so reading never reallocates and leaves an unwiped copy behind.
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(key_file_error(path))?;
    let origin = path.display().to_string();
    let text = std::str::from_utf8(&text).map_err(|_| SecretError::MalformedKey {
        origin: origin.clone(),
        problem: "it is not text".into(),
    })?;
    parse_key_text(text, &origin).map(Some)
}

fn create_key_file(path: &Path) -> Result<MasterKey, SecretError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(&mut bytes[..]);
    let mut text = Zeroizing::new([0u8; 2 * KEY_LEN + 1]);
    hex::encode_to_slice(&bytes[..], &mut text[..2 * KEY_LEN])
        .expect("hex of 32 bytes is 64 characters");
    text[2 * KEY_LEN] = b'\n';

    let directory = parent_directory(path);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .map_err(key_file_error(path))?;
    let temporary = write_temporary(directory, path, &text[..]).map_err(key_file_error(path))?;
    let linked = fs::hard_link(&temporary, path);
    // The temporary name is ours alone; failing to remove it only leaves a stray file behind.
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_directory(directory).map_err(key_file_error(path))?;
            Ok(MasterKey::from_bytes(*bytes))
        }
        // Another process created the key first; its key is the key.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            read_key_file(path)?.ok_or_else(|| key_file_error(path)(io::ErrorKind::NotFound.into()))
        }
        Err(error) => Err(key_file_error(path)(error)),
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically: readers see the old file or the new one, never
/// a mix, and the file is never briefly readable by others.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let directory = parent_directory(path);
    let temporary = write_temporary(directory, path, bytes)?;
    if let Err(error) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    sync_directory(directory)
}

fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A new 0600 file next to `target` (same filesystem, so rename and link are atomic), flushed to disk.
fn write_temporary(directory: &Path, target: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(temporary)
}

/// Makes the new directory entry durable; without it a crash can lose a file whose contents were synced.
fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key_bytes() -> [u8; 32] {
        std::array::from_fn(|index| index as u8)
    }

    fn same_key(left: &MasterKey, right: &MasterKey) -> bool {
        right.open("probe", &left.seal("probe", b"x")).is_ok()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = MasterKey::from_bytes(key_bytes());
        for plaintext in [&b""[..], b"k", &[7u8; 5000]] {
            let sealed = key.seal("ssl-abc123/key", plaintext);
            assert_eq!(sealed.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(sealed[0], SEAL_VERSION);
            assert_eq!(&key.open("ssl-abc123/key", &sealed).unwrap()[..], plaintext);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let key = MasterKey::from_bytes(key_bytes());
        assert_ne!(key.seal("a", b"same"), key.seal("a", b"same"));
    }

    #[test]
    fn wrong_aad_fails() {
        let key = MasterKey::from_bytes(key_bytes());
        let sealed = key.seal("ssl-abc123/key", b"secret");
        assert!(matches!(
            key.open("ssl-abc124/key", &sealed),
            Err(SecretError::Decrypt)
        ));
        assert!(matches!(
            key.open("ssl-abc123/cert", &sealed),
            Err(SecretError::Decrypt)
        ));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let key = MasterKey::from_bytes(key_bytes());
        let sealed = key.seal("id/key", b"secret");
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(key.open("id/key", &tampered).is_err(), "byte {index}");
        }
        for length in 0..sealed.len() {
            assert!(
                key.open("id/key", &sealed[..length]).is_err(),
                "length {length}"
            );
        }
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = MasterKey::from_bytes(key_bytes()).seal("id/key", b"secret");
        let mut other = key_bytes();
        other[31] ^= 0x80;
        assert!(matches!(
            MasterKey::from_bytes(other).open("id/key", &sealed),
            Err(SecretError::Decrypt)
        ));
    }

    #[test]
    fn env_value_forms() {
        let expected = MasterKey::from_bytes(key_bytes());
        let standard = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let url_safe_unpadded = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        for value in [
            HEX_KEY,
            &HEX_KEY.to_uppercase(),
            &format!(" {HEX_KEY}\n"),
            standard,
            url_safe_unpadded,
        ] {
            let key = MasterKey::load_or_create(Some(value), &path).unwrap();
            assert!(same_key(&key, &expected), "{value}");
        }
        assert!(!path.exists(), "an environment key never creates the file");
    }

    #[test]
    fn malformed_env_value_names_the_variable_not_the_value() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        for value in [
            "",
            "   ",
            "not a key at all",
            &HEX_KEY[..62],
            "c2VjcmV0LXZhbHVlLXRoYXQtaXMtc2hvcnQ=",
            &format!("{HEX_KEY}00"),
        ] {
            let error = MasterKey::load_or_create(Some(value), &path).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, SecretError::MalformedKey { .. }));
            assert!(message.starts_with("CERTBIND_MASTER_KEY: "), "{message}");
            if !value.trim().is_empty() {
                assert!(!message.contains(value.trim()), "{message}");
            }
        }
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600_and_reused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/dir/master.key");
        let created = MasterKey::load_or_create(None, &path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap().trim().len(), 64);
        let loaded = MasterKey::load_or_create(None, &path).unwrap();
        assert!(same_key(&created, &loaded));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["master.key"]);
    }

    #[test]
    fn racing_creators_agree_on_one_key() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        let keys: Vec<MasterKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| MasterKey::load_or_create(None, &path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| same_key(&keys[0], key)));
    }

    #[test]
    fn malformed_key_file_names_the_path() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        fs::write(&path, "short").unwrap();
        let message = MasterKey::load_or_create(None, &path)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn write_private_file_replaces_atomically_with_mode_0600() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("credentials.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, b"{\"new\":true}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"new\":true}");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes(key_bytes())),
            "MasterKey(..)"
        );
    }
}
