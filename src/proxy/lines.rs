//! A lossy, batched line writer for the access log. Requests append their line to a shared
//! buffer; a background thread writes whatever has gathered a few milliseconds after the
//! first line of a batch. The request path never waits on the output and wakes the thread
//! at most once per batch (a channel would wake it once per line at moderate load: a futex
//! call per request). When the output falls behind and the buffer is full, lines are dropped
//! and counted, never queued without bound.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

/// How long the writer lets lines gather before one write call.
const GATHER: Duration = Duration::from_millis(20);
/// Lines beyond this many buffered bytes are dropped.
const LIMIT: usize = 4 * 1024 * 1024;

/// The appending side; cheap to share.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
    writer: Thread,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    closing: AtomicBool,
}

/// Writes the last lines and stops the thread when dropped.
pub struct FlushOnDrop {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    /// Starts the writer thread over `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(Lines, FlushOnDrop)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            dropped: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        });
        let thread = thread::Builder::new().name("access-log".into()).spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })?;
        let lines = Lines {
            shared: shared.clone(),
            writer: thread.thread().clone(),
        };
        let guard = FlushOnDrop {
            shared,
            thread: Some(thread),
        };
        Ok((lines, guard))
    }

    /// Queues one complete line (with its newline). Never blocks on the output.
    pub fn append(&self, line: &[u8]) {
        let first_of_batch = {
            let Ok(mut pending) = self.shared.pending.lock() else {
                return;
            };
            if pending.len() + line.len() > LIMIT {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let was_empty = pending.is_empty();
            pending.extend_from_slice(line);
            was_empty
        };
        if first_of_batch {
            self.writer.unpark();
        }
    }
}

fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    // Two buffers swap roles so that appending never waits for a write in progress.
    let mut writing = Vec::with_capacity(64 * 1024);
    loop {
        // Parking tokens make this race-free: an append that finds the buffer empty unparks
        // us, and an unpark that arrives while we write makes the next park return at once.
        thread::park();
        let closing = shared.closing.load(Ordering::Acquire);
        if !closing {
            thread::sleep(GATHER);
        }
        match shared.pending.lock() {
            Ok(mut pending) => std::mem::swap(&mut *pending, &mut writing),
            Err(_) => return,
        }
        if !writing.is_empty() {
            if let Err(e) = out.write_all(&writing).and_then(|()| out.flush()) {
                tracing::warn!(error = %e, "access log: write failed; lines lost");
            }
            writing.clear();
        }
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log: output fell behind; lines were dropped"
            );
        }
        if closing {
            return;
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_the_last_ones_on_drop() {
        let sink = Sink::default();
        let (lines, guard) = Lines::spawn(sink.clone()).unwrap();
        for i in 0..1000 {
            lines.append(format!("line {i}\n").as_bytes());
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn lines_are_written_without_waiting_for_shutdown() {
        let sink = Sink::default();
        let (lines, _guard) = Lines::spawn(sink.clone()).unwrap();
        lines.append(b"first\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            thread::sleep(Duration::from_millis(5));
        }
        lines.append(b"second\n");
        while sink.0.lock().unwrap().len() < "first\nsecond\n".len() {
            assert!(
                std::time::Instant::now() < deadline,
                "second batch never written"
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"first\nsecond\n");
    }

    #[test]
    fn a_full_buffer_drops_lines_instead_of_growing() {
        /// An output that never accepts anything until released.
        struct Stuck(Arc<Mutex<()>>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _held = self.0.lock().unwrap();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (lines, guard) = Lines::spawn(Stuck(gate.clone())).unwrap();
        let line = vec![b'x'; 1024];
        for _ in 0..(3 * LIMIT / 1024) {
            lines.append(&line);
        }
        assert!(lines.shared.pending.lock().unwrap().len() <= LIMIT);
        assert!(lines.shared.dropped.load(Ordering::Relaxed) > 0);
        drop(held);
        drop(guard);
    }
}
