//! Salesforce secrets at rest: the password, client secret, refresh token, private key
//! and extra certificate authority of a connection created through the management API,
//! sealed with AES-256-GCM under the operator's key before they reach the catalog.
//!
//! The key is 32 random bytes, written as base64 (`pgforce key generate`), given to every
//! `pgforce` process in `PGFORCE_SECRET_KEY` or in a file named by
//! `PGFORCE_SECRET_KEY_FILE`. Each sealed value is a fresh 12-byte nonce followed by the
//! ciphertext and tag; the catalog also keeps the key's fingerprint (the first 16 hex
//! digits of its SHA-256), so a process holding another key says which key it needs
//! instead of failing to decrypt. Connections declared in a configuration file keep their
//! secrets in the file and are never sealed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pgforce_salesforce::SecretString;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::config::ConnectionConfig;
use crate::error::{Error, Result};

/// The operator's key.
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
        let hash = digest::digest(&digest::SHA256, &bytes);
        let fingerprint = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
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

    /// Seals `plaintext`: nonce || ciphertext || tag.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0_u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| problem("the system's random generator failed"))?;
        let mut sealed = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| problem("sealing secrets failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] sealed; fails on another key or altered bytes.
    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(problem("sealed secrets are too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| problem("sealed secrets have no valid nonce"))?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .aead()?
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| problem("sealed secrets do not open with this key (altered, or sealed under another key)"))?;
        Ok(plaintext.to_vec())
    }
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

/// Seals the secret fields of `config`.
pub(crate) fn seal(key: &SecretKey, config: &ConnectionConfig) -> Result<Vec<u8>> {
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
    key.seal(&json)
}

/// Fills the secret fields of `config` from what [`seal`] sealed.
pub(crate) fn unseal_into(
    key: &SecretKey,
    sealed: &[u8],
    config: &mut ConnectionConfig,
) -> Result<()> {
    let json = key.open(sealed)?;
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

    #[test]
    fn sealed_bytes_open_with_the_key_and_not_with_another_or_altered() {
        let (one, other) = (key(), key());
        let sealed = one.seal(b"s3cret").unwrap_or_default();
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "sealed, not in clear"
        );
        assert_eq!(one.open(&sealed).unwrap_or_default(), b"s3cret");
        assert!(other.open(&sealed).is_err());
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(one.open(&altered).is_err());
        assert_ne!(
            one.seal(b"s3cret").unwrap_or_default(),
            sealed,
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
}
