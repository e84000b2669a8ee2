//! Ctrl-C while jobs run: cancel them (locally and on nodes) and stop promptly, instead of
//! dying with jobs still holding workers.

use std::sync::atomic::{AtomicBool, Ordering};
use wasp::Server;

/// The exit status of a command stopped by SIGINT, as shells report it (128 + 2).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Whether Ctrl-C was pressed while [`cancel_on_interrupt`] ran.
#[derive(Debug, Default)]
pub(crate) struct Interrupted(AtomicBool);

impl Interrupted {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs `work` with Ctrl-C (SIGINT) turned into the cancellation of job group `group` of
/// `server`: its jobs complete at once as cancelled (queued ones never run, running ones
/// are stopped, on nodes too), and `work` sees [`Interrupted::is_set`].
pub(crate) fn cancel_on_interrupt<R>(
    server: &Server,
    group: &str,
    work: impl FnOnce(&Interrupted) -> R,
) -> R {
    let interrupted = Interrupted::default();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(server, group, &interrupted, finished));
        let result = work(&interrupted);
        let _ = done.send(());
        let _ = watcher.join();
        result
    })
}

/// Waits for SIGINT or the end of the work, on a small runtime of its own.
fn watch(
    server: &Server,
    group: &str,
    interrupted: &Interrupted,
    finished: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        tracing::warn!("cannot watch for Ctrl-C: it will end the process at once");
        return;
    };
    runtime.block_on(async {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                if signal.is_ok() {
                    interrupted.0.store(true, Ordering::Release);
                    let cancelled = server.cancel_group(group);
                    eprintln!("wasp: interrupted: {cancelled} job(s) cancelled");
                }
            }
            _ = finished => {}
        }
    });
}
