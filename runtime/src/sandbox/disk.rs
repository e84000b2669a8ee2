//! Compiled code on disk, so that a new process skips compilation.
//!
//! Layout: `<dir>/<arch>-<engine key>/<blake3 of the module>.cwasm`, where the engine key
//! hashes wasmtime's [`Engine::precompile_compatibility_hash`]: code compiled by another
//! wasmtime version, another configuration or another CPU lands in another directory and is
//! never even looked at.
//!
//! Each file is `MAGIC`, the blake3 hash of the payload, then the payload
//! (`Module::serialize`). Files are written to a temporary name and renamed into place, so a
//! reader never sees half a file. Any failure (unreadable, corrupt, stale) is a warning and a
//! miss, never an error: the module is compiled again and the file rewritten.
//!
//! What a file holds runs as native code, so only files this user could have written are
//! loaded: the cache's root and its engine directory must belong to the user and be
//! writable by nobody else, the engine directory and the file must not be symbolic links,
//! and the file must be a regular file of the user's that nobody else may write. The file
//! is opened without following a link and checked through the open descriptor, then read
//! from it: what is checked is what is read.

use crate::module::ModuleHash;
use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{debug, warn};
use wasmtime::Engine;

/// The first bytes of every cache file; bump the digit when the format changes.
const MAGIC: &[u8; 8] = b"WASPCC01";

/// Default bound on the cache directory's size: 1 GiB.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 1 << 30;

/// The on-disk compile cache of one engine.
#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    root: PathBuf,
    dir: PathBuf,
    max_bytes: u64,
}

