//! [`Reference`]: a module's name in an OCI registry, `oci://host[:port]/repository[:tag]`
//! or `...@sha256:<digest>`.

use crate::RegistryError;
use std::fmt;
use std::str::FromStr;
use wasp::ModuleSource;

/// The scheme that marks a module reference where a path could also be given.
pub const SCHEME: &str = "oci://";

/// The tag a reference without one names, as Docker and Podman do.
pub const DEFAULT_TAG: &str = "latest";

/// A module's name in a registry: `oci://host[:port]/repository[:tag][@sha256:...]`.
///
/// The registry is always named (`oci://registry.example/team/jobs:1`, `oci://127.0.0.1:5000/
/// jobs`): a reference never means Docker Hub by omission. Without a tag or a digest it
/// names the tag `latest`. With a digest, that digest is what is pulled, whatever the tag
/// now names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository in the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest's digest, if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Whether `text` is written as a reference (`oci://...`) rather than a file's path.
    pub fn is_reference(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// The same name, pinned to `digest`.
    pub(crate) fn pinned(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The reference as oci-client takes it: the digest if there is one, else the tag.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.clone(),
                digest.clone(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest.clone())
            }
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()),
            ),
        }
    }
}

impl From<&ModuleSource> for Reference {
    fn from(source: &ModuleSource) -> Self {
        Reference {
            registry: source.registry().to_string(),
            repository: source.repository().to_string(),
            tag: None,
            digest: Some(source.digest().to_string()),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    /// Reads `oci://host[:port]/repository[:tag][@sha256:...]`; the `oci://` may be left out
    /// where only a reference can be meant (`wasp push`, `wasp pull`).
    fn from_str(text: &str) -> Result<Self, RegistryError> {
        let malformed = |why: &str| {
            RegistryError::Reference(format!(
                "`{text}` is not a module reference (oci://host[:port]/repository[:tag] or \
                 ...@sha256:<digest>): {why}"
            ))
        };
        let rest = text.strip_prefix(SCHEME).unwrap_or(text);
        if rest.contains("://") {
            return Err(malformed("the only scheme is oci://"));
        }
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| malformed("no repository after the registry"))?;
        let (name, digest) = match path.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (path, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (name, None),
        };
        if let Some(tag) = tag.filter(|tag| !is_tag(tag)) {
            return Err(malformed(&format!(
                "the tag `{tag}` is not letters, digits, `_`, `.` and `-` (at most 128, not \
                 starting with `.` or `-`)"
            )));
        }
        // A valid source's parts are a valid registry, repository and digest.
        let placeholder = format!("sha256:{}", "0".repeat(64));
        ModuleSource::new(registry, repository, digest.unwrap_or(&placeholder))
            .map_err(|error| malformed(&error.to_string()))?;
        if registry.split(':').next() == Some("docker.io") {
            // Docker Hub's name in a reference is its index's, which oci-client rewrites; say
            // it the way every tool understands.
            return Err(malformed("name Docker Hub as registry-1.docker.io"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }
}

/// A tag as the OCI distribution spec allows: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    (1..=128).contains(&bytes.len())
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Reference {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn references_name_a_registry_a_repository_and_a_tag_or_digest() {
        let tagged = parse("oci://127.0.0.1:5000/team/jobs:v1.2");
        assert_eq!(tagged.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.repository(), "team/jobs");
        assert_eq!(tagged.tag(), Some("v1.2"));
        assert_eq!(tagged.digest(), None);
        assert_eq!(tagged.to_string(), "oci://127.0.0.1:5000/team/jobs:v1.2");

        let pinned = parse(&format!("oci://registry.example/jobs@{DIGEST}"));
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest(), Some(DIGEST));
        assert_eq!(pinned.to_oci().digest(), Some(DIGEST));

        let both = parse(&format!("localhost:5000/jobs:1@{DIGEST}"));
        assert_eq!((both.tag(), both.digest()), (Some("1"), Some(DIGEST)));

        let bare = parse("oci://registry.example:443/jobs");
        assert_eq!(bare.tag(), None);
        assert_eq!(bare.to_oci().tag(), Some(DEFAULT_TAG));
        assert_eq!(bare.to_oci().registry(), "registry.example:443");
        assert!(Reference::is_reference("oci://x/y"));
        assert!(!Reference::is_reference("target/jobs.wasm"));
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        for (text, why) in [
            ("oci://registry.example", "no repository"),
            ("https://registry.example/jobs", "the only scheme is oci://"),
            ("oci://registry.example/Jobs", "the repository"),
            ("oci://registry.example/jobs:-1", "the tag"),
            ("oci://registry.example/jobs@sha256:abc", "the digest"),
            ("oci://registry.example:99999/jobs", "the registry"),
            ("oci://docker.io/library/jobs", "registry-1.docker.io"),
        ] {
            let error = text.parse::<Reference>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
