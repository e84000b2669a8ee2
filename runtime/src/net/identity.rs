//! [`NodeIdentity`]: a node's self-signed certificate and key, kept on disk so that the node
//! has the same fingerprint across restarts.
//!
//! The certificate is not checked against any authority: clients and nodes authenticate each
//! other with the cluster secret. The fingerprint is how a client tells nodes apart (and
//! recognises one it has seen before); the TLS handshake proves the node holds its key.

use super::NetError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The certificate's file name in the identity directory.
const CERT_FILE: &str = "node-cert.der";

/// The private key's file name in the identity directory.
const KEY_FILE: &str = "node-key.der";

/// The subject alternative name of node certificates. Clients do not check it (every node
/// has the same one); it only makes the certificate well-formed.
const CERT_NAME: &str = "wasp-node";

/// A node's certificate and private key.
#[derive(Debug)]
pub(crate) struct NodeIdentity {
    /// The self-signed certificate, DER.
    cert: CertificateDer<'static>,
    /// The certificate's private key (ECDSA P-256), PKCS#8 DER. Its `Debug` hides it.
    key: PrivatePkcs8KeyDer<'static>,
    /// [`fingerprint`] of `cert`.
    fingerprint: String,
}

impl NodeIdentity {
    /// A new identity, in memory only.
    ///
    /// # Errors
    /// [`NetError::Certificate`] if the key or certificate cannot be generated.
    pub(crate) fn generate() -> Result<Self, NetError> {
        let key_pair = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec![CERT_NAME.to_owned()])?.self_signed(&key_pair)?;
        let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
        Ok(Self::new(cert.der().clone(), key))
    }

    /// The identity kept in `dir` (`node-cert.der` and `node-key.der`), created there if
    /// there is none yet.
    ///
    /// A new identity is written key first, each file through a temporary file and a rename,
    /// so a crash never leaves half a file, and a certificate on disk always has its key.
    ///
    /// # Errors
    /// [`NetError::Io`] if the files cannot be read or written; [`NetError::BadIdentity`] if
    /// they exist but are damaged or do not belong together (a damaged identity is reported,
    /// not replaced: a new one would be another node to the clients).
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, NetError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if let Some(cert) = read_if_exists(&cert_path)? {
            let key = read_if_exists(&key_path)?.ok_or_else(|| NetError::BadIdentity {
                path: key_path.clone(),
                what: "private key",
                reason: format!("the file is missing but {CERT_FILE} exists"),
            })?;
            return Self::from_files(cert, &cert_path, key, &key_path);
        }
        // No certificate: a new node, or a creation interrupted between the two files, in
        // which case the lone key was never used and is replaced.
        let identity = Self::generate()?;
        create_private_dir(dir)?;
        write_atomically(&key_path, identity.key.secret_pkcs8_der(), 0o600)?;
        write_atomically(&cert_path, identity.cert.as_ref(), 0o644)?;
        tracing::info!(
            dir = %dir.display(),
            fingerprint = %identity.fingerprint,
            "created a new node identity"
        );
        Ok(identity)
    }

    /// The certificate.
    pub(crate) fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A copy of the private key, as rustls takes it.
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The blake3 hex fingerprint of the certificate: the node's stable identifier.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn new(cert: CertificateDer<'static>, key: PrivatePkcs8KeyDer<'static>) -> Self {
        let fingerprint = fingerprint(&cert);
        NodeIdentity {
            cert,
            key,
            fingerprint,
        }
    }

    /// An identity read from disk, checked: the key must parse, and the certificate must
    /// parse and hold the key's public half.
    fn from_files(
        cert: Vec<u8>,
        cert_path: &Path,
        key: Vec<u8>,
        key_path: &Path,
    ) -> Result<Self, NetError> {
        let bad = |path: &Path, what, err: rustls::Error| NetError::BadIdentity {
            path: path.to_path_buf(),
            what,
            reason: err.to_string(),
        };
        let identity = Self::new(CertificateDer::from(cert), PrivatePkcs8KeyDer::from(key));
        let provider = rustls::crypto::ring::default_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(identity.key())
            .map_err(|err| bad(key_path, "private key", err))?;
        rustls::sign::CertifiedKey::new(vec![identity.cert.clone()], signing_key)
            .keys_match()
            .map_err(|err| bad(cert_path, "certificate", err))?;
        Ok(identity)
    }
}

/// The lock file in an identity directory: held by the node using the identity.
const LOCK_FILE: &str = "node.lock";

/// An exclusive lock on an identity directory, held for as long as a node uses it: two
/// node processes presenting one identity from two addresses would be one node to their
/// clients, so a second node is refused the directory (`flock`, released by the kernel if
/// the process dies).
#[derive(Debug)]
pub(crate) struct IdentityLock {
    _file: fs::File,
}

impl IdentityLock {
    /// Locks `dir` (created if missing).
    ///
    /// # Errors
    /// [`NetError::IdentityInUse`] if another process holds it; [`NetError::Io`] if the
    /// lock file cannot be opened.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, NetError> {
        create_private_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| io_error("open", &path, error))?;
        match file.try_lock() {
            Ok(()) => Ok(IdentityLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(NetError::IdentityInUse {
                dir: dir.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(error)) => Err(io_error("lock", &path, error)),
        }
    }
}

