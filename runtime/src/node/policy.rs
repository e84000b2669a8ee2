//! What a node's operator allows its clients: the most each job may ask for, which modules
//! may run, and how much one client may hold. Plain data and checks, tested without
//! sockets; `connection.rs` applies them.
//!
//! A client's request above a maximum is refused with a typed error, never silently
//! lowered or raised: the client asked for those limits for a reason.

use crate::error::JobError;
use crate::module::ModuleHash;
use crate::sandbox::{Asked, Limits};
use std::collections::HashSet;
use std::time::Duration;

/// The longest wall-clock time a job may ask for, by default; a job that asks for no
/// timeout gets this one, so that no job holds a worker for ever.
pub(crate) const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The most linear memory a job may ask for, by default: 1 GiB.
pub(crate) const DEFAULT_MAX_MEMORY: u64 = 1 << 30;
/// The most output a job may ask to have captured, by default: 4 MiB on each stream
/// (both, and the result, must fit in one 16 MiB frame back).
pub(crate) const DEFAULT_MAX_OUTPUT: u64 = 4 << 20;
/// The most elements a job may ask for in each table, by default.
pub(crate) const DEFAULT_MAX_TABLE_ELEMENTS: u64 = 1_000_000;
/// The largest module a client may send, by default: 64 MiB.
pub(crate) const DEFAULT_MAX_MODULE_SIZE: u64 = 64 << 20;
/// How many clients may be connected at once, by default.
pub(crate) const DEFAULT_MAX_CLIENTS: usize = 256;
/// How many jobs one client may have on the node at once (queued, running, or waiting for
/// their module), by default: far above what a client's credit window sends (at most 1,024),
/// so only a client that ignores its window reaches it.
pub(crate) const DEFAULT_MAX_JOBS_PER_CLIENT: usize = 4096;
/// How many bytes of arguments and results one client may have on the node at once, by
/// default: 256 MiB. Past it the node stops reading the client's jobs until answers drain.
pub(crate) const DEFAULT_MAX_BYTES_PER_CLIENT: u64 = 256 << 20;
/// How many modules the node keeps, by default (least recently used evicted first).
pub(crate) const DEFAULT_MAX_MODULES: usize = 1024;
/// How many bytes of modules the node keeps, by default: 1 GiB.
pub(crate) const DEFAULT_MAX_MODULE_BYTES: u64 = 1 << 30;
/// How many bytes of values put once (data) the node keeps, by default: 2 GiB.
pub(crate) const DEFAULT_MAX_DATA_BYTES: u64 = 2 << 30;

/// The node's rules for its clients. See each field for its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodePolicy {
    /// The longest timeout a job may ask for, also given to jobs that ask for none;
    /// `None`: no maximum, and jobs may run unbounded. Default: 10 minutes.
    pub max_timeout: Option<Duration>,
    /// The most linear memory a job may ask for. Default: 1 GiB.
    pub max_memory: u64,
    /// The most bytes of each of stdout and stderr a job may ask to have captured.
    /// Default: 4 MiB.
    pub max_output: u64,
    /// The most elements a job may ask for in each table. Default: 1,000,000.
    pub max_table_elements: u64,
    /// The largest fuel budget a job may ask for, also given to jobs that ask for none (so
    /// that every job's CPU is bounded the same way on every run); `None`: no maximum, and
    /// jobs without a budget run without one. Default: none.
    pub max_fuel: Option<u64>,
    /// The largest module a client may send; a client sending a larger one is cut off.
    /// Default: 64 MiB.
    pub max_module_size: u64,
    /// If set, the only modules the node runs (by blake3 hash); jobs of other modules are
    /// refused without the module being asked for. Default: any module.
    pub allowed_modules: Option<HashSet<ModuleHash>>,
    /// How many clients may be connected at once; more are refused. Default: 256.
    pub max_clients: usize,
    /// How many jobs one client may have on the node at once; a client sending more is
    /// cut off. Default: 4,096.
    pub max_jobs_per_client: usize,
    /// How many bytes of arguments and unwritten results one client may have on the node;
    /// past it, the node reads no more of its jobs until its answers are written (QUIC's
    /// flow control holds the client back). Default: 256 MiB.
    pub max_bytes_per_client: u64,
    /// How many modules the node keeps; the least recently used go first. Default: 1,024.
    pub max_modules: usize,
    /// How many bytes of modules the node keeps. Default: 1 GiB.
    pub max_module_bytes: u64,
    /// How many bytes of values put once (data, sent by clients for their jobs) the node
    /// keeps; the least recently used go first, never one a job may still run with. A job
    /// taking a larger value is refused with `DataTooLarge`. Default: 2 GiB.
    pub max_data_bytes: u64,
    /// Whether a client's job that asks for reuse (`JobOptions::reuse_instance`, Python's
    /// `reuse_instances=True`) may run in the instance kept from an earlier job of the
    /// same client. `false`: every job runs in a fresh instance, whatever it asks, so no
    /// two jobs of a client ever share an interpreter here. Default: `true`.
    pub instance_reuse: bool,
}

