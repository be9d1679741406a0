//! The stream of [`Item`]s a manifest reader hands the planner.
//!
//! Rows travel from the reader to the planner in batches of [`BATCH_ROWS`] through a channel
//! holding at most [`STREAM_BUFFER_ROWS`] rows: the reader runs ahead of the planner by that
//! much and no more, so memory stays flat whatever the manifest's length. A gauge counts the
//! rows handed over and not yet taken, and keeps its high-water mark, so tests can check the
//! bound on a real run.

use super::{Item, ManifestError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Most rows buffered between a manifest reader and the planner.
pub const STREAM_BUFFER_ROWS: usize = 4096;

/// Rows per hand-over: one channel operation per batch, not per row, keeps the parser's
/// thread and the planner from waking each other up a million times a second.
pub const BATCH_ROWS: usize = 256;

type Batch = Result<Vec<Item>, ManifestError>;

/// Rows handed over and not yet taken, and the most there ever were.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// A manifest being read: its ETag and its rows, in order.
pub struct ManifestStream {
    /// The ETag of the manifest object read (CSV object, inventory `manifest.json`); empty
    /// for a generator, which reads no manifest object.
    pub etag: String,
    rx: mpsc::Receiver<Batch>,
    gauge: Arc<Gauge>,
}

impl ManifestStream {
    /// The next batch of rows; `None` at the end. After an `Err` nothing more comes.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        let batch = self.rx.recv().await;
        if let Some(Ok(rows)) = &batch {
            self.gauge.now.fetch_sub(rows.len(), Ordering::Relaxed);
        }
        batch
    }

    /// The most rows that were ever buffered between the reader and the planner.
    pub fn max_buffered_rows(&self) -> usize {
        self.gauge.max.load(Ordering::Relaxed)
    }

    /// A stream and the sender feeding it (readers, and tests of the planner loop).
    pub fn channel(etag: String) -> (Self, RowSender) {
        // Batches counted at once: those queued, one being sent, one just received.
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_ROWS / BATCH_ROWS - 2);
        let gauge = Arc::new(Gauge::default());
        (
            Self {
                etag,
                rx,
                gauge: gauge.clone(),
            },
            RowSender {
                tx,
                gauge,
                batch: Vec::with_capacity(BATCH_ROWS),
            },
        )
    }
}

/// The reader's end of a [`ManifestStream`]. Each method returns `false` once the planner
/// has gone (it stopped for its time budget, or failed): the reader then just stops.
pub struct RowSender {
    tx: mpsc::Sender<Batch>,
    gauge: Arc<Gauge>,
    batch: Vec<Item>,
}

impl RowSender {
    fn take(&mut self) -> Vec<Item> {
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        let now = self.gauge.now.fetch_add(rows.len(), Ordering::Relaxed) + rows.len();
        self.gauge.max.fetch_max(now, Ordering::Relaxed);
        rows
    }

    /// Adds a row, handing a full batch over (waiting while the channel is full).
    pub async fn push(&mut self, item: Item) -> bool {
        self.batch.push(item);
        self.batch.len() < BATCH_ROWS || self.flush().await
    }

    pub async fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return !self.tx.is_closed();
        }
        let rows = self.take();
        self.tx.send(Ok(rows)).await.is_ok()
    }

    /// [`RowSender::push`] from a blocking thread.
    pub fn push_blocking(&mut self, item: Item) -> bool {
        self.batch.push(item);
        self.batch.len() < BATCH_ROWS || self.flush_blocking()
    }

    pub fn flush_blocking(&mut self) -> bool {
        if self.batch.is_empty() {
            return !self.tx.is_closed();
        }
        let rows = self.take();
        self.tx.blocking_send(Ok(rows)).is_ok()
    }

    /// Hands over what was read, then the error that ends the stream.
    pub async fn fail(mut self, error: ManifestError) {
        if self.flush().await {
            let _ = self.tx.send(Err(error)).await;
        }
    }

    pub fn fail_blocking(mut self, error: ManifestError) {
        if self.flush_blocking() {
            let _ = self.tx.blocking_send(Err(error));
        }
    }
}
