//! A runtime-agnostic channel from the node thread to its callers, awaitable or blocking, and
//! a minimal `block_on` for the blocking side. No executor is assumed: a receiver's future is
//! woken through the standard [`Waker`] of whatever polls it.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Wake;
use std::thread::Thread;
use std::time::Instant;

struct State<T> {
    queue: VecDeque<T>,
    /// The sender is gone: nothing more will come.
    closed: bool,
    /// The receiver is gone: sending is pointless.
    abandoned: bool,
    waker: Option<Waker>,
}

struct Shared<T>(Mutex<State<T>>);

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves a consistent queue: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending half (node thread side).
pub(crate) struct Tx<T>(Arc<Shared<T>>);

/// The receiving half (caller side).
pub(crate) struct Rx<T>(Arc<Shared<T>>);

/// A new unbounded channel. Its length is bounded by what one command can produce (the node
/// caps peers, samples and items per query).
pub(crate) fn channel<T>() -> (Tx<T>, Rx<T>) {
    let shared = Arc::new(Shared(Mutex::new(State {
        queue: VecDeque::new(),
        closed: false,
        abandoned: false,
        waker: None,
    })));
    (Tx(Arc::clone(&shared)), Rx(shared))
}

impl<T> Tx<T> {
    /// Queues `value`; `Err` gives it back when the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        let waker = {
            let mut s = self.0.lock();
            if s.abandoned {
                return Err(value);
            }
            s.queue.push_back(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Tx<T> {
    /// Whether the receiver is gone.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.lock().abandoned
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Rx<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.abandoned = true;
        s.queue.clear();
    }
}

impl<T> core::fmt::Debug for Rx<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Rx({} queued)", self.0.lock().queue.len())
    }
}

impl<T> Rx<T> {
    /// The next value; `Ready(None)` once the sender is gone and the queue is empty.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.0.lock();
        if let Some(v) = s.queue.pop_front() {
            return Poll::Ready(Some(v));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for the next value (`None`: the sender is gone).
    pub(crate) async fn recv(&self) -> Option<T> {
        core::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next value without waiting: `Ok(None)` when nothing is queued yet, `Err(())` when
    /// the sender is gone and nothing is left.
    pub(crate) fn try_recv(&self) -> Result<Option<T>, ()> {
        let mut s = self.0.lock();
        match s.queue.pop_front() {
            Some(v) => Ok(Some(v)),
            None if s.closed => Err(()),
            None => Ok(None),
        }
    }

    /// Waits on this thread for the next value.
    pub(crate) fn recv_blocking(&self) -> Option<T> {
        block_on(self.recv())
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parking between polls.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Runs `fut` on this thread until it completes (`Some`) or `deadline` passes (`None`; the
/// future is dropped).
pub(crate) fn block_on_until<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn values_then_end() {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(v) = rx.recv_blocking() {
            got.push(v);
        }
        t.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(rx.try_recv(), Err(()));
    }

    #[test]
    fn dropped_receiver_refuses_values() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(7), Err(7));
    }

    #[test]
    fn deadline_passes_without_a_value() {
        let (tx, rx) = channel::<u8>();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(block_on_until(rx.recv(), deadline), None);
        tx.send(1).unwrap();
        assert_eq!(block_on_until(rx.recv(), deadline), Some(Some(1)));
    }
}
