//! Salesforce secrets at rest: the password, client secret, refresh token, private key
//! and extra certificate authority of a connection created through the management API
//! (or of a consent in progress), sealed with AES-256-GCM under the operator's key before
//! they reach the catalog.
//!
//! # Key concepts
//!
//! - **Keys.** A key is 32 random bytes, written as base64 (`pgforce key generate`), given
//!   to every `pgforce` process in `PGFORCE_SECRET_KEY` or in a file named by
//!   `PGFORCE_SECRET_KEY_FILE`. Either may hold several keys, separated by commas or
//!   whitespace ([`SecretKeys`]): the first seals, every one opens what it sealed. That is
//!   what lets processes switch keys one at a time (docs/api.md, "Rotating the key").
//! - **Fingerprints.** The catalog keeps, beside each sealed value, the fingerprint of the
//!   key that sealed it (the first 16 hex digits of the key's SHA-256): the value is
//!   opened with that key, and a process without it says which key it needs instead of
//!   failing to decrypt.
//! - **Binding.** Each value is sealed with associated data naming what it belongs to
//!   ([`Owner`]: `pgforce:connection:<id>:secrets`, `pgforce:consent:<hash of the
//!   state>`), so bytes copied from one row to another do not open there.
//! - **Formats.** A value is `2 || nonce (12 bytes) || ciphertext || tag`, bound to its
//!   owner. Values sealed before binding existed are `nonce || ciphertext || tag` with no
//!   associated data; they still open (a bound reading is tried first when the first byte
//!   is 2, then the unbound one: a tag check decides, never the byte alone) and are sealed
//!   again, bound, by `pgforce key rotate` and by the next change of their connection.
//!
//! Connections declared in a configuration file keep their secrets in the file and are
//! never sealed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pgforce_salesforce::SecretString;
use pgforce_store::ConnectionId;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::config::ConnectionConfig;
use crate::error::{Error, Result};

/// The leading byte of a value sealed bound to its owner.
const BOUND_FORMAT: u8 = 2;

/// One of the operator's keys.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
    fingerprint: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint)
    }
}

fn problem(text: impl Into<String>) -> Error {
    Error::Document {
        problem: text.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SecretKey {
    /// Reads a key written as base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|e| problem(format!("the secret key is not base64: {e}")))?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|bytes: Vec<u8>| {
            problem(format!(
                "the secret key must be 32 bytes (base64 of 32 random bytes, as `pgforce key generate` writes); this one is {}",
                bytes.len()
            ))
        })?;
        let fingerprint = hex(&digest::digest(&digest::SHA256, &bytes).as_ref()[..8]);
        Ok(Self { bytes, fingerprint })
    }

    /// A new random key, as base64.
    pub fn generate() -> Result<String> {
        let mut bytes = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| problem("the system's random generator failed"))?;
        Ok(STANDARD.encode(bytes))
    }

    /// The key's fingerprint, as the catalog records it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aead(&self) -> Result<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| problem("the secret key cannot be used for AES-256-GCM"))
    }

    /// Seals `plaintext` bound to `aad`: nonce || ciphertext || tag.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0_u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| problem("the system's random generator failed"))?;
        let mut sealed = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| problem("sealing secrets failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] sealed with the same `aad`; `None` on another key,
    /// other associated data or altered bytes.
    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Option<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return Ok(None);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| problem("sealed secrets have no valid nonce"))?;
        let mut buffer = ciphertext.to_vec();
        Ok(self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()
            .map(|plaintext| plaintext.to_vec()))
    }
}

/// The operator's keys, as one process holds them: the first seals, each opens what it
/// sealed (found by the fingerprint kept with the value).
#[derive(Clone)]
pub struct SecretKeys {
    /// Never empty; no fingerprint twice.
    keys: Vec<SecretKey>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKeys({})", self.fingerprints().join(", "))
    }
}

impl SecretKeys {
    /// Reads one key or several, each base64 of 32 bytes, separated by commas or
    /// whitespace; the first is the one that seals.
    pub fn parse(text: &str) -> Result<Self> {
        let written: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .collect();
        let count = written.len();
        let mut keys = written.into_iter().enumerate().map(|(at, part)| {
            SecretKey::from_base64(part)
                .map_err(|error| problem(format!("key {} of {count}: {error}", at + 1)))
        });
        let first = keys
            .next()
            .ok_or_else(|| problem("no secret key given (the text is empty)"))??;
        Ok(Self::new(first, keys.collect::<Result<Vec<_>>>()?))
    }

