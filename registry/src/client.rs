//! [`Registry`]: pushes and pulls wasp modules as wasm OCI artifacts.

use crate::artifact::{self, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::auth::Credentials;
use crate::{Reference, RegistryError};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use wasp::{Module, ModuleSource};

/// How long to wait for a registry to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A module pulled from a registry.
#[derive(Debug)]
pub struct Pulled {
    /// The module, loaded and checked, carrying its source (see
    /// [`Module::source`](wasp::Module::source)).
    pub module: Module,
    /// Where it was pulled from, pinned to the manifest's digest.
    pub source: ModuleSource,
}

/// A module pushed to a registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference it was pushed as, pinned to the manifest's digest.
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: String,
    /// The layer's digest (sha256 of the module's bytes).
    pub layer_digest: String,
}

/// A client of OCI registries for wasp modules: speaks HTTPS, except to registries on
/// this machine (loopback addresses and `localhost`), which it speaks plain HTTP to, as
/// Docker does.
#[derive(Clone)]
pub struct Registry {
    client: oci_client::Client,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for `registries` (`host[:port]` each; scopes' prefixes are ignored): those
    /// on loopback are spoken to over plain HTTP, the others over HTTPS only.
    pub fn new<'a>(registries: impl IntoIterator<Item = &'a str>) -> Self {
        // reqwest's rustls needs a process-wide crypto provider: ring, as wasp's QUIC. One
        // installed already (by the program) is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let plain: Vec<String> = registries
            .into_iter()
            .map(|scope| scope.split('/').next().unwrap_or(scope))
            .filter(|registry| is_loopback(registry))
            .map(str::to_string)
            .collect();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        };
        Registry {
            client: oci_client::Client::new(config),
        }
    }

    /// Pushes `module` as `reference` (a tag; `latest` if it names none), its layer titled
    /// `title` (the file's name).
    ///
    /// # Errors
    /// [`RegistryError`]: the registry cannot be reached, refuses the credentials, or
    /// refuses the artifact.
    pub async fn push(
        &self,
        module: &Module,
        reference: &Reference,
        title: &str,
        credentials: &Credentials,
    ) -> Result<Pushed, RegistryError> {
        if reference.digest().is_some() {
            return Err(RegistryError::Reference(format!(
                "push to a tag, not a digest: {reference}"
            )));
        }
        let artifact = artifact::artifact(module, title)?;
        let target = reference.to_oci();
        let fail = |error| self::error(reference, credentials, error);
        self.client
            .store_auth_if_needed(target.resolve_registry(), credentials.auth())
            .await;
        self.client
            .auth(
                &target,
                credentials.auth(),
                oci_client::RegistryOperation::Push,
            )
            .await
            .map_err(fail)?;
        self.client
            .push_blob(&target, module.bytes().to_vec(), &artifact.layer_digest)
            .await
            .map_err(fail)?;
        self.client
            .push_blob(&target, artifact.config.clone(), &artifact.config_digest)
            .await
            .map_err(fail)?;
        let digest = artifact::sha256_digest(&artifact.manifest);
        let content_type = MANIFEST_MEDIA_TYPE.parse().expect("a valid header value");
        self.client
            .push_manifest_raw(&target, artifact.manifest, content_type)
            .await
            .map_err(fail)?;
        Ok(Pushed {
            reference: reference.pinned(&digest),
            digest,
            layer_digest: artifact.layer_digest,
        })
    }

    /// Pulls the module `reference` names, refusing a layer of more than `max_bytes`: the
    /// manifest's digest is checked if the reference gives one, the layer's always.
    ///
    /// # Errors
    /// [`RegistryError`]: not found, refused, not a wasm artifact, too large, tampered (a
    /// digest that does not match), or not a wasp module.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: &Credentials,
        max_bytes: u64,
    ) -> Result<Pulled, RegistryError> {
        let bytes = self.pull_bytes(reference, credentials, max_bytes).await?;
        let (bytes, source) = bytes;
        let module = Module::from_bytes(bytes)
            .map_err(|error| RegistryError::Module {
                reference: reference.to_string(),
                error,
            })?
            .with_source(source.clone());
        Ok(Pulled { module, source })
    }

    /// The bytes of the module `reference` names, and its source pinned by digest; not
    /// loaded (a node checks them against the hash its jobs name first).
    ///
    /// # Errors
    /// As [`pull`](Self::pull), but for loading.
    pub async fn pull_bytes(
        &self,
        reference: &Reference,
        credentials: &Credentials,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, ModuleSource), RegistryError> {
        let target = reference.to_oci();
        let fail = |error| self::error(reference, credentials, error);
        let (manifest, digest) = self
            .client
            .pull_manifest_raw(&target, credentials.auth(), &[MANIFEST_MEDIA_TYPE])
            .await
            .map_err(fail)?;
        let name = reference.to_string();
        let layer = artifact::module_layer(&manifest, &name, max_bytes)?;
        let mut bytes = Bounded {
            bytes: Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0)),
            max: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        };
        self.client
            .pull_blob(&target, &layer, &mut bytes)
            .await
            .map_err(|error| match error {
                OciDistributionError::IoError(io)
                    if io.kind() == std::io::ErrorKind::FileTooLarge =>
                {
                    RegistryError::TooLarge {
                        reference: name.clone(),
                        size: max_bytes.saturating_add(1),
                        max: max_bytes,
                    }
                }
                error => fail(error),
            })?;
        let source = ModuleSource::new(reference.registry(), reference.repository(), &digest)
            .map_err(|error| RegistryError::Registry {
                registry: reference.registry().to_string(),
                message: format!("it answered with a malformed digest: {error}"),
            })?;
        debug_assert_eq!(layer.media_type, LAYER_MEDIA_TYPE);
        Ok((bytes.bytes, source))
    }
}

/// Whether `registry` (`host[:port]`) is on this machine.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A buffer that refuses to grow past `max` bytes: a registry cannot make a pull take
/// more memory than the module may have, whatever the manifest said.
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len().saturating_add(buf.len()) > self.max {
            let error = std::io::Error::new(std::io::ErrorKind::FileTooLarge, "module too large");
            return Poll::Ready(Err(error));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What an oci-client error means for `reference`, said plainly.
fn error(
    reference: &Reference,
    credentials: &Credentials,
    error: OciDistributionError,
) -> RegistryError {
    let registry = reference.registry().to_string();
    let refused = || RegistryError::Unauthorized {
        registry: registry.clone(),
        from: credentials.from().to_string(),
    };
    let not_found = || RegistryError::NotFound {
        reference: reference.to_string(),
    };
    match error {
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => RegistryError::Tampered {
            reference: reference.to_string(),
            expected,
            actual,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => refused(),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|code| {
                matches!(
                    code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found()
            } else if codes
                .iter()
                .any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                refused()
            } else {
                let messages: Vec<String> =
                    envelope.errors.iter().map(|e| e.message.clone()).collect();
                RegistryError::Registry {
                    registry,
                    message: messages.join("; "),
                }
            }
        }
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => refused(),
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::RequestError(error) => RegistryError::Unreachable {
            registry,
            message: request_error(&error),
        },
        other => RegistryError::Registry {
            registry,
            message: other.to_string(),
        },
    }
}

/// A transport error and its causes, in one line.
fn request_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registries_on_this_machine_are_spoken_to_in_plain_http() {
        for registry in [
            "127.0.0.1:5000",
            "127.3.2.1",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(registry), "{registry}");
        }
        for registry in [
            "registry.example",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback(registry), "{registry}");
        }
    }
}
