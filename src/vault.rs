//! The vault: the one place that turns ciphertext into a secret and back.
//!
//! Every record is `[version][key-id length][key id][nonce][ciphertext ‖ tag]`, sealed with
//! AES-256-GCM under the key the id names. The associated data binds the record to the row and
//! column it was written for (see [`Binding`]) together with its header, so a ciphertext copied
//! to another row or column, or a record whose header was edited, does not open.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

const RECORD_VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const MAX_KEY_ID_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the record is not a vault record")]
    Malformed,
    #[error("the record was sealed under key `{0}`, which is not in the keyring")]
    UnknownKey(String),
    #[error("the record does not open: it was altered or belongs to another row or column")]
    Unsealed,
    #[error("the keyring is invalid: {0}")]
    BadKeyring(String),
    #[error("the system random source failed")]
    Random,
    #[error("the record's plaintext is not UTF-8")]
    NotText,
}

/// Where a record lives: associated data that ties the ciphertext to its place.
#[derive(Debug, Clone)]
pub struct Binding(String);

impl Binding {
    pub fn new(table: &str, row: &str, column: &str) -> Self {
        Self(format!("{table}\u{1f}{row}\u{1f}{column}"))
    }
}

struct VaultKey {
    id: String,
    key: LessSafeKey,
}

/// A keyring, newest key first. Only the newest key seals; every key opens.
pub struct Vault {
    keys: Vec<VaultKey>,
    rng: SystemRandom,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Vault").field("key_ids", &ids).finish_non_exhaustive()
    }
}

impl Vault {
    /// Parses `id:base64key,id:base64key,…`, newest first.
    pub fn from_keyring(keyring: &SecretString) -> Result<Self, VaultError> {
        let mut keys = Vec::new();
        for entry in keyring.expose_secret().split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, material) =
                entry.split_once(':').ok_or_else(|| VaultError::BadKeyring("each key must be `id:base64`".into()))?;
            validate_key_id(id)?;
            if keys.iter().any(|k: &VaultKey| k.id == id) {
                return Err(VaultError::BadKeyring(format!("key id `{id}` appears twice")));
            }
            let bytes =
                STANDARD.decode(material).map_err(|_| VaultError::BadKeyring(format!("key `{id}` is not base64")))?;
            if bytes.len() != KEY_LEN {
                return Err(VaultError::BadKeyring(format!("key `{id}` must be 32 bytes")));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| VaultError::BadKeyring(format!("key `{id}` is unusable")))?;
            keys.push(VaultKey { id: id.to_owned(), key: LessSafeKey::new(unbound) });
        }
        if keys.is_empty() {
            return Err(VaultError::BadKeyring("no keys".into()));
        }
        Ok(Self { keys, rng: SystemRandom::new() })
    }

    /// A fresh keyring entry `id:base64key` for `keys generate`.
    pub fn generate_key_entry() -> Result<String, VaultError> {
        let rng = SystemRandom::new();
        let mut id = [0u8; 4];
        let mut key = [0u8; KEY_LEN];
        rng.fill(&mut id).map_err(|_| VaultError::Random)?;
        rng.fill(&mut key).map_err(|_| VaultError::Random)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("k{id}:{}", STANDARD.encode(key)))
    }

    pub fn current_key_id(&self) -> &str {
        // The constructor refuses an empty keyring.
        self.keys.first().map(|k| k.id.as_str()).unwrap_or_default()
    }

    pub fn seal(&self, plaintext: &[u8], binding: &Binding) -> Result<Vec<u8>, VaultError> {
        let key = self.keys.first().ok_or(VaultError::UnknownKey(String::new()))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let header = header(&key.id);
        let mut record = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + 16);
        record.extend_from_slice(&header);
        record.extend_from_slice(&nonce);
        let mut in_out = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&header, binding)),
                &mut in_out,
            )
            .map_err(|_| VaultError::Unsealed)?;
        record.extend_from_slice(&in_out);
        Ok(record)
    }

    pub fn seal_str(&self, secret: &SecretString, binding: &Binding) -> Result<Vec<u8>, VaultError> {
        self.seal(secret.expose_secret().as_bytes(), binding)
    }

    pub fn open(&self, record: &[u8], binding: &Binding) -> Result<Vec<u8>, VaultError> {
        let parsed = parse(record)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parsed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(parsed.key_id.to_owned()))?;
        let nonce = Nonce::try_assume_unique_for_key(parsed.nonce).map_err(|_| VaultError::Malformed)?;
        let mut in_out = parsed.sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad(parsed.header, binding)), &mut in_out)
            .map_err(|_| VaultError::Unsealed)?;
        Ok(plain.to_vec())
    }

    pub fn open_str(&self, record: &[u8], binding: &Binding) -> Result<SecretString, VaultError> {
        let bytes = self.open(record, binding)?;
        String::from_utf8(bytes).map(SecretString::from).map_err(|_| VaultError::NotText)
    }

    /// Whether the keyring holds the key of this id (so records sealed under it open).
    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// The id of the key a record was sealed under.
    pub fn key_id_of(record: &[u8]) -> Result<String, VaultError> {
        parse(record).map(|p| p.key_id.to_owned())
    }
}

fn validate_key_id(id: &str) -> Result<(), VaultError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadKeyring(format!(
            "key id `{id}` must be 1–{MAX_KEY_ID_LEN} characters of A–Z, a–z, 0–9, - or _"
        )))
    }
}