    /// `first`, which seals, then `others` (a key given twice counts once).
    pub fn new(first: SecretKey, others: impl IntoIterator<Item = SecretKey>) -> Self {
        let mut keys = vec![first];
        for key in others {
            if !keys.iter().any(|k| k.fingerprint == key.fingerprint) {
                keys.push(key);
            }
        }
        Self { keys }
    }

    /// These keys with `key` put first, to seal with.
    pub fn sealing_first(&self, key: SecretKey) -> Self {
        Self::new(key, self.keys.iter().cloned())
    }

    /// The key that seals.
    pub fn sealing(&self) -> &SecretKey {
        &self.keys[0]
    }

    /// The fingerprints of the keys, the sealing one first.
    pub fn fingerprints(&self) -> Vec<&str> {
        self.keys.iter().map(SecretKey::fingerprint).collect()
    }

    /// The key whose fingerprint is `fingerprint`.
    fn by_fingerprint(&self, fingerprint: &str) -> Result<&SecretKey> {
        self.keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or_else(|| {
                problem(format!(
                    "the secrets were sealed under key {fingerprint}, which is not among this process's keys ({})",
                    self.fingerprints().join(", ")
                ))
            })
    }
}

/// What a sealed value belongs to: sealed bound to it, it opens nowhere else.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    /// A connection's secrets.
    Connection(ConnectionId),
    /// A consent in progress, by its `state`.
    Consent(&'a str),
}

impl Owner<'_> {
    /// The associated data the value is sealed with.
    fn associated_data(&self) -> String {
        match self {
            Self::Connection(id) => format!("pgforce:connection:{id}:secrets"),
            Self::Consent(state) => format!(
                "pgforce:consent:{}",
                hex(digest::digest(&digest::SHA256, state.as_bytes()).as_ref())
            ),
        }
    }
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection(id) => write!(f, "connection {id}"),
            Self::Consent(_) => f.write_str("a consent in progress"),
        }
    }
}

/// A sealed value with the fingerprint of the key that sealed it, as the catalog keeps
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    /// The sealing key's fingerprint.
    pub key: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Sealed {
    /// The value as the catalog rows hold it: `(fingerprint, bytes)`.
    pub(crate) fn of((key, bytes): &(String, Vec<u8>)) -> Self {
        Self {
            key: key.clone(),
            bytes: bytes.clone(),
        }
    }
}

/// Seals `plaintext` under the sealing key of `keys`, bound to `owner`.
fn seal_bytes(keys: &SecretKeys, owner: Owner<'_>, plaintext: &[u8]) -> Result<Sealed> {
    let key = keys.sealing();
    let mut bytes = vec![BOUND_FORMAT];
    bytes.extend(key.seal(plaintext, owner.associated_data().as_bytes())?);
    Ok(Sealed {
        key: key.fingerprint.clone(),
        bytes,
    })
}

/// Opens `sealed` with the key its fingerprint names: the plaintext, and whether it was
/// sealed bound to `owner` (`false`: the unbound format of before).
fn open_bytes(keys: &SecretKeys, owner: Owner<'_>, sealed: &Sealed) -> Result<(Vec<u8>, bool)> {
    let key = keys.by_fingerprint(&sealed.key)?;
    if let Some((&BOUND_FORMAT, rest)) = sealed.bytes.split_first()
        && let Some(plaintext) = key.open(rest, owner.associated_data().as_bytes())?
    {
        return Ok((plaintext, true));
    }
    key.open(&sealed.bytes, &[])?
        .map(|plaintext| (plaintext, false))
        .ok_or_else(|| {
            problem(format!(
                "the sealed secrets of {owner} do not open with key {} (altered, or copied from another row)",
                sealed.key
            ))
        })
}