/// Counts written files, to give every temporary file of this process a unique name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskCache {
    /// A cache rooted at `root`, bounded to `max_bytes` (for all engines together).
    pub(crate) fn new(root: PathBuf, max_bytes: u64) -> Self {
        DiskCache {
            dir: root.clone(),
            root,
            max_bytes,
        }
    }

    /// The default root: the user's cache directory, `wasp/modules` inside it.
    pub(crate) fn default_root() -> Option<PathBuf> {
        dirs::cache_dir().map(|dir| dir.join("wasp").join("modules"))
    }

    /// Narrows the cache to the subdirectory of code compatible with `engine`.
    pub(crate) fn for_engine(mut self, engine: &Engine) -> Self {
        self.dir = self.root.join(engine_key(engine));
        self
    }

    fn path_of(&self, hash: ModuleHash) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hash.to_hex()))
    }

    /// Loads the compiled code of `hash`, if a valid file for this engine is cached.
    pub(crate) fn load<C: Code>(&self, engine: &Engine, hash: ModuleHash) -> Option<C> {
        let path = self.path_of(hash);
        // Compiled code runs as native code: code others could have written is not loaded.
        if let Err(distrust) = self.trusted_dirs() {
            if !matches!(distrust, Distrust::Missing) {
                warn!(%distrust, "compile cache: not loaded");
            }
            return None;
        }
        let bytes = match read_trusted(&path) {
            Ok(bytes) => bytes,
            Err(Distrust::Missing) => return None,
            Err(distrust) => {
                warn!(%distrust, "compile cache: not loaded, recompiling");
                return None;
            }
        };
        let Some(payload) = checked_payload(&bytes) else {
            warn!(path = %path.display(), "compile cache: corrupt file, recompiling");
            let _ = fs::remove_file(&path);
            return None;
        };
        match deserialize::<C>(engine, payload) {
            Ok(module) => {
                touch(&path);
                debug!(module = %hash, "compile cache: hit");
                Some(module)
            }
            Err(err) => {
                warn!(path = %path.display(), err = %format!("{err:#}"), "compile cache: stale file, recompiling");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compiled code of `hash`; failures are logged and otherwise ignored.
    pub(crate) fn store(&self, hash: ModuleHash, module: &impl Code) {
        if let Err(err) = self.try_store(hash, module) {
            warn!(dir = %self.dir.display(), %err, "compile cache: could not write");
            return;
        }
        if let Err(err) = evict(&self.root, self.max_bytes) {
            warn!(dir = %self.root.display(), %err, "compile cache: could not evict");
        }
    }

    fn try_store(&self, hash: ModuleHash, module: &impl Code) -> std::io::Result<()> {
        let payload = module
            .serialize_code()
            .map_err(|err| std::io::Error::other(format!("{err:#}")))?;
        create_private_dir(&self.dir)?;
        // Nothing is written where it would not be loaded from (through a link, say).
        self.trusted_dirs().map_err(std::io::Error::other)?;
        write_code(&self.path_of(hash), &payload, 0o600)
    }
}

/// Writes `parts` into a new file at `path` (whose directory exists, and is trusted),
/// private to the user, without waiting for the disk (no `fsync`): for files whose readers
/// check them whole (a checksum), where one cut short by a crash is only a miss. As
/// [`write_file`] writes.
pub(crate) fn write_private_unsynced(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    write_file(path, parts, 0o600, false)
}

/// Writes compiled code (`payload`) at `path` as the cache's files hold it (magic,
/// checksum, code), with `mode`: private (`0o600`) in the cache, readable by all (`0o644`)
/// for code shipped with a program. As [`write_file`] writes, then waits for the disk.
pub(crate) fn write_code(path: &Path, payload: &[u8], mode: u32) -> std::io::Result<()> {
    let checksum = blake3::hash(payload);
    write_file(path, &[MAGIC, checksum.as_bytes(), payload], mode, true)
}

/// Writes `parts` at `path` with `mode` whatever the umask: into a new temporary file
/// (`create_new`: never through a link), then renamed into place, so that a reader never
/// sees half a file, and two writers of one path leave one whole file.
fn write_file(path: &Path, parts: &[&[u8]], mode: u32, sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Whatever the umask: readers refuse files others may write.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut file = options.open(&temp)?;
        // The umask may have taken bits `mode` asks for (a shipped file readable by all).
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        for part in parts {
            file.write_all(part)?;
        }
        if sync {
            file.sync_all()?;
        }
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The payload of a cache file, if its magic and checksum are right.
pub(crate) fn checked_payload(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (checksum, payload) = rest.split_at_checked(32)?;
    (blake3::hash(payload).as_bytes() == checksum).then_some(payload)
}

/// Compiled code the cache holds: a core module's or a component's.
#[allow(
    unsafe_code,
    reason = "deserializing compiled code is unsafe by wasmtime's contract"
)]
pub(crate) trait Code: Sized {
    /// The code as bytes, for [`deserialize_code`](Self::deserialize_code).
    fn serialize_code(&self) -> wasmtime::Result<Vec<u8>>;

    /// The code back from `bytes`.
    ///
    /// # Safety
    /// `bytes` must have been produced by `serialize_code` of the same type (anything else
    /// could be arbitrary machine code).
    unsafe fn deserialize_code(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

#[allow(
    unsafe_code,
    reason = "deserializing compiled code is unsafe by wasmtime's contract"
)]
impl Code for wasmtime::Module {
    fn serialize_code(&self) -> wasmtime::Result<Vec<u8>> {
        self.serialize()
    }

    unsafe fn deserialize_code(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract is `Module::deserialize`'s.
        unsafe { wasmtime::Module::deserialize(engine, bytes) }
    }
}

#[allow(
    unsafe_code,
    reason = "deserializing compiled code is unsafe by wasmtime's contract"
)]
impl Code for wasmtime::component::Component {
    fn serialize_code(&self) -> wasmtime::Result<Vec<u8>> {
        self.serialize()
    }

    unsafe fn deserialize_code(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract is `Component::deserialize`'s.
        unsafe { wasmtime::component::Component::deserialize(engine, bytes) }
    }
}

#[allow(
    unsafe_code,
    reason = "deserializing compiled code is unsafe by wasmtime's contract"
)]
fn deserialize<C: Code>(engine: &Engine, payload: &[u8]) -> wasmtime::Result<C> {
    // SAFETY: `deserialize_code` requires bytes produced by `serialize_code` (anything else
    // could be arbitrary machine code). These bytes come from a file that only this cache
    // writes, in a directory created private to the user, and they passed the blake3 checksum
    // written alongside them, so they are exactly what `serialize_code` produced. A core
    // module's code and a component's never share a file: the file is named by the hash of
    // the module's bytes, which are one or the other. wasmtime itself rejects (safely) code
    // from another version or configuration.
    unsafe { C::deserialize_code(engine, payload) }
}

/// `<arch>-<first 16 hex digits of blake3(compatibility hash)>`.
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let digest = hasher.0.finalize().to_hex();
    format!("{}-{}", std::env::consts::ARCH, &digest[..16])
}

