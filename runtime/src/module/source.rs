//! [`ModuleSource`]: where a module's bytes can be pulled from by digest, in an OCI registry.

use std::fmt;
use std::str::FromStr;

/// A module's place in an OCI registry, pinned by the digest of its manifest:
/// `host[:port]/repository@sha256:<64 hex digits>`.
///
/// A module pulled from a registry carries its source (see [`Module::with_source`]), so
/// that a node which pulls from that registry itself (`wasp node --pull-from`) is told
/// where the module is rather than sent its bytes. What the digest names cannot change;
/// the node still checks the bytes it pulls against the module's blake3 hash.
///
/// [`Module::with_source`]: crate::Module::with_source
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleSource {
    registry: String,
    repository: String,
    digest: String,
}

/// Why text is not a [`ModuleSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a module source (host[:port]/repository@sha256:<64 hex digits>): {why}")]
pub struct SourceError {
    text: String,
    why: &'static str,
}

impl ModuleSource {
    /// A source from its parts: the registry's `host[:port]`, the repository, and the
    /// manifest's digest (`sha256:` and 64 lowercase hex digits).
    ///
    /// # Errors
    /// [`SourceError`] if a part is malformed.
    pub fn new(registry: &str, repository: &str, digest: &str) -> Result<Self, SourceError> {
        let error = |why| SourceError {
            text: format!("{registry}/{repository}@{digest}"),
            why,
        };
        if !is_registry(registry) {
            return Err(error(
                "the registry is not a host name or address, with a port",
            ));
        }
        if !is_repository(repository) {
            return Err(error(
                "the repository is not lowercase letters, digits and separators (`._-/`)",
            ));
        }
        if !is_sha256_digest(digest) {
            return Err(error(
                "the digest is not sha256: and 64 lowercase hex digits",
            ));
        }
        Ok(ModuleSource {
            registry: registry.to_string(),
            repository: repository.to_string(),
            digest: digest.to_string(),
        })
    }

    /// The registry: `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository in the registry, e.g. `team/jobs`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The manifest's digest, `sha256:<64 hex digits>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the source lies within `scope`: a registry (`host[:port]`), or a registry and
    /// a repository prefix (`host[:port]/team`, which holds `team` and `team/...`).
    pub fn is_within(&self, scope: &str) -> bool {
        let (registry, prefix) = match scope.split_once('/') {
            Some((registry, prefix)) => (registry, Some(prefix.trim_end_matches('/'))),
            None => (scope, None),
        };
        if !registry.eq_ignore_ascii_case(&self.registry) {
            return false;
        }
        match prefix {
            None | Some("") => true,
            Some(prefix) => {
                self.repository == prefix
                    || self
                        .repository
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

impl fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

impl FromStr for ModuleSource {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Self, SourceError> {
        let malformed = |why| SourceError {
            text: text.to_string(),
            why,
        };
        let (name, digest) = text
            .split_once('@')
            .ok_or_else(|| malformed("no @digest"))?;
        let (registry, repository) = name
            .split_once('/')
            .ok_or_else(|| malformed("no repository after the registry"))?;
        ModuleSource::new(registry, repository, digest)
    }
}

/// Whether `scope` is a registry, or a registry and a repository prefix (what a node's
/// `--pull-from` names).
pub fn is_registry_scope(scope: &str) -> bool {
    match scope.split_once('/') {
        Some((registry, prefix)) => {
            let prefix = prefix.trim_end_matches('/');
            is_registry(registry) && (prefix.is_empty() || is_repository(prefix))
        }
        None => is_registry(scope),
    }
}

/// `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port.
fn is_registry(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (text, None),
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    port_ok && host_ok
}

/// A repository as the OCI distribution spec names one: path components of lowercase
/// letters and digits, joined within by `.`, `_`, `__` or dashes.
fn is_repository(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.split('/').all(|component| {
            let bytes = component.as_bytes();
            let edge =
                |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            edge(bytes.first())
                && edge(bytes.last())
                && bytes.iter().all(|&b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && !component.contains("..")
                && !component.contains("___")
                && !component.contains("._")
                && !component.contains("_.")
        })
}

/// `sha256:` and 64 lowercase hex digits.
fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_source_reads_back_as_written() {
        let text = format!("127.0.0.1:5000/team/jobs@{DIGEST}");
        let source: ModuleSource = text.parse().unwrap();
        assert_eq!(source.registry(), "127.0.0.1:5000");
        assert_eq!(source.repository(), "team/jobs");
        assert_eq!(source.digest(), DIGEST);
        assert_eq!(source.to_string(), text);
        let v6: ModuleSource = format!("[::1]:5000/jobs@{DIGEST}").parse().unwrap();
        assert_eq!(v6.registry(), "[::1]:5000");
        assert!(
            "registry.example/jobs@sha256:abc"
                .parse::<ModuleSource>()
                .is_err()
        );
        assert!(
            format!("registry.example/Jobs@{DIGEST}")
                .parse::<ModuleSource>()
                .is_err()
        );
        assert!(
            format!("registry.example/jobs:1@{DIGEST}")
                .parse::<ModuleSource>()
                .is_err()
        );
        assert!(
            format!("registry.example:0/jobs@{DIGEST}")
                .parse::<ModuleSource>()
                .is_err()
        );
        assert!(format!("jobs@{DIGEST}").parse::<ModuleSource>().is_err());
        assert!(
            format!("reg istry/jobs@{DIGEST}")
                .parse::<ModuleSource>()
                .is_err()
        );
    }

    #[test]
    fn scopes_are_a_registry_and_a_repository_prefix() {
        let source: ModuleSource = format!("registry.example:5000/team/jobs@{DIGEST}")
            .parse()
            .unwrap();
        for scope in [
            "registry.example:5000",
            "REGISTRY.example:5000",
            "registry.example:5000/",
            "registry.example:5000/team",
            "registry.example:5000/team/",
            "registry.example:5000/team/jobs",
        ] {
            assert!(source.is_within(scope), "{scope}");
        }
        for scope in [
            "registry.example",
            "registry.example:5001",
            "registry.example:5000/tea",
            "registry.example:5000/team/jobs2",
            "other.example:5000/team",
        ] {
            assert!(!source.is_within(scope), "{scope}");
        }
        assert!(is_registry_scope("registry.example:5000/team"));
        assert!(is_registry_scope("localhost"));
        assert!(!is_registry_scope("https://registry.example"));
        assert!(!is_registry_scope("registry.example/Team"));
    }
}
