//! wasp end to end: real guest modules built with the SDK, run on real worker pools.

// Jobs: arguments, results, output and errors as the caller sees them.
mod jobs;
// Hostile and broken jobs: each a typed error, and the pool keeps serving.
mod hostile;
// Loading modules: bad bytes and forbidden imports are refused with clear errors.
mod modules;
// The pool: parallel results, callbacks, groups, map, async, resizing under load.
mod pool;
// Fuel: a deterministic CPU budget.
mod fuel;
// Compilation: once per process, then from the disk cache; corruption is survived.
mod cache;
// Cancelling jobs and groups.
mod cancel;
// A bounded queue: backpressure on producers.
mod backpressure;
// Components: wasp's Python runner, under the same limits and errors.
mod components;
// Data put once, taken by many jobs.
mod data;
// Jobs that take other jobs' results.
mod deps;
// The result cache.
mod results;
