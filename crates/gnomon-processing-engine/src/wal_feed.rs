//! How durable writes reach WAL triggers.
//!
//! [`WalFeed`] is a [`BatchObserver`] of the write buffer, installed before the WAL replay
//! (observers are fixed when the buffer opens) but silent until the engine tells it which
//! databases have WAL triggers: replayed entries never fire plugins, and a server without WAL
//! triggers pays one atomic load per batch. For a watched database it keeps a reference to
//! each batch of the flush and hands the flush over at its end, on an unbounded channel: the
//! WAL flusher never waits for a plugin.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gnomon_catalog::DbId;
use gnomon_write_buffer::{BatchObserver, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// The batches of one WAL flush that belong to watched databases, in sequence order.
pub(crate) type Flush = Vec<Arc<WriteBatch>>;

pub struct WalFeed {
    watched: ArcSwap<HashSet<DbId>>,
    pending: Mutex<Flush>,
    sender: Mutex<Option<mpsc::UnboundedSender<Flush>>>,
}

impl std::fmt::Debug for WalFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalFeed").finish_non_exhaustive()
    }
}

impl Default for WalFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl WalFeed {
    pub fn new() -> Self {
        Self {
            watched: ArcSwap::from_pointee(HashSet::new()),
            pending: Mutex::new(Vec::new()),
            sender: Mutex::new(None),
        }
    }

    pub(crate) fn connect(&self, sender: mpsc::UnboundedSender<Flush>) {
        *self.sender.lock() = Some(sender);
    }

    pub(crate) fn watch(&self, databases: HashSet<DbId>) {
        self.watched.store(Arc::new(databases));
    }
}

impl BatchObserver for WalFeed {
    fn observe(&self, batch: &Arc<WriteBatch>) {
        if self.watched.load().contains(&batch.db_id) {
            self.pending.lock().push(Arc::clone(batch));
        }
    }

    fn end_of_flush(&self) {
        let mut pending = self.pending.lock();
        if pending.is_empty() {
            return;
        }
        let flush = std::mem::take(&mut *pending);
        drop(pending);
        if let Some(sender) = &*self.sender.lock() {
            let _ = sender.send(flush);
        }
    }
}
