//! The cluster secret: what clients and nodes prove to each other that they share.
//!
//! A secret is 32 random bytes (`wasp secret new` writes them as 64 hex digits), or a
//! passphrase stretched into 32 bytes with Argon2id. After the TLS handshake each side of a
//! connection sends a [`Proof`]: a keyed blake3 hash, under a key derived from the secret, of
//! its [`Role`] and of keying material exported from that TLS session. The proof is bound to
//! the session (a man in the middle has two sessions with different keying material, and a
//! recorded proof is useless on another connection) and to the role (a node cannot reflect a
//! client's proof back to it). This module is pure computation; the transport supplies the
//! keying material.

use std::fmt;
use std::path::{Path, PathBuf};

/// The shortest passphrase accepted: shorter ones are too easy to guess offline.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// The context of the key derivation for proofs: a new protocol version gets a new string.
const PROOF_CONTEXT: &str = "wasp 2026-11-24 cluster handshake proof v1";

/// The Argon2id salt for passphrases. It must be the same on every node so that one
/// passphrase gives one secret; what it protects against is precomputed tables built for
/// other programs.
const PASSPHRASE_SALT: &[u8] = b"wasp cluster secret, passphrase v1";

/// Why a secret could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret file could not be read.
    #[error("could not read the secret file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file or text holds nothing.
    #[error("the secret is empty: write one with `wasp secret new > cluster.key`")]
    Empty,
    /// A passphrase shorter than [`MIN_PASSPHRASE_LEN`].
    #[error(
        "the passphrase is too short ({0} characters, at least {MIN_PASSPHRASE_LEN} needed); \
         or use a random secret from `wasp secret new`"
    )]
    ShortPassphrase(usize),
    /// The operating system's random number generator failed.
    #[error("could not get random bytes from the operating system: {0}")]
    Random(String),
    /// The password KDF failed.
    #[error("could not stretch the passphrase: {0}")]
    Kdf(String),
}

/// Which side of a connection a proof speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that submits jobs.
    Client,
    /// The side that runs them (`wasp node`).
    Node,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Client => b"client",
            Role::Node => b"node",
        }
    }
}

/// A proof of knowledge of the cluster secret for one connection and one role.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Proof(blake3::Hash);

impl Proof {
    /// The proof's 32 bytes, as sent on the wire.
    pub fn to_bytes(&self) -> [u8; 32] {
        *self.0.as_bytes()
    }

    /// A proof received from the wire.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Proof(blake3::Hash::from_bytes(bytes))
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proof({}..)", &self.0.to_hex()[..8])
    }
}

