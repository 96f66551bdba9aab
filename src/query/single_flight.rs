//! A bounded map of values computed once per key: the first caller of a key
//! computes it while later callers of the same key wait for that result, and
//! callers of other keys are never held up (the map's lock is only held to
//! find or create a key's cell, never across the computation). A failed
//! computation is not kept: the next caller tries again. Beyond `capacity`
//! keys the oldest is dropped (callers that hold its value keep it).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct SingleFlight<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
}

struct Inner<K, V> {
    cells: HashMap<K, Arc<OnceCell<V>>>,
    /// Keys by insertion, oldest first.
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    pub fn new(capacity: usize) -> Self {
        SingleFlight {
            inner: Mutex::new(Inner { cells: HashMap::new(), order: VecDeque::new() }),
            capacity: capacity.max(1),
        }
    }

    fn cell(&self, key: &K) -> Arc<OnceCell<V>> {
        let mut inner = self.inner.lock().expect("single-flight lock");
        if let Some(c) = inner.cells.get(key) {
            return c.clone();
        }
        while inner.cells.len() >= self.capacity {
            let Some(old) = inner.order.pop_front() else { break };
            inner.cells.remove(&old);
        }
        let cell = Arc::new(OnceCell::new());
        inner.cells.insert(key.clone(), cell.clone());
        inner.order.push_back(key.clone());
        cell
    }

    /// The value of `key`, computing it with `init` if nobody has.
    pub async fn get_or_try_init<E, F, Fut>(&self, key: K, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self.cell(&key);
        cell.get_or_try_init(init).await.cloned()
    }

    /// Store a value computed elsewhere (e.g. warmed before serving).
    pub fn insert(&self, key: K, value: V) {
        let cell = self.cell(&key);
        let _ = cell.set(value);
    }

    /// The values computed so far, oldest first.
    pub fn ready(&self) -> Vec<(K, V)> {
        let inner = self.inner.lock().expect("single-flight lock");
        inner.order.iter().filter_map(|k| Some((k.clone(), inner.cells.get(k)?.get()?.clone()))).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("single-flight lock").cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_slow_key_holds_up_only_its_own_callers() {
        let map: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new(8));
        let (release, gate) = tokio::sync::oneshot::channel::<()>();
        let runs = Arc::new(AtomicUsize::new(0));
        let slow = {
            let (map, runs) = (map.clone(), runs.clone());
            tokio::spawn(async move {
                map.get_or_try_init("a", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.await.unwrap();
                    Ok::<_, ()>(1)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A second caller of "a" waits on the first one's result …
        let same = {
            let (map, runs) = (map.clone(), runs.clone());
            tokio::spawn(async move {
                map.get_or_try_init("a", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(99)
                })
                .await
            })
        };
        // … while "b" is answered at once, with "a" still being computed.
        let b = tokio::time::timeout(Duration::from_secs(1), map.get_or_try_init("b", || async { Ok::<_, ()>(2) }))
            .await
            .expect("b is not queued behind a");
        assert_eq!(b, Ok(2));
        assert!(!slow.is_finished() && !same.is_finished());
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Ok(1));
        assert_eq!(same.await.unwrap(), Ok(1), "the waiter gets the first computation's value");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "computed once");
    }

    #[tokio::test]
    async fn failures_are_retried_and_capacity_drops_the_oldest() {
        let map: SingleFlight<u32, u32> = SingleFlight::new(2);
        assert_eq!(map.get_or_try_init(1, || async { Err::<u32, &str>("boom") }).await, Err("boom"));
        assert_eq!(map.get_or_try_init(1, || async { Ok::<_, &str>(10) }).await, Ok(10));
        map.insert(2, 20);
        map.insert(3, 30);
        assert_eq!(map.len(), 2);
        assert_eq!(map.ready(), vec![(2, 20), (3, 30)]);
        // 1 was dropped: it is computed anew; 3 is still there.
        assert_eq!(map.get_or_try_init(1, || async { Ok::<_, ()>(11) }).await, Ok(11));
        assert_eq!(map.get_or_try_init(3, || async { Ok::<_, ()>(0) }).await, Ok(30));
    }
}