/// A `std::hash::Hasher` feeding blake3: unlike `DefaultHasher` its output is the same in
/// every process and every Rust release.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let bytes = self.0.finalize();
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Why a path of the cache is not trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Distrust {
    /// It does not exist (a miss, not a warning).
    #[error("missing")]
    Missing,
    #[error("{0} is a symbolic link (the cache follows none)")]
    Link(PathBuf),
    #[error("{0} is not a {1}")]
    Kind(PathBuf, &'static str),
    #[error("{0} belongs to another user (uid {1}), not to this one (uid {2}){3}")]
    Owner(PathBuf, u32, u32, &'static str),
    #[error("{0} is writable by other users (make it private: chmod go-w){1}")]
    Writable(PathBuf, &'static str),
    #[error("{0} cannot be read: {1}")]
    Unreadable(PathBuf, std::io::Error),
}

impl DiskCache {
    /// Checks the root (followed, as the user gave it) and the engine directory (not
    /// followed) before anything in them is read or written.
    fn trusted_dirs(&self) -> Result<(), Distrust> {
        trusted_dir(&self.root, true, &Trust::Mine)?;
        trusted_dir(&self.dir, false, &Trust::Mine)
    }
}

/// Who may have written what is trusted: its owner, and who else may write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// This user's, writable by nobody else: what this user's processes write (the caches).
    Mine,
    /// This user's or root's, writable by nobody else: installed with the program.
    Installed,
    /// No more open than the program's own file, of this owner, group and mode: this
    /// user's, root's or the program's owner's, and writable by its group only if the
    /// program is too, by the same group (a package installed under `umask 002`, the
    /// default where each user has a group of their own). Never writable by all.
    AsProgram {
        /// The program file's owner.
        uid: u32,
        /// The program file's group.
        gid: u32,
        /// The program file's mode.
        mode: u32,
    },
}

impl Trust {
    /// Whether `uid` may own what is trusted, and how to say who may.
    fn owner(&self, uid: u32, me: u32) -> Result<(), &'static str> {
        match *self {
            Trust::Mine if uid == me => Ok(()),
            Trust::Mine => Err(""),
            Trust::Installed if uid == me || uid == 0 => Ok(()),
            Trust::Installed => Err(" or to root"),
            Trust::AsProgram { uid: program, .. } if uid == me || uid == 0 || uid == program => {
                Ok(())
            }
            Trust::AsProgram { .. } => Err(", to root or to the program's owner"),
        }
    }

    /// The write permissions (of group and others) that may be set on a file of group
    /// `gid`, and how to say so.
    fn open_writes(&self, gid: u32) -> (u32, &'static str) {
        match *self {
            Trust::AsProgram {
                gid: program, mode, ..
            } if gid == program => (
                mode & 0o020,
                " (or make it no more writable than the program beside it)",
            ),
            _ => (0, ""),
        }
    }
}

/// Checks that `dir` (followed if `follow`, as a root the user gave) is a directory that
/// `trust` allows.
pub(crate) fn trusted_dir(dir: &Path, follow: bool, trust: &Trust) -> Result<(), Distrust> {
    let meta = if follow {
        fs::metadata(dir)
    } else {
        fs::symlink_metadata(dir)
    };
    let meta = meta.map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => Distrust::Missing,
        _ => Distrust::Unreadable(dir.to_path_buf(), error),
    })?;
    check_entry(dir, &meta, Kind::Directory, trust)
}

/// What a path of the cache must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Directory,
    File,
}

/// Whether `meta` (of `path`, not followed) is of `kind`, and owned and writable as
/// `trust` allows.
fn check_entry(
    path: &Path,
    meta: &fs::Metadata,
    kind: Kind,
    trust: &Trust,
) -> Result<(), Distrust> {
    use std::os::unix::fs::MetadataExt as _;
    if meta.file_type().is_symlink() {
        return Err(Distrust::Link(path.to_path_buf()));
    }
    let (is_kind, name) = match kind {
        Kind::Directory => (meta.is_dir(), "directory"),
        Kind::File => (meta.is_file(), "regular file"),
    };
    if !is_kind {
        return Err(Distrust::Kind(path.to_path_buf(), name));
    }
    let me = rustix::process::geteuid().as_raw();
    trust
        .owner(meta.uid(), me)
        .map_err(|who| Distrust::Owner(path.to_path_buf(), meta.uid(), me, who))?;
    let (allowed, hint) = trust.open_writes(meta.gid());
    if meta.mode() & 0o022 & !allowed != 0 {
        return Err(Distrust::Writable(path.to_path_buf(), hint));
    }
    Ok(())
}

/// The bytes of the cache file at `path`, if it is trusted: opened without following a
/// symbolic link, checked through the open descriptor, read from it.
fn read_trusted(path: &Path) -> Result<Vec<u8>, Distrust> {
    read_trusted_file(path, &Trust::Mine).map(|(bytes, ..)| bytes)
}