impl Default for NodePolicy {
    fn default() -> Self {
        NodePolicy {
            max_timeout: Some(DEFAULT_MAX_TIMEOUT),
            max_memory: DEFAULT_MAX_MEMORY,
            max_output: DEFAULT_MAX_OUTPUT,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            max_fuel: None,
            max_module_size: DEFAULT_MAX_MODULE_SIZE,
            allowed_modules: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_jobs_per_client: DEFAULT_MAX_JOBS_PER_CLIENT,
            max_bytes_per_client: DEFAULT_MAX_BYTES_PER_CLIENT,
            max_modules: DEFAULT_MAX_MODULES,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
            instance_reuse: true,
        }
    }
}

impl NodePolicy {
    /// The limits a job asking for `asked` runs with here: what it asks for, and for each
    /// limit it does not ask for (its client's user did not set it), the node's maximum,
    /// as for a job asking for no timeout or no fuel budget.
    ///
    /// # Errors
    /// [`JobError::LimitRefused`] naming the first limit asked for above the node's maximum.
    pub(crate) fn admit_limits(&self, asked: Asked) -> Result<Limits, JobError> {
        let timeout = at_most("timeout", asked.timeout, self.max_timeout)?;
        let fuel = at_most("fuel", asked.fuel, self.max_fuel)?;
        let size = |limit, asked: Option<u64>, allowed: u64| match asked {
            Some(asked) if asked > allowed => {
                Err(refused(limit, asked.to_string(), allowed.to_string()))
            }
            asked => Ok(asked.unwrap_or(allowed)),
        };
        Ok(Limits {
            timeout,
            fuel,
            max_memory: size("memory", asked.max_memory, self.max_memory)?,
            max_output: size("output", asked.max_output, self.max_output)?,
            max_table_elements: size(
                "table elements",
                asked.max_table_elements,
                self.max_table_elements,
            )?,
        })
    }

    /// Whether a job that asks for reuse gets it here: only if the operator allows it.
    /// A job refused reuse runs in a fresh instance, which computes the same result
    /// (which kept instance a job lands on, if any, was never the caller's to choose).
    pub(crate) fn admit_reuse(&self, asked: bool) -> bool {
        asked && self.instance_reuse
    }

    /// Whether jobs of the module `hash` may run here.
    ///
    /// # Errors
    /// [`JobError::ModuleRefused`] if the node has an allow-list without it.
    pub fn admit_module(&self, hash: &ModuleHash) -> Result<(), JobError> {
        match &self.allowed_modules {
            Some(allowed) if !allowed.contains(hash) => Err(JobError::ModuleRefused(format!(
                "module {} is not on the node's allow-list",
                hash.to_hex()
            ))),
            _ => Ok(()),
        }
    }
}

/// An optional limit (`None`: unbounded) under an optional maximum: what is asked if it is
/// within the maximum, the maximum if nothing is asked.
fn at_most<T: PartialOrd + std::fmt::Debug>(
    limit: &str,
    asked: Option<T>,
    max: Option<T>,
) -> Result<Option<T>, JobError> {
    match (asked, max) {
        (None, max) => Ok(max),
        (Some(asked), Some(max)) if asked > max => {
            Err(refused(limit, format!("{asked:?}"), format!("{max:?}")))
        }
        (asked, _) => Ok(asked),
    }
}

