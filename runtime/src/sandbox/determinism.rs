//! Whether a job's outcome follows from its module, arguments and fuel alone: a
//! [`Recorder`] notes, while the job runs, each time it reads a clock or random numbers
//! through the sandbox's WASI imports (preview 1 for core modules, 0.2 for components).
//! Only a job that did neither (and hit no limit) may have its result cached.
//!
//! The job's WASI context gets recording clocks and random generators, which every WASI
//! function of either version reads through; WASI 0.2's `insecure-seed`, a value rather
//! than a generator, is shadowed in the components' linker.

use getrandom::rand_core::TryRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::StoreContextMut;
use wasmtime::component::LinkerInstance;
use wasmtime_wasi::clocks::{MonotonicClock, WallClock};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// The WASI 0.2 interface of the insecure seed (wasmtime-wasi's version of it; components
/// importing any 0.2.x are linked to it).
pub(super) const INSECURE_SEED_INTERFACE: &str = "wasi:random/insecure-seed@0.2.12";

/// Notes whether a job read a clock or random numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder(Arc<AtomicBool>);

impl Recorder {
    fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the job read a clock or random numbers.
    pub(crate) fn read(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Forgets what an earlier job read: a kept instance's next job starts.
    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    /// Gives `builder` clocks and random generators that record their use here.
    pub(super) fn install(&self, builder: &mut WasiCtxBuilder) {
        builder
            .wall_clock(Recording::new(self, WallClock::new()))
            .monotonic_clock(Recording::new(self, MonotonicClock::new()))
            .secure_random(Recording::new(self, wasmtime_wasi::thread_rng()))
            .insecure_random(Recording::new(self, wasmtime_wasi::thread_rng()));
    }
}

/// A state that has a [`Recorder`] (a component's, for the shadowed seed).
pub(super) trait Records {
    fn recorder(&self) -> &Recorder;
}

/// Shadows `insecure-seed` in `seed` (the linker's instance of
/// [`INSECURE_SEED_INTERFACE`]): recorded, then a fresh random seed, as WASI gives.
pub(super) fn shadow_insecure_seed<T: Records + 'static>(
    seed: &mut LinkerInstance<'_, T>,
) -> wasmtime::Result<()> {
    seed.func_wrap(
        "insecure-seed",
        |store: StoreContextMut<'_, T>, (): ()| -> wasmtime::Result<((u64, u64),)> {
            store.data().recorder().mark();
            let random = |_| getrandom::u64().map_err(|err| wasmtime::format_err!("{err}"));
            Ok(((random(0)?, random(1)?),))
        },
    )
}

/// A clock or a generator that records each use.
struct Recording<T> {
    recorder: Recorder,
    inner: T,
}

impl<T> Recording<T> {
    fn new(recorder: &Recorder, inner: T) -> Self {
        Recording {
            recorder: recorder.clone(),
            inner,
        }
    }
}

impl<T: HostWallClock> HostWallClock for Recording<T> {
    fn resolution(&self) -> Duration {
        self.recorder.mark();
        self.inner.resolution()
    }

    fn now(&self) -> Duration {
        self.recorder.mark();
        self.inner.now()
    }
}

impl<T: HostMonotonicClock> HostMonotonicClock for Recording<T> {
    fn resolution(&self) -> u64 {
        self.recorder.mark();
        self.inner.resolution()
    }

    fn now(&self) -> u64 {
        self.recorder.mark();
        self.inner.now()
    }
}

impl TryRng for Recording<Box<dyn wasmtime_wasi::Rng + Send>> {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.recorder.mark();
        self.inner.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.recorder.mark();
        self.inner.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.recorder.mark();
        self.inner.try_fill_bytes(dst)
    }
}