/// `sealed` sealed again under the sealing key of `keys`, bound to `owner`; `None` when
/// it already is.
pub(crate) fn reseal(
    keys: &SecretKeys,
    owner: Owner<'_>,
    sealed: &Sealed,
) -> Result<Option<Sealed>> {
    let (plaintext, bound) = open_bytes(keys, owner, sealed)?;
    if bound && sealed.key == keys.sealing().fingerprint {
        return Ok(None);
    }
    seal_bytes(keys, owner, &plaintext).map(Some)
}

/// The secret fields of a connection's configuration (and its extra CA, which the API
/// takes as content and keeps with them).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Secrets {
    password: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    ca_certificate: Option<String>,
}

/// A SHA-256 of the secret fields of `config` (hex): tells credentials apart without
/// keeping them.
pub(crate) fn digest(config: &ConnectionConfig) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    let texts = [
        &config.password,
        &config.client_secret,
        &config.refresh_token,
        &config.private_key,
    ]
    .map(|secret| secret.as_ref().map_or("", |s| s.expose_secret()));
    for text in texts
        .into_iter()
        .chain([config.ca_certificate.as_deref().unwrap_or_default()])
    {
        context.update(&(text.len() as u64).to_le_bytes());
        context.update(text.as_bytes());
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The secret fields of `config` that are set, by their configuration names, in clear
/// (to carry them into a changed configuration).
pub(crate) fn exposed(config: &ConnectionConfig) -> Vec<(&'static str, String)> {
    [
        ("password", &config.password),
        ("client_secret", &config.client_secret),
        ("refresh_token", &config.refresh_token),
        ("private_key", &config.private_key),
    ]
    .into_iter()
    .filter_map(|(name, secret)| Some((name, secret.as_ref()?.expose_secret().to_owned())))
    .chain(
        config
            .ca_certificate
            .clone()
            .map(|pem| ("ca_certificate", pem)),
    )
    .collect()
}

/// Seals the secret fields of `config` under the sealing key of `keys`, bound to `owner`.
pub(crate) fn seal(
    keys: &SecretKeys,
    owner: Owner<'_>,
    config: &ConnectionConfig,
) -> Result<Sealed> {
    let expose = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
    let secrets = Secrets {
        password: expose(&config.password),
        client_secret: expose(&config.client_secret),
        refresh_token: expose(&config.refresh_token),
        private_key: expose(&config.private_key),
        ca_certificate: config.ca_certificate.clone(),
    };
    let json =
        serde_json::to_vec(&secrets).map_err(|e| problem(format!("serialising secrets: {e}")))?;
    seal_bytes(keys, owner, &json)
}

/// Fills the secret fields of `config` from what [`seal`] sealed for `owner`.
pub(crate) fn unseal_into(
    keys: &SecretKeys,
    owner: Owner<'_>,
    sealed: &Sealed,
    config: &mut ConnectionConfig,
) -> Result<()> {
    let (json, _) = open_bytes(keys, owner, sealed)?;
    let secrets: Secrets = serde_json::from_slice(&json)
        .map_err(|e| problem(format!("reading opened secrets: {e}")))?;
    config.password = secrets.password.map(SecretString::from);
    config.client_secret = secrets.client_secret.map(SecretString::from);
    config.refresh_token = secrets.refresh_token.map(SecretString::from);
    config.private_key = secrets.private_key.map(SecretString::from);
    config.ca_certificate = secrets.ca_certificate;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&SecretKey::generate().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn one(key: &SecretKey) -> SecretKeys {
        SecretKeys::new(key.clone(), [])
    }

    fn first() -> Owner<'static> {
        Owner::Connection(ConnectionId::from(1))
    }

    #[test]
    fn sealed_bytes_open_with_the_key_and_not_with_another_or_altered() {
        let (k, other) = (key(), key());
        let sealed = seal_bytes(&one(&k), first(), b"s3cret").unwrap();
        assert!(
            !sealed.bytes.windows(6).any(|w| w == b"s3cret"),
            "sealed, not in clear"
        );
        assert_eq!(sealed.key, k.fingerprint());
        assert_eq!(
            open_bytes(&one(&k), first(), &sealed).unwrap(),
            (b"s3cret".to_vec(), true)
        );
        let error = open_bytes(&one(&other), first(), &sealed).unwrap_err();
        assert!(
            error.to_string().contains("not among this process's keys"),
            "{error}"
        );
        let mut altered = sealed.clone();
        let last = altered.bytes.len() - 1;
        altered.bytes[last] ^= 1;
        assert!(open_bytes(&one(&k), first(), &altered).is_err());
        assert_ne!(
            seal_bytes(&one(&k), first(), b"s3cret").unwrap().bytes,
            sealed.bytes,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn keys_must_be_base64_of_32_bytes() {
        assert!(SecretKey::from_base64("not base64!").is_err());
        let short = SecretKey::from_base64(&STANDARD.encode([1_u8; 16]))
            .map(|_| ())
            .unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        let k = key();
        assert_eq!(k.fingerprint().len(), 16);
    }

    #[test]
    fn several_keys_are_read_the_first_seals_and_each_opens_what_it_sealed() {
        let (old, new) = (key(), key());
        let (old64, new64) = (STANDARD.encode(old.bytes), STANDARD.encode(new.bytes));
        let during = SecretKeys::parse(&format!(" {old64},{new64}\n")).unwrap();
        let after = SecretKeys::parse(&format!("{new64}\n\t{old64} , {new64}")).unwrap();
        assert_eq!(
            during.fingerprints(),
            [old.fingerprint(), new.fingerprint()]
        );
        assert_eq!(after.fingerprints(), [new.fingerprint(), old.fingerprint()]);
        let by_old = seal_bytes(&during, first(), b"a").unwrap();
        let by_new = seal_bytes(&after, first(), b"b").unwrap();
        assert_eq!(
            (by_old.key.as_str(), by_new.key.as_str()),
            (old.fingerprint(), new.fingerprint())
        );
        for keys in [&during, &after] {
            assert_eq!(open_bytes(keys, first(), &by_old).unwrap().0, b"a");
            assert_eq!(open_bytes(keys, first(), &by_new).unwrap().0, b"b");
        }
        assert!(open_bytes(&one(&new), first(), &by_old).is_err());

        let error = SecretKeys::parse(&format!("{old64}, short")).unwrap_err();
        assert!(error.to_string().contains("key 2 of 2"), "{error}");
        assert!(SecretKeys::parse(" ,\n").is_err(), "no key at all");
    }

    #[test]
    fn a_value_sealed_for_one_owner_does_not_open_for_another() {
        let keys = one(&key());
        let sealed = seal_bytes(&keys, first(), b"s3cret").unwrap();
        for other in [
            Owner::Connection(ConnectionId::from(2)),
            Owner::Consent("state"),
        ] {
            let error = open_bytes(&keys, other, &sealed).unwrap_err();
            assert!(error.to_string().contains("copied"), "{error}");
        }
        let consent = seal_bytes(&keys, Owner::Consent("one"), b"x").unwrap();
        assert!(open_bytes(&keys, Owner::Consent("two"), &consent).is_err());
        assert!(open_bytes(&keys, Owner::Consent("one"), &consent).is_ok());
    }

    #[test]
    fn unbound_values_of_before_still_open_and_are_sealed_again_bound() {
        let k = key();
        let keys = one(&k);
        // Until 2026-12 values were nonce || ciphertext || tag, with no associated data;
        // some began with the byte that now marks the bound format.
        let mut unbound = Vec::new();
        while unbound.len() < 2 || !unbound.iter().any(|v: &Vec<u8>| v[0] == BOUND_FORMAT) {
            unbound.push(k.seal(b"s3cret", &[]).unwrap());
        }
        for bytes in unbound {
            let old = Sealed {
                key: k.fingerprint().to_owned(),
                bytes,
            };
            assert_eq!(
                open_bytes(&keys, first(), &old).unwrap(),
                (b"s3cret".to_vec(), false)
            );
            let bound = reseal(&keys, first(), &old).unwrap().unwrap();
            assert_eq!(bound.bytes[0], BOUND_FORMAT);
            assert_eq!(
                open_bytes(&keys, first(), &bound).unwrap(),
                (b"s3cret".to_vec(), true)
            );
            assert_eq!(
                reseal(&keys, first(), &bound).unwrap(),
                None,
                "already bound"
            );
        }
    }
}