fn refused(limit: &str, asked: String, allowed: String) -> JobError {
    JobError::LimitRefused {
        limit: limit.to_string(),
        asked,
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_the_maxima_are_kept() {
        let policy = NodePolicy::default();
        let asked = Asked {
            timeout: Some(Duration::from_secs(5)),
            max_memory: Some(64 << 20),
            ..Asked::default()
        };
        let admitted = policy.admit_limits(asked).unwrap();
        assert_eq!(admitted.timeout, asked.timeout);
        assert_eq!(admitted.max_memory, 64 << 20);
    }

    /// The fault: a client sent its own defaults as if asked for, and a node with smaller
    /// maxima refused every job of a plain client. A limit nobody set takes the node's.
    #[test]
    fn limits_not_asked_for_take_the_nodes_values() {
        let small = NodePolicy {
            max_memory: 64 << 20,
            max_output: 1024,
            max_table_elements: 10,
            ..NodePolicy::default()
        };
        let admitted = small.admit_limits(Asked::default()).unwrap();
        assert_eq!(admitted.max_memory, 64 << 20);
        assert_eq!(admitted.max_output, 1024);
        assert_eq!(admitted.max_table_elements, 10);
        assert_eq!(admitted.timeout, Some(DEFAULT_MAX_TIMEOUT));
        let unbounded = NodePolicy {
            max_timeout: None,
            ..NodePolicy::default()
        };
        assert_eq!(
            unbounded.admit_limits(Asked::default()).unwrap().timeout,
            None
        );
    }

    #[test]
    fn a_job_without_a_fuel_budget_gets_the_maximum_if_there_is_one() {
        let default = NodePolicy::default();
        assert_eq!(default.admit_limits(Asked::default()).unwrap().fuel, None);
        let bounded = NodePolicy {
            max_fuel: Some(1_000),
            ..NodePolicy::default()
        };
        let admitted = bounded.admit_limits(Asked::default()).unwrap();
        assert_eq!(admitted.fuel, Some(1_000));
        let asked = Asked {
            fuel: Some(10),
            ..Asked::default()
        };
        assert_eq!(bounded.admit_limits(asked).unwrap().fuel, Some(10));
    }

    #[test]
    fn each_limit_asked_above_its_maximum_is_refused_by_name() {
        let policy = NodePolicy {
            max_timeout: Some(Duration::from_secs(1)),
            max_memory: 1 << 20,
            max_output: 1024,
            max_table_elements: 10,
            max_fuel: Some(1_000),
            ..NodePolicy::default()
        };
        let small = Asked {
            timeout: Some(Duration::from_millis(500)),
            max_memory: Some(1 << 20),
            max_output: Some(1024),
            max_table_elements: Some(10),
            fuel: Some(1_000),
            reuse: false,
        };
        assert!(policy.admit_limits(small).is_ok());
        let cases = [
            (
                Asked {
                    timeout: Some(Duration::from_secs(2)),
                    ..small
                },
                "timeout",
            ),
            (
                Asked {
                    max_memory: Some(2 << 20),
                    ..small
                },
                "memory",
            ),
            (
                Asked {
                    max_output: Some(1025),
                    ..small
                },
                "output",
            ),
            (
                Asked {
                    max_table_elements: Some(11),
                    ..small
                },
                "table elements",
            ),
            (
                Asked {
                    fuel: Some(1_001),
                    ..small
                },
                "fuel",
            ),
        ];
        for (asked, name) in cases {
            match policy.admit_limits(asked) {
                Err(JobError::LimitRefused { limit, .. }) => assert_eq!(limit, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_allow_list_admits_only_its_modules() {
        let listed = ModuleHash::of(b"listed");
        let other = ModuleHash::of(b"other");
        assert!(NodePolicy::default().admit_module(&other).is_ok());
        let policy = NodePolicy {
            allowed_modules: Some([listed].into_iter().collect()),
            ..NodePolicy::default()
        };
        assert!(policy.admit_module(&listed).is_ok());
        let refused = policy.admit_module(&other).unwrap_err();
        assert!(refused.to_string().contains(&other.to_hex()), "{refused}");
    }
}
