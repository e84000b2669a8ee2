//! [`Registry`]: the values a server's caller has put, by hash, for as long as a
//! [`DataRef`] holds them. Jobs hold the bytes they take themselves, so a value dropped by
//! its caller stays with the jobs already submitted and goes with the last of them.

use super::{Data, DataError, DataRef};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use wasp_proto::refs;

/// The values of one server, by hash.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    values: Mutex<HashMap<[u8; 32], Weak<Stored>>>,
    /// The largest value taken, in bytes.
    max_value: u64,
}

/// A value in the registry, held by its [`DataRef`]s.
pub(crate) struct Stored {
    pub(crate) data: Data,
    registry: Weak<Inner>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        let Some(inner) = self.registry.upgrade() else {
            return;
        };
        let mut values = inner.lock();
        // Another put of the same value may have replaced this entry: leave that one.
        if values
            .get(&self.data.hash)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            values.remove(&self.data.hash);
        }
    }
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.data.fmt(f)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Weak<Stored>>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Registry {
    /// A registry taking values of at most `max_value` bytes.
    pub(crate) fn new(max_value: u64) -> Self {
        Registry {
            inner: Arc::new(Inner {
                values: Mutex::new(HashMap::new()),
                max_value,
            }),
        }
    }

    /// The most bytes a value may have.
    pub(crate) fn max_value(&self) -> u64 {
        self.inner.max_value
    }

    /// Keeps `bytes`, the MessagePack encoding of one value, and returns its reference. A
    /// value put again while held is the same value: its first bytes are kept.
    ///
    /// # Errors
    /// [`DataError::TooLarge`] past the maximum; [`DataError::NotAValue`] if `bytes` are
    /// not one MessagePack value, or hold a reference.
    pub(crate) fn put(&self, bytes: Bytes) -> Result<DataRef, DataError> {
        let size = bytes.len() as u64;
        if size > self.inner.max_value {
            return Err(DataError::TooLarge {
                size,
                limit: self.inner.max_value,
            });
        }
        match refs::find(&bytes) {
            Ok(found) if found.is_empty() => {}
            Ok(_) => {
                return Err(DataError::NotAValue(
                    "it holds a reference (to data or a job): pass those to the job instead".into(),
                ));
            }
            Err(error) => return Err(DataError::NotAValue(error.to_string())),
        }
        let data = Data::of(bytes);
        let mut values = self.inner.lock();
        if let Some(stored) = values.get(&data.hash).and_then(Weak::upgrade) {
            return Ok(DataRef { stored });
        }
        let stored = Arc::new(Stored {
            registry: Arc::downgrade(&self.inner),
            data,
        });
        values.insert(stored.data.hash, Arc::downgrade(&stored));
        Ok(DataRef { stored })
    }

    /// The value with this hash, if a [`DataRef`] holds it.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<Data> {
        let values = self.inner.lock();
        let stored = values.get(hash)?.upgrade()?;
        drop(values);
        Some(stored.data.clone())
    }

    /// How many values are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Bytes {
        Bytes::from(rmp_serde::to_vec(text).unwrap())
    }

    #[test]
    fn a_value_lives_as_long_as_its_references() {
        let registry = Registry::new(1 << 20);
        let first = registry.put(value("table")).unwrap();
        let again = registry.put(value("table")).unwrap();
        assert_eq!(first.hash(), again.hash());
        assert_eq!(registry.len(), 1);
        let hash = first.stored.data.hash;
        drop(first);
        assert!(registry.get(&hash).is_some(), "still held by the second");
        drop(again);
        assert!(registry.get(&hash).is_none());
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn values_too_large_or_not_values_are_refused() {
        let registry = Registry::new(4);
        assert!(matches!(
            registry.put(value("too long")),
            Err(DataError::TooLarge { size: 9, limit: 4 })
        ));
        assert!(matches!(
            registry.put(Bytes::from_static(&[0x92, 1])),
            Err(DataError::NotAValue(_))
        ));
        let registry = Registry::new(1 << 20);
        let inner = registry.put(value("x")).unwrap();
        let mut nested = vec![0x91];
        nested.extend_from_slice(&inner.to_msgpack());
        assert!(matches!(
            registry.put(Bytes::from(nested)),
            Err(DataError::NotAValue(why)) if why.contains("reference")
        ));
    }
}
