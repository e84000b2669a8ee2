/*!
wasp's job modules in OCI registries: publish a module once (`wasp push`), run it from
anywhere (`wasp run oci://...`), and let nodes pull it themselves by digest
(`wasp node --pull-from`).

A module travels as a **wasm OCI artifact**, the layout of the CNCF TAG Runtime's Wasm
working group, which `wkg` and oci-wasm use too: an OCI image manifest
(`application/vnd.oci.image.manifest.v1+json`) whose config is
`application/vnd.wasm.config.v0+json` (`architecture: "wasm"`, `os: "wasip1"` for a core
module or `"wasip2"` for a component, with the component's imports and exports) and whose
one layer is the module's bytes, `application/wasm`. Digests are OCI's (sha256); the
module keeps its blake3 identity, which a node checks too.

The registry protocol is [`oci-client`]'s; credentials come from where Docker and Podman
keep them, or a token ([`Credentials`]); plain HTTP is spoken only to registries on this
machine.

```no_run
use wasp_registry::{Credentials, Reference, Registry};

let reference: Reference = "oci://127.0.0.1:5000/jobs/sum-primes:1".parse()?;
let registry = Registry::new([reference.registry()]);
let credentials = Credentials::for_registry(reference.registry())?;
let module = wasp::Module::from_file("sum_primes_guest.wasm")?;
let pushed = wasp_registry::block_on(registry.push(&module, &reference, "sum_primes_guest.wasm", &credentials))?;
println!("{}", pushed.reference);       // oci://127.0.0.1:5000/jobs/sum-primes:1@sha256:...
let pulled = wasp_registry::block_on(registry.pull(&pushed.reference, &credentials, 64 << 20))?;
assert_eq!(pulled.module.hash(), module.hash());
# Ok::<(), Box<dyn std::error::Error>>(())
```

[`oci-client`]: https://docs.rs/oci-client
*/

use std::future::Future;

mod artifact;
mod auth;
mod client;
mod puller;
mod reference;

pub use artifact::{
    CONFIG_MEDIA_TYPE, ComponentInfo, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, WasmConfig,
    sha256_digest,
};
pub use auth::{Credentials, TOKEN_VARIABLE};
pub use client::{Pulled, Pushed, Registry};
pub use puller::NodePuller;
pub use reference::{DEFAULT_TAG, Reference, SCHEME};

/// The largest module a client pulls unless told otherwise: a node's default maximum.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 << 20;

/// Why a registry operation failed. No variant holds a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Text that is not a module reference.
    #[error("{0}")]
    Reference(String),
    /// The registry has no such repository, tag or digest.
    #[error("{reference} was not found in the registry (no such repository, tag or digest)")]
    NotFound {
        /// The reference looked up.
        reference: String,
    },
    /// The registry refused the credentials (or asked for some and got none).
    #[error(
        "the registry {registry} refused access with {from}: log in (docker login, podman \
         login), or give a token (--registry-token-file, WASP_REGISTRY_TOKEN)"
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Where the credentials came from (a file, a variable), or "no credentials".
        from: String,
    },
    /// What the reference names is not a wasm module artifact.
    #[error("{reference} is not a wasm module artifact: {why}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What it is instead.
        why: String,
    },
    /// The module is larger than allowed.
    #[error("{reference}: the module is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// The reference.
        reference: String,
        /// Its size (as declared, or as received so far).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes that do not match the digest they were asked by: refused.
    #[error(
        "{reference}: the registry sent bytes that do not match their digest (expected \
         {expected}, got {actual}): refused, nothing was loaded"
    )]
    Tampered {
        /// The reference.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// The pulled bytes are not a wasp module.
    #[error("{reference} is not a module wasp can run: {error}")]
    Module {
        /// The reference.
        reference: String,
        /// Why not.
        #[source]
        error: wasp::ModuleError,
    },
    /// The registry could not be reached.
    #[error("cannot reach the registry {registry}: {message}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// Why not.
        message: String,
    },
    /// The registry answered with an error.
    #[error("the registry {registry} answered: {message}")]
    Registry {
        /// The registry.
        registry: String,
        /// What it said.
        message: String,
    },
    /// Credentials that could not be read.
    #[error("cannot use the credentials of {from}: {why}")]
    Credentials {
        /// Where they are (a file, a helper).
        from: String,
        /// Why not.
        why: String,
    },
}

/// Runs `future` to its end on a runtime of its own: for callers without one (the `wasp`
/// command's client side, Python).
///
/// # Panics
/// If called from within a tokio runtime, or if the runtime cannot start (no threads).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
        .block_on(future)
}
