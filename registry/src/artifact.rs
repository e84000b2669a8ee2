//! The wasm OCI artifact (CNCF TAG Runtime's layout): an OCI image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the module,
//! `application/wasm`.

use crate::RegistryError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::BTreeMap;
use wasmparser::{Parser, Payload};

/// The manifest's media type: an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The one layer's media type: the module's bytes as they are.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The annotation that names the layer's file (`wasp pull`, oras and others use it).
const TITLE: &str = "org.opencontainers.image.title";

/// The config: what the module is, for tools that index or inspect artifacts.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When the artifact was made (RFC 3339): `SOURCE_DATE_EPOCH` if set, for
    /// reproducible pushes, else now.
    pub created: String,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip1` for a core module, `wasip2` for a component.
    pub os: String,
    /// The layers' digests, in the manifest's order (one).
    pub layer_digests: Vec<String>,
    /// A component's imports and exports; absent for a core module.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub component: Option<ComponentInfo>,
}

/// What a component imports and exports, by name.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ComponentInfo {
    /// The names of its top-level exports.
    pub exports: Vec<String>,
    /// The names of its top-level imports.
    pub imports: Vec<String>,
    /// The world it targets, if known (wasp does not record it).
    pub target: Option<String>,
}

/// What a push sends: the config's and the manifest's bytes (the layer is the module).
pub(crate) struct Artifact {
    pub(crate) config: Vec<u8>,
    pub(crate) manifest: Vec<u8>,
    pub(crate) layer_digest: String,
    pub(crate) config_digest: String,
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// The artifact for `module` (validated already), its layer titled `title`.
pub(crate) fn artifact(module: &wasp::Module, title: &str) -> Result<Artifact, RegistryError> {
    let bytes = module.bytes();
    let layer_digest = sha256_digest(bytes);
    let component = match module.kind() {
        wasp::ModuleKind::Component => Some(component_info(bytes)),
        _ => None,
    };
    let config = WasmConfig {
        created: created(),
        architecture: "wasm".into(),
        os: if component.is_some() {
            "wasip2"
        } else {
            "wasip1"
        }
        .into(),
        layer_digests: vec![layer_digest.clone()],
        component,
    };
    let config = serde_json::to_vec(&config).map_err(json_error)?;
    let config_digest = sha256_digest(&config);
    let layer = OciDescriptor {
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: layer_digest.clone(),
        size: size(bytes.len()),
        annotations: Some(BTreeMap::from([(TITLE.into(), title.into())])),
        ..OciDescriptor::default()
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        config: OciDescriptor {
            media_type: CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.clone(),
            size: size(config.len()),
            ..OciDescriptor::default()
        },
        layers: vec![layer],
        ..OciImageManifest::default()
    };
    let manifest = serde_json::to_vec(&manifest).map_err(json_error)?;
    Ok(Artifact {
        config,
        manifest,
        layer_digest,
        config_digest,
    })
}

/// The module's layer in a manifest pulled as `reference`, checked to be a wasm artifact
/// of at most `max_bytes`.
pub(crate) fn module_layer(
    manifest: &[u8],
    reference: &str,
    max_bytes: u64,
) -> Result<OciDescriptor, RegistryError> {
    let not_wasm = |why: String| RegistryError::NotWasm {
        reference: reference.to_string(),
        why,
    };
    let manifest: OciImageManifest = serde_json::from_slice(manifest).map_err(|error| {
        not_wasm(format!(
            "its manifest is not an OCI image manifest: {error}"
        ))
    })?;
    if let Some(media_type) = manifest
        .media_type
        .as_deref()
        .filter(|media_type| *media_type != MANIFEST_MEDIA_TYPE)
    {
        return Err(not_wasm(format!("its manifest is {media_type}")));
    }
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(not_wasm(format!(
            "its config is {}, not {CONFIG_MEDIA_TYPE} (a container image?)",
            manifest.config.media_type
        )));
    }
    let [layer] = &manifest.layers[..] else {
        return Err(not_wasm(format!(
            "it has {} layers, not one",
            manifest.layers.len()
        )));
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        return Err(not_wasm(format!(
            "its layer is {}, not {LAYER_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    let declared = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if declared > max_bytes {
        return Err(RegistryError::TooLarge {
            reference: reference.to_string(),
            size: declared,
            max: max_bytes,
        });
    }
    Ok(layer.clone())
}

/// The names of a component's top-level imports and exports.
fn component_info(bytes: &[u8]) -> ComponentInfo {
    let mut info = ComponentInfo {
        exports: Vec::new(),
        imports: Vec::new(),
        target: None,
    };
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes).flatten() {
        match payload {
            // Nested modules and components have imports and exports of their own.
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                let names = reader
                    .into_iter()
                    .flatten()
                    .map(|i| i.name.name.to_string());
                info.imports.extend(names);
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                let names = reader
                    .into_iter()
                    .flatten()
                    .map(|e| e.name.name.to_string());
                info.exports.extend(names);
            }
            _ => {}
        }
    }
    info
}

/// The artifact's creation time: `SOURCE_DATE_EPOCH` if set (reproducible builds), else now.
fn created() -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|seconds| seconds.trim().parse::<i64>().ok())
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0));
    epoch
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn size(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn json_error(error: serde_json::Error) -> RegistryError {
    RegistryError::Registry {
        registry: String::new(),
        message: format!("cannot encode the artifact: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_is_a_wasip1_artifact_with_one_wasm_layer() {
        let module = wasp::Module::from_file(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
        let artifact = artifact(&module, "sum.wasm").unwrap();
        let config: WasmConfig = serde_json::from_slice(&artifact.config).unwrap();
        assert_eq!(config.architecture, "wasm");
        assert_eq!(config.os, "wasip1");
        assert_eq!(config.layer_digests, [sha256_digest(module.bytes())]);
        assert_eq!(config.component, None);
        assert_eq!(artifact.config_digest, sha256_digest(&artifact.config));
        let layer = module_layer(&artifact.manifest, "test", u64::MAX).unwrap();
        assert_eq!(layer.digest, artifact.layer_digest);
        assert_eq!(layer.size as usize, module.bytes().len());
        let manifest: serde_json::Value = serde_json::from_slice(&artifact.manifest).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["annotations"][TITLE], "sum.wasm");

        let small = module_layer(&artifact.manifest, "test", 10).unwrap_err();
        assert!(
            matches!(small, RegistryError::TooLarge { max: 10, .. }),
            "{small}"
        );
    }

    #[test]
    fn manifests_of_other_things_are_refused_saying_what_they_are() {
        let image = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256_digest(b"{}"), "size": 2},
            "layers": []
        });
        let error = module_layer(image.to_string().as_bytes(), "img", 1 << 20).unwrap_err();
        assert!(error.to_string().contains("a container image?"), "{error}");
        let error = module_layer(b"<html>", "page", 1 << 20).unwrap_err();
        assert!(
            error.to_string().contains("not an OCI image manifest"),
            "{error}"
        );
    }

    #[test]
    fn the_creation_time_is_rfc_3339() {
        let time = created();
        assert!(
            chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
            "{time}"
        );
    }
}
