//! The `wasp` command end to end: the binary run as real processes (commands, nodes,
//! partitions, hostile jobs, identities, cancellation, the mixed-architecture cluster, the
//! monitor, nodes found while running, the container images, registries). One test binary, so that
//! wasmtime is linked once for all of them: `cargo test -p wasp-cli --test e2e [FILTER]`,
//! where a filter such as `cluster::` runs one module.
//!
//! Every wait is bounded: a hung test is a failed test. When one fails, each node still
//! running prints its log (see `harness/node.rs`).

mod harness;

// The command line: run, map, build, new, secret; exit statuses and messages.
mod cli;
// Nodes killed, terminated and restarted mid-batch; clients with the wrong secret.
mod cluster;
// Data put once, jobs that take other jobs' results and the result cache, on nodes.
mod data;
// Hostile jobs on a node: each a typed error, and the node keeps serving.
mod hostile;
// Cancelled jobs, departed clients and interrupted maps free a node's workers at once.
mod cancel;
// Node identities: two nodes on one host are two; a client never merges two addresses.
mod identity;
// Nodes discovered, resolved from a name, read from a rendezvous directory, resized.
mod membership;
// A real network partition between network namespaces.
mod partition;
// The monitor: metrics, probes, the status and the dashboard.
mod monitor;
// An x86-64 and an aarch64 node in one cluster; a node in a 39-bit address space.
mod mixed_arch;
// The container images, unpacked and run as a node.
mod image;
// Job modules through a real OCI registry: push, pull, run by tag and digest, a node pulling.
mod registry;