fn header(key_id: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(2 + key_id.len());
    h.push(RECORD_VERSION);
    // Key ids are validated to at most 32 bytes, so the length fits a byte.
    h.push(key_id.len() as u8);
    h.extend_from_slice(key_id.as_bytes());
    h
}

fn aad(header: &[u8], binding: &Binding) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + binding.0.len());
    a.extend_from_slice(header);
    a.extend_from_slice(binding.0.as_bytes());
    a
}

struct Parsed<'a> {
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    sealed: &'a [u8],
}

fn parse(record: &[u8]) -> Result<Parsed<'_>, VaultError> {
    let (&version, rest) = record.split_first().ok_or(VaultError::Malformed)?;
    if version != RECORD_VERSION {
        return Err(VaultError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(VaultError::Malformed)?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(VaultError::Malformed);
    }
    let (id, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(id).map_err(|_| VaultError::Malformed)?;
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    Ok(Parsed { header: &record[..2 + id_len], key_id, nonce, sealed })
}

/// Random bytes, base64url without padding: for session ids, state, CSRF tokens.
pub fn random_token(bytes: usize) -> Result<String, VaultError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).map_err(|_| VaultError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// SHA-256, hex: how secrets that only need to be looked up (session ids, state) are stored.
pub fn lookup_hash(value: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, value.as_bytes()).as_ref())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Equality whose time depends only on the lengths, for comparing secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lookup_hashes_are_sha256_in_lowercase_hex() {
        assert_eq!(lookup_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    fn vault(entries: &[&str]) -> Vault {
        Vault::from_keyring(&SecretString::from(entries.join(","))).unwrap()
    }

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    fn here() -> Binding {
        Binding::new("connections", "7/yappointment", "access_token")
    }

    #[test]
    fn round_trip() {
        let v = vault(&[&key("a", 1)]);
        let sealed = v.seal(b"yapp_at_secret", &here()).unwrap();
        assert_eq!(v.open(&sealed, &here()).unwrap(), b"yapp_at_secret");
        assert!(!sealed.windows(8).any(|w| w == b"yapp_at_"));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let v = vault(&[&key("a", 1)]);
        let sealed = v.seal(b"secret", &here()).unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(v.open(&t, &here()).is_err(), "byte {i} flipped still opened");
        }
        assert!(v.open(&sealed[..sealed.len() - 1], &here()).is_err());
    }

    #[test]
    fn moved_to_another_row_or_column_fails() {
        let v = vault(&[&key("a", 1)]);
        let sealed = v.seal(b"secret", &here()).unwrap();
        let other_row = Binding::new("connections", "8/yappointment", "access_token");
        let other_column = Binding::new("connections", "7/yappointment", "refresh_token");
        assert!(matches!(v.open(&sealed, &other_row), Err(VaultError::Unsealed)));
        assert!(matches!(v.open(&sealed, &other_column), Err(VaultError::Unsealed)));
    }

    #[test]
    fn unknown_key_id_fails() {
        let old = vault(&[&key("old", 1)]);
        let sealed = old.seal(b"secret", &here()).unwrap();
        let new = vault(&[&key("new", 2)]);
        assert!(matches!(new.open(&sealed, &here()), Err(VaultError::UnknownKey(id)) if id == "old"));
    }

    #[test]
    fn old_keys_still_open_and_newest_seals() {
        let old = vault(&[&key("old", 1)]);
        let sealed = old.seal(b"secret", &here()).unwrap();
        let both = vault(&[&key("new", 2), &key("old", 1)]);
        assert_eq!(both.open(&sealed, &here()).unwrap(), b"secret");
        let resealed = both.seal(b"secret", &here()).unwrap();
        assert_eq!(Vault::key_id_of(&resealed).unwrap(), "new");
    }

    #[test]
    fn ten_thousand_seals_use_ten_thousand_nonces() {
        let v = vault(&[&key("a", 1)]);
        let header_len = 2 + 1;
        let nonces: HashSet<Vec<u8>> = (0..10_000)
            .map(|_| v.seal(b"same plaintext", &here()).unwrap()[header_len..header_len + NONCE_LEN].to_vec())
            .collect();
        assert_eq!(nonces.len(), 10_000);
    }

    #[test]
    fn bad_keyrings_are_refused() {
        for bad in ["", "nokey", "a:notbase64!", &format!("a:{}", STANDARD.encode([0u8; 16])), "bad id:AAAA"] {
            assert!(Vault::from_keyring(&SecretString::from(bad.to_owned())).is_err(), "{bad}");
        }
        let dup = format!("{},{}", key("a", 1), key("a", 2));
        assert!(Vault::from_keyring(&SecretString::from(dup)).is_err());
    }

    #[test]
    fn generated_entries_parse() {
        let entry = Vault::generate_key_entry().unwrap();
        let v = Vault::from_keyring(&SecretString::from(entry)).unwrap();
        let sealed = v.seal(b"x", &here()).unwrap();
        assert_eq!(v.open(&sealed, &here()).unwrap(), b"x");
    }

    #[test]
    fn debug_shows_ids_only() {
        let v = vault(&[&key("a", 1)]);
        assert_eq!(format!("{v:?}"), "Vault { key_ids: [\"a\"], .. }");
    }
}