/// The secret shared by the clients and nodes of one cluster.
#[derive(Clone)]
pub struct ClusterSecret {
    key: [u8; 32],
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// 32 fresh random bytes from the operating system.
    ///
    /// # Errors
    /// [`SecretError::Random`] if the system's generator fails.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = [0; 32];
        getrandom::fill(&mut key).map_err(|err| SecretError::Random(err.to_string()))?;
        Ok(ClusterSecret { key })
    }

    /// A secret made of these bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        ClusterSecret { key }
    }

    /// Stretches a passphrase into a secret with Argon2id (19 MiB, 2 passes), so that
    /// guessing it offline from a recorded handshake is slow.
    ///
    /// # Errors
    /// [`SecretError::ShortPassphrase`] below [`MIN_PASSPHRASE_LEN`] characters.
    pub fn from_passphrase(passphrase: &str) -> Result<Self, SecretError> {
        let len = passphrase.chars().count();
        if len < MIN_PASSPHRASE_LEN {
            return Err(SecretError::ShortPassphrase(len));
        }
        let params = argon2::Params::new(19 * 1024, 2, 1, Some(32))
            .map_err(|err| SecretError::Kdf(err.to_string()))?;
        let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = [0; 32];
        kdf.hash_password_into(passphrase.as_bytes(), PASSPHRASE_SALT, &mut key)
            .map_err(|err| SecretError::Kdf(err.to_string()))?;
        Ok(ClusterSecret { key })
    }

    /// Reads a secret as written by `wasp secret new` (64 hex digits), or else takes the
    /// text as a passphrase. Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`SecretError::Empty`], or a passphrase error.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        match parse_hex_key(text) {
            Some(key) => Ok(ClusterSecret { key }),
            None => Self::from_passphrase(text),
        }
    }

    /// Reads a secret file (see [`parse`](Self::parse)). A file that others than its owner
    /// may read is used, with a warning.
    ///
    /// # Errors
    /// [`SecretError::Read`], or any error of [`parse`](Self::parse).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let read_error = |error| SecretError::Read {
            path: path.to_path_buf(),
            error,
        };
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        warn_if_readable_by_others(path);
        Self::parse(&text)
    }

    /// The secret as 64 lowercase hex digits, the form [`parse`](Self::parse) reads.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.key).to_hex().to_string()
    }

    /// The proof that the side in `role` knows this secret, for the connection whose TLS
    /// session exported `binding`.
    pub fn proof(&self, role: Role, binding: &[u8]) -> Proof {
        let key = blake3::derive_key(PROOF_CONTEXT, &self.key);
        let mut hasher = blake3::Hasher::new_keyed(&key);
        hasher.update(role.label());
        hasher.update(&[0]);
        hasher.update(binding);
        Proof(hasher.finalize())
    }

    /// A key for one purpose (`context`, a fixed string naming it), derived from the
    /// secret, so that a value made for one purpose is useless for another.
    pub(crate) fn derive_key(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.key)
    }

    /// A bearer token for one purpose (`context`, a fixed string naming it), derived from
    /// the secret: 64 hex digits that reveal nothing of the secret nor of other tokens.
    pub fn derive_token(&self, context: &str) -> String {
        blake3::Hash::from_bytes(self.derive_key(context))
            .to_hex()
            .to_string()
    }

    /// Checks a peer's proof, in constant time.
    pub fn verify(&self, role: Role, binding: &[u8], proof: &Proof) -> bool {
        self.proof(role, binding) == *proof
    }
}

fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(text)
        .ok()
        .map(|hash| *hash.as_bytes())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the secret file can be read by other users; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const BINDING: &[u8] = b"keying material exported from one TLS session";

    #[test]
    fn generated_secrets_differ_and_round_trip_through_hex() {
        let a = ClusterSecret::generate().unwrap();
        let b = ClusterSecret::generate().unwrap();
        assert_ne!(a.to_hex(), b.to_hex());
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(
            ClusterSecret::parse(&format!("{}\n", a.to_hex()))
                .unwrap()
                .key,
            a.key
        );
        assert_eq!(format!("{a:?}"), "ClusterSecret(<redacted>)");
    }

    #[test]
    fn a_passphrase_gives_the_same_secret_everywhere() {
        let a = ClusterSecret::parse("correct horse battery staple\n").unwrap();
        let b = ClusterSecret::from_passphrase("correct horse battery staple").unwrap();
        let c = ClusterSecret::from_passphrase("correct horse battery stapler").unwrap();
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
    }

    #[test]
    fn empty_and_short_secrets_are_refused() {
        assert!(matches!(
            ClusterSecret::parse(" \n"),
            Err(SecretError::Empty)
        ));
        assert!(matches!(
            ClusterSecret::parse("hunter2"),
            Err(SecretError::ShortPassphrase(7))
        ));
    }

    #[test]
    fn a_proof_verifies_only_for_its_secret_role_and_session() {
        let secret = ClusterSecret::from_bytes([7; 32]);
        let proof = secret.proof(Role::Client, BINDING);
        assert!(secret.verify(Role::Client, BINDING, &proof));
        // Another secret (a stranger), the other role (reflection), another session (replay).
        assert!(!ClusterSecret::from_bytes([8; 32]).verify(Role::Client, BINDING, &proof));
        assert!(!secret.verify(Role::Node, BINDING, &proof));
        assert!(!secret.verify(Role::Client, b"another session", &proof));
        let wire = Proof::from_bytes(proof.to_bytes());
        assert!(secret.verify(Role::Client, BINDING, &wire));
    }

    #[test]
    fn secret_files_are_read_and_missing_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let secret = ClusterSecret::generate().unwrap();
        std::fs::write(&path, format!("{}\n", secret.to_hex())).unwrap();
        assert_eq!(ClusterSecret::from_file(&path).unwrap().key, secret.key);
        let missing = dir.path().join("missing.key");
        let err = ClusterSecret::from_file(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.key"), "{err}");
    }
}
