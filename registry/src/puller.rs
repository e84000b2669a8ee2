//! [`NodePuller`]: what lets a `wasp node` pull modules from the registries its operator
//! names (`--pull-from`), by digest.

use crate::{Credentials, Reference, Registry, RegistryError};
use wasp::{ModulePuller, ModuleSource, PullFuture};

/// Pulls modules for a node from the registries it names, with the credentials found for
/// each (or one token for all of them).
#[derive(Debug, Clone)]
pub struct NodePuller {
    scopes: Vec<String>,
    registry: Registry,
    token: Option<Credentials>,
}

impl NodePuller {
    /// A puller for `scopes` (`host[:port]` or `host[:port]/repository-prefix` each);
    /// `token`, if given, is sent to them all, else each registry's credentials are looked
    /// up as [`Credentials::for_registry`] does.
    ///
    /// # Errors
    /// [`RegistryError::Reference`] if a scope is malformed.
    pub fn new(scopes: Vec<String>, token: Option<Credentials>) -> Result<Self, RegistryError> {
        if let Some(bad) = scopes.iter().find(|scope| !wasp::is_registry_scope(scope)) {
            return Err(RegistryError::Reference(format!(
                "`{bad}` is not a registry to pull from: host[:port], optionally followed by \
                 /repository-prefix (no scheme)"
            )));
        }
        Ok(NodePuller {
            registry: Registry::new(scopes.iter().map(String::as_str)),
            scopes,
            token,
        })
    }
}

impl ModulePuller for NodePuller {
    fn scopes(&self) -> Vec<String> {
        self.scopes.clone()
    }

    fn pull(&self, source: &ModuleSource, max_bytes: u64) -> PullFuture {
        let registry = self.registry.clone();
        let token = self.token.clone();
        let reference = Reference::from(source);
        Box::pin(async move {
            let credentials = match token {
                Some(token) => token,
                None => Credentials::for_registry(reference.registry())
                    .map_err(|error| error.to_string())?,
            };
            let (bytes, _) = registry
                .pull_bytes(&reference, &credentials, max_bytes)
                .await
                .map_err(|error| error.to_string())?;
            Ok(bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_be_registries() {
        assert!(
            NodePuller::new(vec!["127.0.0.1:5000".into(), "r.example/team".into()], None).is_ok()
        );
        let error = NodePuller::new(vec!["https://r.example".into()], None).unwrap_err();
        assert!(error.to_string().contains("no scheme"), "{error}");
    }
}