/// [`read_trusted`] of a file `trust` allows, with the open file and its metadata (to
/// touch it).
pub(crate) fn read_trusted_file(
    path: &Path,
    trust: &Trust,
) -> Result<(Vec<u8>, fs::File, fs::Metadata), Distrust> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let unreadable = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::NotFound => Distrust::Missing,
        // O_NOFOLLOW on a link: ELOOP.
        _ if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Distrust::Link(path.to_path_buf())
        }
        _ => Distrust::Unreadable(path.to_path_buf(), error),
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    check_entry(path, &meta, Kind::File, trust)?;
    let bytes = crate::read::whole(&mut file, meta.len()).map_err(unreadable)?;
    Ok((bytes, file, meta))
}

/// Makes `dir` and its missing parents, private to the user.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Marks a file as recently used, for eviction.
fn touch(path: &Path) {
    if let Ok(file) = fs::File::options().write(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Deletes the least recently used files under `root` until it holds at most `max_bytes`.
fn evict(root: &Path, max_bytes: u64) -> std::io::Result<()> {
    let mut files = Vec::new();
    for engine_dir in fs::read_dir(root)? {
        let engine_dir = engine_dir?.path();
        if !engine_dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&engine_dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && entry.path().extension().is_some_and(|ext| ext == "cwasm") {
                files.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
    }
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        debug!(path = %path.display(), "compile cache: evicting");
        fs::remove_file(&path)?;
        total -= len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_checked() {
        let payload = b"compiled code";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(blake3::hash(payload).as_bytes());
        file.extend_from_slice(payload);
        assert_eq!(checked_payload(&file), Some(&payload[..]));

        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(checked_payload(&flipped), None);
        assert_eq!(checked_payload(&file[..20]), None);
        assert_eq!(checked_payload(b"WASPCC00"), None);
    }

    /// A file of this user's with `mode`, and what `check_entry` says of it under `trust`.
    fn checked(trust: &Trust, mode: u32) -> Result<(), Distrust> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code.cwasm");
        fs::write(&path, b"code").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        check_entry(&path, &meta, Kind::File, trust)
    }

    /// The program's file as `Trust::AsProgram` sees it: this user's and group's, `mode`.
    fn as_program(mode: u32) -> Trust {
        Trust::AsProgram {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mode,
        }
    }

    #[test]
    fn shipped_code_may_be_as_open_as_its_program_and_no_more() {
        assert!(checked(&Trust::Installed, 0o644).is_ok());
        assert!(matches!(
            checked(&Trust::Installed, 0o664),
            Err(Distrust::Writable(..))
        ));
        // Under `umask 002` the program is group-writable, and its code may be too.
        assert!(checked(&as_program(0o664), 0o664).is_ok());
        assert!(checked(&as_program(0o644), 0o644).is_ok());
        assert!(matches!(
            checked(&as_program(0o644), 0o664),
            Err(Distrust::Writable(..))
        ));
        // Writable by all: never, whatever the program is.
        assert!(matches!(
            checked(&as_program(0o666), 0o666),
            Err(Distrust::Writable(..))
        ));
        assert!(matches!(
            checked(&as_program(0o664), 0o646),
            Err(Distrust::Writable(..))
        ));
    }

    #[test]
    fn shipped_code_may_belong_to_the_programs_owner_or_root() {
        let me = rustix::process::geteuid().as_raw();
        let other = me + 4242;
        let program = Trust::AsProgram {
            uid: other,
            gid: 0,
            mode: 0o644,
        };
        assert!(program.owner(other, me).is_ok());
        assert!(program.owner(0, me).is_ok());
        assert!(program.owner(me, me).is_ok());
        assert!(program.owner(other + 1, me).is_err());
        assert!(Trust::Installed.owner(0, me).is_ok());
        assert!(Trust::Installed.owner(other, me).is_err());
        assert!(Trust::Mine.owner(0, me).is_err() || me == 0);
    }

    #[test]
    fn eviction_removes_the_least_recently_used() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("x86_64-0123");
        fs::create_dir_all(&dir).unwrap();
        let old = dir.join("a.cwasm");
        let new = dir.join("b.cwasm");
        fs::write(&old, [0; 100]).unwrap();
        fs::write(&new, [0; 100]).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        evict(root.path(), 150).unwrap();
        assert!(!old.exists());
        assert!(new.exists());
    }
}