/// Where a node listening on `listen` keeps its identity by default:
/// `<local data dir>/wasp/node/<ip>-<port>` (`~/.local/share/wasp/node/0.0.0.0-7878` on
/// Linux), so that two nodes started on one host (on two ports) are two nodes.
pub(crate) fn default_dir_for(listen: std::net::SocketAddr) -> Option<PathBuf> {
    let ip = listen.ip().to_string().replace(':', "_");
    let name = format!("{ip}-{}", listen.port());
    dirs::data_local_dir().map(|dir| dir.join("wasp").join("node").join(name))
}

/// The fingerprint of a DER certificate: its blake3 hash, 64 lowercase hex digits.
pub(crate) fn fingerprint(cert: &[u8]) -> String {
    blake3::hash(cert).to_hex().to_string()
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, NetError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path, error)),
    }
}

/// Creates `dir` (and its parents), the last component readable by its owner only since it
/// holds a private key. An existing directory is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), NetError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .map_err(|error| io_error("create the directory", parent, error))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(error) => Err(io_error("create the directory", dir, error)),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and then
/// renamed over `path`, so that `path` holds either its old content or all of `bytes`. The
/// temporary file is created with `mode` (on Unix), so a key is never readable by others,
/// not even for a moment.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NetError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    // A leftover of a crashed process with the same pid would make `create_new` fail.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", &tmp, error));
    }
    if let Err(error) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", path, error));
    }
    sync_parent(path);
    Ok(())
}

/// Makes a rename durable. Best effort: the files are already complete, and a failure here
/// only risks losing a just-created identity in a power cut, after which a new one is made.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Ok(dir) = fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn io_error(action: &'static str, path: &Path, error: io::Error) -> NetError {
    NetError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_directory_is_used_by_one_node_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        let held = IdentityLock::acquire(&dir).unwrap();
        let refused = IdentityLock::acquire(&dir).unwrap_err();
        assert!(
            matches!(refused, NetError::IdentityInUse { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("--identity-dir"), "{refused}");
        drop(held);
        assert!(
            IdentityLock::acquire(&dir).is_ok(),
            "released with its holder"
        );
    }

    #[test]
    fn each_listen_address_has_its_own_default_directory() {
        let a = default_dir_for("127.0.0.1:7001".parse().unwrap());
        let b = default_dir_for("127.0.0.1:7002".parse().unwrap());
        assert_ne!(a, b);
        let v6 = default_dir_for("[::1]:7001".parse().unwrap()).unwrap();
        assert!(v6.ends_with("__1-7001"), "{}", v6.display());
    }

    #[test]
    fn an_identity_is_created_once_then_reloaded_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wasp").join("node");
        let created = NodeIdentity::load_or_create(&dir).unwrap();
        let loaded = NodeIdentity::load_or_create(&dir).unwrap();
        assert_eq!(created.cert(), loaded.cert());
        assert_eq!(created.key(), loaded.key());
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        assert_eq!(created.fingerprint(), fingerprint(created.cert()));
        assert_eq!(created.fingerprint().len(), 64);
        // Another node gets another identity.
        let other = NodeIdentity::load_or_create(&tmp.path().join("other")).unwrap();
        assert_ne!(other.fingerprint(), created.fingerprint());
        // No temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [CERT_FILE, KEY_FILE]);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        NodeIdentity::load_or_create(&dir).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    }

    #[test]
    fn a_damaged_identity_is_reported_naming_the_file_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let original = NodeIdentity::load_or_create(dir).unwrap();
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);

        let mut cert = original.cert().to_vec();
        cert.truncate(cert.len() / 2);
        fs::write(&cert_path, &cert).unwrap();
        let err = NodeIdentity::load_or_create(dir).unwrap_err();
        assert!(matches!(err, NetError::BadIdentity { .. }), "{err:?}");
        assert!(err.to_string().contains(CERT_FILE), "{err}");
        assert_eq!(fs::read(&cert_path).unwrap(), cert, "the file was replaced");

        fs::write(&cert_path, original.cert()).unwrap();
        fs::write(&key_path, b"not a key").unwrap();
        let err = NodeIdentity::load_or_create(dir).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");

        // A valid key that is not the certificate's.
        let stranger = NodeIdentity::generate().unwrap();
        fs::write(&key_path, stranger.key.secret_pkcs8_der()).unwrap();
        let err = NodeIdentity::load_or_create(dir).unwrap_err();
        assert!(err.to_string().contains(CERT_FILE), "{err}");

        fs::remove_file(&key_path).unwrap();
        let err = NodeIdentity::load_or_create(dir).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }

    #[test]
    fn a_lone_key_left_by_an_interrupted_creation_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(KEY_FILE), b"half a key").unwrap();
        let created = NodeIdentity::load_or_create(tmp.path()).unwrap();
        let loaded = NodeIdentity::load_or_create(tmp.path()).unwrap();
        assert_eq!(created.fingerprint(), loaded.fingerprint());
    }

    #[test]
    fn unreadable_places_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        fs::write(&file, b"").unwrap();
        // A directory under a regular file cannot be created.
        let err = NodeIdentity::load_or_create(&file.join("node")).unwrap_err();
        assert!(matches!(err, NetError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("a-file"), "{err}");
    }
}
