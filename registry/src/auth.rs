//! Credentials for a registry, from where Docker and Podman keep them, or a token.
//!
//! In order: a token given to wasp (`Credentials::token`, from `--registry-token-file` or
//! `WASP_REGISTRY_TOKEN`), then the first of Podman's and Docker's auth files that has an
//! entry for the registry: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`). An entry is an `auths` record (`auth`: base64 of
//! `user:password`, or `username` and `password`), or a credential helper
//! (`credHelpers`, `credsStore`: `docker-credential-<name> get`). Else anonymous.
//!
//! Credentials are never logged, and never in an error: errors name where credentials came
//! from, not what they are.

use crate::RegistryError;
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that holds a bearer token for registries.
pub const TOKEN_VARIABLE: &str = "WASP_REGISTRY_TOKEN";

/// Credentials for one registry, and where they came from.
#[derive(Clone)]
pub struct Credentials {
    auth: RegistryAuth,
    from: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RegistryAuth's own Debug redacts the secret.
        f.debug_struct("Credentials")
            .field("auth", &self.auth)
            .field("from", &self.from)
            .finish()
    }
}

impl Credentials {
    /// No credentials.
    pub fn anonymous() -> Self {
        Credentials {
            auth: RegistryAuth::Anonymous,
            from: "no credentials".into(),
        }
    }

    /// A bearer token, sent as `Authorization: Bearer <token>`; `from` says where it came
    /// from, for errors.
    pub fn token(token: &str, from: &str) -> Self {
        Credentials {
            auth: RegistryAuth::Bearer(token.trim().to_string()),
            from: from.to_string(),
        }
    }

    /// A token from the first line of `path`.
    ///
    /// # Errors
    /// [`RegistryError::Credentials`] if the file cannot be read or is empty.
    pub fn token_file(path: &Path) -> Result<Self, RegistryError> {
        let unreadable = |why: String| RegistryError::Credentials {
            from: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            return Err(unreadable("it holds no token".into()));
        }
        Ok(Credentials::token(token, &path.display().to_string()))
    }

    /// The credentials for `registry`: the token in `WASP_REGISTRY_TOKEN` if set, else
    /// Podman's and Docker's files, else none (see the module's documentation).
    ///
    /// # Errors
    /// [`RegistryError::Credentials`] if an auth file or a helper's answer is malformed.
    pub fn for_registry(registry: &str) -> Result<Self, RegistryError> {
        if let Some(token) = std::env::var(TOKEN_VARIABLE)
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            return Ok(Credentials::token(&token, TOKEN_VARIABLE));
        }
        for path in auth_files() {
            if let Some(found) = from_file(&path, registry)? {
                return Ok(found);
            }
        }
        Ok(Credentials::anonymous())
    }

    /// What oci-client sends.
    pub(crate) fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// Where the credentials came from (a file, a helper, a variable), for errors.
    pub fn from(&self) -> &str {
        &self.from
    }
}

/// Podman's and Docker's auth files, in the order Podman reads them.
fn auth_files() -> Vec<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    let mut files = Vec::new();
    if let Some(file) = var("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    if let Some(runtime) = var("XDG_RUNTIME_DIR") {
        files.push(Path::new(&runtime).join("containers/auth.json"));
    }
    let home = dirs::home_dir();
    if let Some(home) = &home {
        files.push(home.join(".config/containers/auth.json"));
    }
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(Path::new(&dir).join("config.json")),
        None => files.extend(home.map(|home| home.join(".docker/config.json"))),
    }
    files
}

/// An auth file: Docker's `config.json` or Podman's `auth.json` (the same format).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials `path` holds for `registry`, if it exists and has an entry for it.
fn from_file(path: &Path, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let from = path.display().to_string();
    let malformed = |why: String| RegistryError::Credentials {
        from: from.clone(),
        why,
    };
    let file: AuthFile = serde_json::from_str(&text)
        // serde_json's message may quote the file: say only where it went wrong.
        .map_err(|error| {
            malformed(format!(
                "not an auth file (malformed JSON at line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
    let entry = file
        .auths
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, entry)| entry);
    if let Some(entry) = entry
        && let Some((username, password)) = basic(entry).map_err(malformed)?
    {
        return Ok(Some(Credentials {
            auth: RegistryAuth::Basic(username, password),
            from: format!("{from} (auths)"),
        }));
    }
    let helper = file
        .cred_helpers
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, helper)| helper.clone())
        .or(file.creds_store);
    match helper {
        Some(helper) => from_helper(&helper, registry, &from).map(Some),
        None => Ok(None),
    }
}

