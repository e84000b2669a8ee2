//! What the end-to-end tests share: real `wasp node` processes, test hosts in network
//! namespaces, and clients, batches and bounded waits.

pub(crate) mod hosts;
pub(crate) mod node;
pub(crate) mod support;
