//! Field wrappers that let a layer's shared state `#[derive(Clone)]`, so its builder methods
//! edit a copy with [`Arc::make_mut`](std::sync::Arc::make_mut) instead of copying every
//! field by hand.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use claude_tower::core::layer_state::{ClonedMutex, FreshOnClone};
//!
//! #[derive(Clone, Default)]
//! struct Shared {
//!     limit: u64,
//!     learned: ClonedMutex<HashMap<String, u64>>,
//!     cache: FreshOnClone<Mutex<HashMap<String, u64>>>,
//! }
//!
//! let mut shared = Arc::new(Shared::default());
//! shared.learned.lock().unwrap().insert("a".into(), 1);
//! shared.cache.lock().unwrap().insert("a".into(), 1);
//! let used = Arc::clone(&shared);
//! Arc::make_mut(&mut shared).limit = 10; // a builder edit: a copy, the layer in use keeps its own
//! assert_eq!(shared.learned.lock().unwrap().len(), 1); // learned state is copied
//! assert!(shared.cache.lock().unwrap().is_empty()); // caches start empty
//! assert_eq!(used.limit, 0);
//! ```

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

/// A cache its owner's clone does not share: a clone starts from `T::default()`.
#[derive(Debug, Default)]
pub struct FreshOnClone<T: Default>(pub T);

impl<T: Default> Clone for FreshOnClone<T> {
    fn clone(&self) -> Self {
        Self(T::default())
    }
}

impl<T: Default> Deref for FreshOnClone<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Default> DerefMut for FreshOnClone<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// A `Mutex` whose clone holds a copy of the value (a poisoned lock is read anyway).
#[derive(Debug, Default)]
pub struct ClonedMutex<T>(pub Mutex<T>);

impl<T: Clone> Clone for ClonedMutex<T> {
    fn clone(&self) -> Self {
        Self(Mutex::new(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        ))
    }
}

impl<T> Deref for ClonedMutex<T> {
    type Target = Mutex<T>;

    fn deref(&self) -> &Mutex<T> {
        &self.0
    }
}