/// Whether an auth file's key names `registry`: keys may carry a scheme and a path
/// (`https://index.docker.io/v1/`).
fn same_registry(key: &str, registry: &str) -> bool {
    let key = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = key.split('/').next().unwrap_or_default();
    host.eq_ignore_ascii_case(registry)
        || (registry == "registry-1.docker.io" && host == "index.docker.io")
}

/// The user name and password of an `auths` entry, if it has them.
fn basic(entry: &AuthEntry) -> Result<Option<(String, String)>, String> {
    if let Some(encoded) = entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "an `auth` that is not base64".to_string())?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| "an `auth` that is not text".to_string())?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("an `auth` that is not user:password")?;
        return Ok(Some((username.to_string(), password.to_string())));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) => Ok(Some((username.clone(), password.clone()))),
        _ => Ok(None),
    }
}

/// What a credential helper answers to `get`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Asks `docker-credential-<helper>` for `registry`'s credentials, as Docker does.
fn from_helper(helper: &str, registry: &str, file: &str) -> Result<Credentials, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let from = format!("{program} (named in {file})");
    let failed = |why: String| RegistryError::Credentials {
        from: from.clone(),
        why,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("cannot run it: {error}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|error| failed(error.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        // Its stderr says why (e.g. "credentials not found"): never the secret.
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(failed(format!("it failed ({}): {why}", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("its answer is not {\"Username\", \"Secret\"}".into()))?;
    // An identity token is a username of "<token>" (Docker's convention).
    let auth = if answer.username == "<token>" {
        RegistryAuth::Bearer(answer.secret)
    } else {
        RegistryAuth::Basic(answer.username, answer.secret)
    };
    Ok(Credentials { auth, from })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn auth_files_give_basic_credentials_for_their_registry_only() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let file = file_with(&format!(
            r#"{{"auths": {{"https://127.0.0.1:5000/v1/": {{"auth": "{encoded}"}},
                 "registry.example": {{"username": "bob", "password": "pw"}}}}}}"#
        ));
        let found = from_file(file.path(), "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            found.auth(),
            &RegistryAuth::Basic("alice".into(), "s3cret".into())
        );
        assert!(!format!("{found:?}").contains("s3cret"));
        let found = from_file(file.path(), "registry.example").unwrap().unwrap();
        assert_eq!(
            found.auth(),
            &RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert!(from_file(file.path(), "other.example").unwrap().is_none());
    }

    #[test]
    fn malformed_auth_files_are_named_and_their_content_is_not_shown() {
        let file = file_with(r#"{"auths": {"r.example": {"auth": "not base64!"}}}"#);
        let error = from_file(file.path(), "r.example").unwrap_err().to_string();
        assert!(
            error.contains(&file.path().display().to_string()),
            "{error}"
        );
        assert!(!error.contains("not base64!"), "{error}");
        let file = file_with("password=hunter2");
        let error = from_file(file.path(), "r.example").unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let file = file_with(r#"{"credsStore": "wasp-test-no-such-helper"}"#);
        let error = from_file(file.path(), "r.example").unwrap_err().to_string();
        assert!(
            error.contains("docker-credential-wasp-test-no-such-helper"),
            "{error}"
        );
    }

    #[test]
    fn tokens_come_from_the_first_line_of_a_file() {
        let file = file_with("  tok3n \nignored\n");
        let credentials = Credentials::token_file(file.path()).unwrap();
        assert_eq!(credentials.auth(), &RegistryAuth::Bearer("tok3n".into()));
        let empty = file_with("\n");
        assert!(Credentials::token_file(empty.path()).is_err());
    }
}
