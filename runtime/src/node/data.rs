//! The values a node has received (data put once by clients), shared by all its clients:
//! bounded in bytes (`--max-data-bytes`), the least recently used out, and never one a job
//! may still run with: a job pins each value it takes from when it is submitted until its
//! task is gone. A value arriving reserves its room first, and waits for pinned values to
//! be let go if it must; a value larger than the whole store is refused.

use crate::data::Data;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The store of a node.
#[derive(Debug, Clone)]
pub(crate) struct DataStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kept: Mutex<Kept>,
    /// Signalled when room may have been made (a value unpinned or removed).
    room: Notify,
    received: AtomicU64,
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Kept {
    values: HashMap<[u8; 32], Entry>,
    /// The bytes of the values kept.
    bytes: u64,
    /// The bytes reserved by values on their way.
    reserved: u64,
    /// Counts uses: a value's stamp is the count at its last use.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    used: u64,
    /// How many submitted jobs take it.
    pins: usize,
}

/// Why a value cannot be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) size: u64,
    pub(crate) limit: u64,
}

/// Room held for a value on its way; given back if the value does not arrive.
#[derive(Debug)]
pub(crate) struct Reservation {
    inner: Arc<Inner>,
    len: u64,
}

/// A job's hold on a value: while it lives, the value is not evicted.
#[derive(Debug)]
pub(crate) struct Pin {
    inner: Arc<Inner>,
    hash: [u8; 32],
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Kept {
    /// Evicts unpinned values, least recently used first, until `len` more bytes fit in
    /// `max`; returns whether they do.
    fn make_room(&mut self, len: u64, max: u64) -> bool {
        while self.bytes + self.reserved + len > max {
            let oldest = self
                .values
                .iter()
                .filter(|(_, entry)| entry.pins == 0)
                .min_by_key(|(_, entry)| entry.used)
                .map(|(hash, _)| *hash);
            let Some(oldest) = oldest else {
                return false;
            };
            if let Some(entry) = self.values.remove(&oldest) {
                self.bytes -= entry.bytes.len() as u64;
            }
        }
        true
    }
}

impl DataStore {
    /// A store of at most `max_bytes` bytes of values.
    pub(crate) fn new(max_bytes: u64) -> Self {
        DataStore {
            inner: Arc::new(Inner {
                kept: Mutex::default(),
                room: Notify::new(),
                received: AtomicU64::new(0),
                max_bytes,
            }),
        }
    }

    /// Checks that a value of `size` bytes could be kept.
    pub(crate) fn admit(&self, size: u64) -> Result<(), TooLarge> {
        if size > self.inner.max_bytes {
            return Err(TooLarge {
                size,
                limit: self.inner.max_bytes,
            });
        }
        Ok(())
    }

    /// The value with this hash, pinned for a job; counts as a use.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<(Data, Pin)> {
        let mut kept = self.inner.lock();
        kept.clock += 1;
        let now = kept.clock;
        let entry = kept.values.get_mut(hash)?;
        entry.used = now;
        entry.pins += 1;
        let data = Data {
            hash: *hash,
            bytes: entry.bytes.clone(),
        };
        let pin = Pin {
            inner: self.inner.clone(),
            hash: *hash,
        };
        Some((data, pin))
    }

    /// Holds room for a value of `len` bytes, waiting while the values that fill the store
    /// are pinned by jobs (they let go as the jobs end).
    ///
    /// # Errors
    /// [`TooLarge`] if the value is larger than the store.
    pub(crate) async fn reserve(&self, len: u64) -> Result<Reservation, TooLarge> {
        self.admit(len)?;
        loop {
            let room = self.inner.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut kept = self.inner.lock();
                if kept.make_room(len, self.inner.max_bytes) {
                    kept.reserved += len;
                    return Ok(Reservation {
                        inner: self.inner.clone(),
                        len,
                    });
                }
            }
            room.await;
        }
    }

    /// Keeps a value that arrived (its hash checked) in the room `reservation` held.
    pub(crate) fn insert(&self, reservation: Reservation, data: &Data) {
        self.inner.received.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.inner.lock();
        kept.clock += 1;
        let used = kept.clock;
        let len = data.bytes.len() as u64;
        let fresh = Entry {
            bytes: data.bytes.clone(),
            used,
            pins: 0,
        };
        match kept.values.get_mut(&data.hash) {
            // Sent twice (another client's copy arrived first): one is enough.
            Some(entry) => entry.used = used,
            None => {
                kept.values.insert(data.hash, fresh);
                kept.bytes += len;
            }
        }
        drop(kept);
        // The reservation's room is now the value's (or free again).
        drop(reservation);
    }

    /// How many values are kept, their bytes, and how many arrived in all.
    pub(crate) fn size(&self) -> (usize, u64, u64) {
        let kept = self.inner.lock();
        let received = self.inner.received.load(Ordering::Relaxed);
        (kept.values.len(), kept.bytes, received)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.lock().reserved -= self.len;
        self.inner.room.notify_waiters();
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut kept = self.inner.lock();
        if let Some(entry) = kept.values.get_mut(&self.hash) {
            entry.pins -= 1;
        }
        drop(kept);
        self.inner.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn value(fill: u8, len: usize) -> Data {
        Data::of(Bytes::from(vec![fill; len]))
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_least_recently_used_unpinned_value_goes_first() {
        let store = DataStore::new(250);
        let [a, b, c] = [1, 2, 3].map(|fill| value(fill, 100));
        for data in [&a, &b] {
            let room = block_on(store.reserve(100)).unwrap();
            store.insert(room, data);
        }
        let (_, pin_a) = store.get(&a.hash).unwrap(); // a: used last, and pinned
        drop(pin_a);
        let room = block_on(store.reserve(100)).unwrap();
        store.insert(room, &c);
        assert!(
            store.get(&b.hash).is_none(),
            "b was the least recently used"
        );
        assert!(store.get(&a.hash).is_some());
        assert_eq!(store.size().0, 2);
    }

    #[test]
    fn a_pinned_value_stays_and_room_waits_for_it() {
        let store = DataStore::new(150);
        let (a, b) = (value(1, 100), value(2, 100));
        let room = block_on(store.reserve(100)).unwrap();
        store.insert(room, &a);
        let (_, pin) = store.get(&a.hash).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let waited = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(50), store.reserve(100)).await
        });
        assert!(waited.is_err(), "no room while a is pinned");
        drop(pin);
        let room = runtime.block_on(store.reserve(100)).unwrap();
        store.insert(room, &b);
        assert!(store.get(&a.hash).is_none(), "evicted once unpinned");
        assert_eq!(
            store.admit(151),
            Err(TooLarge {
                size: 151,
                limit: 150
            })
        );
    }
}
