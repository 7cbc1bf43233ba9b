//! Behavioural tests of the public WAL API on both backends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use gnomon_wal::{
    CorruptionKind, RecoveryAction, ReplayReport, Wal, WalBackend, WalConfig, WalEntry, WalError,
    WalPayload, WalSink,
};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

// ---------------------------------------------------------------- helpers

#[derive(Debug, PartialEq)]
struct TestPayload(Vec<u8>);

impl WalPayload for TestPayload {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(b"BAD") {
            return Err("test payload rejects BAD".into());
        }
        Ok(Self(bytes.to_vec()))
    }
}

/// Blocks `apply` while closed, so a test can hold the flusher mid-flush and
/// queue appends behind it deterministically.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.cv.notify_all();
    }
    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.cv.wait(closed).unwrap();
        }
    }
}

#[derive(Default)]
struct Sink {
    applied: Mutex<Vec<(u64, Vec<u8>)>>,
    calls: AtomicUsize,
    gate: Gate,
}

impl WalSink<TestPayload> for Sink {
    fn apply(&self, entries: &[WalEntry<TestPayload>]) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.gate.pass();
        let mut applied = self.applied.lock().unwrap();
        for e in entries {
            applied.push((e.sequence, e.payload.0.clone()));
        }
    }
}

impl Sink {
    fn seqs(&self) -> Vec<u64> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect()
    }
    fn entries(&self) -> Vec<(u64, Vec<u8>)> {
        self.applied.lock().unwrap().clone()
    }
    fn len(&self) -> usize {
        self.applied.lock().unwrap().len()
    }
}

type TestWal = Wal<TestPayload>;

fn cfg() -> WalConfig {
    WalConfig {
        // Long enough that no-sync entries never flush on their own unless a
        // test asks for it.
        flush_interval: Duration::from_secs(3600),
        ..WalConfig::default()
    }
}

async fn open(backend: WalBackend, config: WalConfig) -> (Arc<TestWal>, ReplayReport, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let (wal, report) = Wal::open(
        backend,
        config,
        sink.clone() as Arc<dyn WalSink<TestPayload>>,
    )
    .await
    .expect("open wal");
    (wal, report, sink)
}

async fn append(wal: &TestWal, data: &[u8]) -> u64 {
    wal.append(
        Bytes::copy_from_slice(data),
        Arc::new(TestPayload(data.to_vec())),
    )
    .await
    .expect("append")
}

fn append_no_sync(wal: &TestWal, data: &[u8]) -> Result<u64, WalError> {
    wal.append_no_sync(
        Bytes::copy_from_slice(data),
        Arc::new(TestPayload(data.to_vec())),
    )
}

/// Liveness guard for conditions reached by background work; the bound is
/// generous and not a performance assertion.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn local(dir: &Path) -> WalBackend {
    WalBackend::LocalDir(dir.to_path_buf())
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// Size of the record written for one flush of `entries` (see crate docs).
fn record_len(entries: &[&[u8]]) -> u64 {
    8 + 12 + entries.iter().map(|e| 4 + e.len() as u64).sum::<u64>()
}

const HEADER_LEN: u64 = 12;

/// Three flushes of one entry each into one local segment.
async fn three_records(dir: &Path) -> PathBuf {
    let (wal, _, _) = open(local(dir), cfg()).await;
    for data in [b"one".as_slice(), b"two", b"three"] {
        append(&wal, data).await;
    }
    wal.shutdown().await.unwrap();
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    assert_eq!(
        std::fs::metadata(&segs[0]).unwrap().len(),
        HEADER_LEN + record_len(&[b"one"]) + record_len(&[b"two"]) + record_len(&[b"three"])
    );
    segs[0].clone()
}

fn entries(list: &[(u64, &[u8])]) -> Vec<(u64, Vec<u8>)> {
    list.iter().map(|(s, d)| (*s, d.to_vec())).collect()
}

// ---------------------------------------------------------------- round trips

async fn round_trip(backend: WalBackend) {
    let (wal, report, sink) = open(backend.clone(), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(report.entries_replayed, 0);
    assert_eq!(report.next_sequence, 1);
    let mut expected = Vec::new();
    for i in 0..10u64 {
        let data = format!("entry-{i}").into_bytes();
        let seq = append(&wal, &data).await;
        assert_eq!(seq, i + 1);
        expected.push((seq, data));
    }
    // An empty entry is legal and must survive.
    let seq = append(&wal, b"").await;
    expected.push((seq, Vec::new()));
    assert_eq!(sink.entries(), expected);
    wal.shutdown().await.unwrap();

    let (wal, report, sink) = open(backend, cfg()).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.entries_replayed, 11);
    assert_eq!(report.last_sequence, Some(11));
    assert_eq!(report.next_sequence, 12);
    assert!(report.files_read >= 1);
    assert_eq!(sink.entries(), expected);
    assert_eq!(append(&wal, b"after").await, 12);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn local_dir_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(local(&dir.path().join("wal"))).await;
    assert_eq!(segments(&dir.path().join("wal")).len(), 1);
}

#[tokio::test]
async fn in_memory_object_store_round_trip() {
    let store = Arc::new(InMemory::new());
    round_trip(WalBackend::ObjectStore {
        store: store.clone(),
        prefix: ObjectPath::from("node-a/wal"),
    })
    .await;
    // One object per flush.
    let objects: Vec<_> = store
        .list(Some(&ObjectPath::from("node-a/wal")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(objects.len(), 12);
    assert!(objects
        .iter()
        .any(|o| o.location.as_ref() == "node-a/wal/00000000000000000001.wal"));
}

#[tokio::test]
async fn local_file_system_object_store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    round_trip(WalBackend::ObjectStore {
        store,
        prefix: ObjectPath::from("node-a/wal"),
    })
    .await;
    assert!(dir
        .path()
        .join("node-a/wal/00000000000000000012.wal")
        .is_file());
}

#[tokio::test]
async fn object_store_ignores_foreign_objects_under_prefix() {
    let store = Arc::new(InMemory::new());
    let prefix = ObjectPath::from("n/wal");
    for other in [
        "n/wal/readme.txt",
        "n/wal/sub/00000000000000000001.wal",
        "n/walrus/00000000000000000001.wal",
    ] {
        store
            .put_opts(
                &ObjectPath::from(other),
                b"zzz".to_vec().into(),
                Default::default(),
            )
            .await
            .unwrap();
    }
    let backend = WalBackend::ObjectStore { store, prefix };
    let (wal, report, _) = open(backend.clone(), cfg()).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.files_read, 0);
    append(&wal, b"x").await;
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(backend, cfg()).await;
    assert!(report.is_clean());
    assert_eq!(sink.entries(), entries(&[(1, b"x")]));
}

#[tokio::test]
async fn segments_rotate_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_target_bytes: 200,
        ..cfg()
    };
    let (wal, _, _) = open(local(dir.path()), config.clone()).await;
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let data = vec![b'a' + (i % 26) as u8; 40];
        expected.push((append(&wal, &data).await, data));
    }
    wal.shutdown().await.unwrap();
    let files = segments(dir.path());
    assert!(files.len() > 3, "{files:?}");
    for f in &files {
        // A segment closes once past the target: at most one record beyond it.
        assert!(std::fs::metadata(f).unwrap().len() < 200 + record_len(&[&[0; 40]]));
    }

    let (wal, report, sink) = open(local(dir.path()), config).await;
    assert!(report.is_clean());
    assert_eq!(report.files_read, files.len() as u64);
    assert_eq!(sink.entries(), expected);
    assert_eq!(append(&wal, b"next").await, 31);
    wal.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- group commit

#[tokio::test]
async fn concurrent_appends_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    let tasks: Vec<_> = (0..64u32)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let data = i.to_le_bytes();
                (append(&wal, &data).await, data.to_vec())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let m = wal.metrics();
    assert!(m.flushes < 64, "flushes = {}", m.flushes);
    assert_eq!(m.entries, 64);
    assert_eq!(sink.seqs(), (1..=64).collect::<Vec<_>>());
    results.sort();
    assert_eq!(
        sink.entries(),
        results,
        "each writer's entry applied under its own sequence"
    );
    wal.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_during_a_flush_are_taken_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    sink.gate.close();
    let first = {
        let wal = wal.clone();
        tokio::spawn(async move { append(&wal, b"first").await })
    };
    wait_until("first flush reached the sink", || {
        sink.calls.load(Ordering::SeqCst) == 1
    })
    .await;

    let rest: Vec<_> = (1..64u32)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let data = i.to_le_bytes();
                (append(&wal, &data).await, data.to_vec())
            })
        })
        .collect();
    wait_until("63 appends queued behind the running flush", || {
        wal.metrics().pending_ops == 63
    })
    .await;
    sink.gate.open();

    assert_eq!(first.await.unwrap(), 1);
    let mut results = vec![(1, b"first".to_vec())];
    for t in rest {
        results.push(t.await.unwrap());
    }
    results.sort();
    let m = wal.metrics();
    assert_eq!(
        m.flushes, 2,
        "one flush for the first append, one for the 63 queued behind it"
    );
    assert_eq!(sink.calls.load(Ordering::SeqCst), 2);
    assert_eq!(sink.entries(), results);
    assert_eq!(sink.seqs(), (1..=64).collect::<Vec<_>>());
    wal.shutdown().await.unwrap();

    let (_, report, replayed) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(replayed.entries(), results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_mixed_sync_and_no_sync_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    let tasks: Vec<_> = (0..8u32)
        .map(|w| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..50u32 {
                    let data = format!("{w}-{i}").into_bytes();
                    let seq = if i % 3 == 0 {
                        append_no_sync(&wal, &data).unwrap()
                    } else {
                        append(&wal, &data).await
                    };
                    mine.push((seq, data));
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    wal.shutdown().await.unwrap();
    all.sort();
    assert_eq!(sink.entries(), all);
    assert_eq!(sink.seqs(), (1..=400).collect::<Vec<_>>());
    let m = wal.metrics();
    assert_eq!(m.entries, 400);
    assert!(m.flushes <= 400);

    let (_, report, replayed) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(replayed.entries(), all);
}

// ---------------------------------------------------------------- no_sync

#[tokio::test]
async fn no_sync_entries_are_applied_by_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(append_no_sync(&wal, b"a").unwrap(), 1);
    assert_eq!(append_no_sync(&wal, b"b").unwrap(), 2);
    assert_eq!(append_no_sync(&wal, b"c").unwrap(), 3);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(sink.len(), 0, "not applied before a flush");
    assert_eq!(wal.metrics().pending_ops, 3);
    assert!(segments(dir.path()).is_empty(), "nothing written yet");

    assert_eq!(append(&wal, b"d").await, 4);
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")])
    );
    assert_eq!(wal.metrics().flushes, 1);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_sync_entries_are_flushed_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        flush_interval: Duration::from_millis(20),
        ..cfg()
    };
    let (wal, _, sink) = open(local(dir.path()), config).await;
    append_no_sync(&wal, b"lonely").unwrap();
    wait_until("no-sync entry applied by the interval flush", || {
        sink.len() == 1
    })
    .await;
    assert_eq!(sink.entries(), entries(&[(1, b"lonely")]));
    assert_eq!(wal.metrics().flushes, 1);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_flushes_pending_no_sync_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    for i in 0..5u8 {
        append_no_sync(&wal, &[i]).unwrap();
    }
    assert_eq!(sink.len(), 0);
    wal.shutdown().await.unwrap();
    assert_eq!(sink.seqs(), vec![1, 2, 3, 4, 5]);

    assert!(matches!(
        wal.append(Bytes::from_static(b"x"), Arc::new(TestPayload(vec![])))
            .await,
        Err(WalError::Closed)
    ));
    assert!(matches!(append_no_sync(&wal, b"x"), Err(WalError::Closed)));
    wal.shutdown().await.expect("second shutdown is a no-op");

    let (_, report, replayed) = open(local(dir.path()), cfg()).await;
    assert_eq!(report.entries_replayed, 5);
    assert_eq!(replayed.seqs(), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn dropping_the_wal_still_flushes_queued_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    append_no_sync(&wal, b"kept").unwrap();
    drop(wal);
    wait_until("queued entry flushed after drop", || sink.len() == 1).await;
    // Reopening must see it; the flusher of the dropped WAL is done with the files.
    wait_until("segment written", || !segments(dir.path()).is_empty()).await;
    let (_, report, replayed) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(replayed.entries(), entries(&[(1, b"kept")]));
}

// ---------------------------------------------------------------- backpressure

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_full_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        max_pending_ops: 2,
        ..cfg()
    };
    let (wal, _, sink) = open(local(dir.path()), config).await;
    sink.gate.close();
    let blocked = {
        let wal = wal.clone();
        tokio::spawn(async move { append(&wal, b"in flight").await })
    };
    wait_until("flusher held in apply", || {
        sink.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    append_no_sync(&wal, b"q1").unwrap();
    append_no_sync(&wal, b"q2").unwrap();
    let err = append_no_sync(&wal, b"q3").unwrap_err();
    assert!(matches!(err, WalError::BufferFull { ops: 2 }));
    assert_eq!(err.to_string(), "wal buffer full with 2 ops");
    let err = wal
        .append(
            Bytes::from_static(b"q4"),
            Arc::new(TestPayload(b"q4".to_vec())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "wal buffer full with 2 ops");

    sink.gate.open();
    assert_eq!(blocked.await.unwrap(), 1);
    wal.shutdown().await.unwrap();
    // Rejected entries consumed no sequence number.
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"in flight"), (2, b"q1"), (3, b"q2")])
    );
}

// ---------------------------------------------------------------- damage

#[tokio::test]
async fn torn_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let full = std::fs::metadata(&seg).unwrap().len();
    let good = full - record_len(&[b"three"]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 3)
        .unwrap();

    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(report.entries_replayed, 2);
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    let c = &report.corruptions[0];
    assert_eq!(c.kind, CorruptionKind::TornRecord);
    assert_eq!(c.action, RecoveryAction::Truncated);
    assert_eq!(c.offset, good);
    assert_eq!(c.file, seg_name(1));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    assert_eq!(sink.entries(), entries(&[(1, b"one"), (2, b"two")]));
    assert_eq!(report.next_sequence, 3);

    assert_eq!(append(&wal, b"four").await, 3);
    assert_eq!(append(&wal, b"five").await, 4);
    wal.shutdown().await.unwrap();
    assert_eq!(
        segments(dir.path()),
        vec![seg],
        "appends went into the repaired segment"
    );

    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"one"), (2, b"two"), (3, b"four"), (4, b"five")])
    );
}

#[tokio::test]
async fn every_torn_length_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let pristine = std::fs::read(&seg).unwrap();
    let good = pristine.len() as u64 - record_len(&[b"three"]);
    for cut in good + 1..pristine.len() as u64 {
        std::fs::write(&seg, &pristine[..cut as usize]).unwrap();
        let (wal, report, sink) = open(local(dir.path()), cfg()).await;
        assert_eq!(sink.seqs(), vec![1, 2], "cut at {cut}");
        assert_eq!(report.corruptions.len(), 1, "cut at {cut}: {report:?}");
        assert_eq!(report.corruptions[0].action, RecoveryAction::Truncated);
        wal.shutdown().await.unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    }
}

#[tokio::test]
async fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();
    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.seqs(), vec![1, 2, 3]);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::InvalidLength(0));
    assert_eq!(report.corruptions[0].action, RecoveryAction::Truncated);
    append(&wal, b"four").await;
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(sink.seqs(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn flipped_byte_mid_file_skips_rest_and_keeps_file() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = HEADER_LEN + record_len(&[b"one"]);
    // Inside the second record's entry bytes.
    bytes[(second + 8 + 12 + 4 + 1) as usize] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.entries(), entries(&[(1, b"one")]));
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    let c = &report.corruptions[0];
    assert!(
        matches!(c.kind, CorruptionKind::ChecksumMismatch { .. }),
        "{c}"
    );
    assert_eq!(c.action, RecoveryAction::SkippedRestOfFile);
    assert_eq!(c.offset, second);
    assert!(c.to_string().contains("checksum mismatch"), "{c}");

    let a = append(&wal, b"four").await;
    let b = append(&wal, b"five").await;
    wal.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "damaged segment left for inspection"
    );
    assert_eq!(
        segments(dir.path()).len(),
        2,
        "appends went to a new segment"
    );

    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(
        sink.entries(),
        vec![
            (1, b"one".to_vec()),
            (a, b"four".to_vec()),
            (b, b"five".to_vec())
        ]
    );
    assert!(a > 1 && b == a + 1);
    assert_eq!(report.corruptions.len(), 1, "the damage is still reported");
}

#[tokio::test]
async fn flipped_byte_in_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.seqs(), vec![1, 2]);
    assert!(matches!(
        report.corruptions[0].kind,
        CorruptionKind::ChecksumMismatch { .. }
    ));
    assert_eq!(report.corruptions[0].action, RecoveryAction::Truncated);
    append(&wal, b"four").await;
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"one"), (2, b"two"), (3, b"four")])
    );
}

#[tokio::test]
async fn damage_in_an_older_segment_does_not_stop_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_target_bytes: 1, // every flush closes its segment
        ..cfg()
    };
    let (wal, _, _) = open(local(dir.path()), config.clone()).await;
    for data in [b"s1".as_slice(), b"s2", b"s3"] {
        append(&wal, data).await;
    }
    wal.shutdown().await.unwrap();
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 3);
    let mut first = std::fs::read(&segs[0]).unwrap();
    let n = first.len();
    first[n - 1] ^= 0xff;
    std::fs::write(&segs[0], &first).unwrap();

    let (wal, report, sink) = open(local(dir.path()), config).await;
    assert_eq!(sink.entries(), entries(&[(2, b"s2"), (3, b"s3")]));
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].file, seg_name(1));
    assert_eq!(
        report.corruptions[0].action,
        RecoveryAction::SkippedRestOfFile
    );
    assert_eq!(append(&wal, b"s4").await, 4);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_file_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let garbage = dir.path().join(seg_name(100));
    std::fs::write(&garbage, b"this is definitely not a wal segment, just text").unwrap();

    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.seqs(), vec![1, 2, 3]);
    assert_eq!(report.corruptions.len(), 1);
    let c = &report.corruptions[0];
    assert_eq!(c.kind, CorruptionKind::BadMagic);
    let RecoveryAction::Quarantined { renamed_to } = &c.action else {
        panic!("{c:?}")
    };
    assert!(!garbage.exists());
    assert!(
        dir.path().join(renamed_to).is_file(),
        "garbage kept under {renamed_to}"
    );
    assert_eq!(report.next_sequence, 4);

    assert_eq!(append(&wal, b"four").await, 4);
    wal.shutdown().await.unwrap();
    assert_eq!(segments(dir.path()), vec![seg]);
    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(sink.seqs(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn empty_and_half_created_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    // A crash right after creating the next segment, and one during its header.
    std::fs::write(dir.path().join(seg_name(4)), b"").unwrap();
    std::fs::write(dir.path().join(seg_name(5)), b"GNOM").unwrap();

    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.seqs(), vec![1, 2, 3]);
    assert_eq!(report.corruptions.len(), 2, "{report:?}");
    assert_eq!(
        report.corruptions[0].kind,
        CorruptionKind::TruncatedHeader { len: 0 }
    );
    assert_eq!(
        report.corruptions[1].kind,
        CorruptionKind::TruncatedHeader { len: 4 }
    );
    assert!(report
        .corruptions
        .iter()
        .all(|c| c.action == RecoveryAction::Removed));
    assert_eq!(report.files_read, 3);

    let seq = append(&wal, b"four").await;
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"one"), (2, b"two"), (3, b"three"), (seq, b"four")])
    );
}

#[tokio::test]
async fn only_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(seg_name(1)), b"").unwrap();
    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(report.entries_replayed, 0);
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(append(&wal, b"x").await, 1);
    wal.shutdown().await.unwrap();
    assert_eq!(sink.seqs(), vec![1]);
    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert!(report.is_clean());
    assert_eq!(sink.seqs(), vec![1]);
}

#[tokio::test]
async fn fail_on_corruption_refuses_and_modifies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let strict = WalConfig {
        fail_on_corruption: true,
        ..cfg()
    };
    let open_strict = || async {
        let sink = Arc::new(Sink::default());
        Wal::open(
            local(dir.path()),
            strict.clone(),
            sink as Arc<dyn WalSink<TestPayload>>,
        )
        .await
        .unwrap_err()
    };

    let err = open_strict().await;
    let WalError::Corrupt(c) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(c.kind, CorruptionKind::TornRecord);
    assert!(
        err.to_string().starts_with("corrupt wal data: torn record"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - 1);

    let garbage = dir.path().join(seg_name(50));
    std::fs::write(&garbage, b"garbage garbage garbage").unwrap();
    let err = open_strict().await;
    assert!(
        matches!(&err, WalError::Corrupt(c) if c.kind == CorruptionKind::BadMagic),
        "{err:?}"
    );
    assert!(garbage.exists());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - 1);

    let (_, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(report.corruptions.len(), 2);
    assert_eq!(sink.seqs(), vec![1, 2]);
}

#[tokio::test]
async fn undecodable_entries_are_skipped_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, sink) = open(local(dir.path()), cfg()).await;
    append(&wal, b"good").await;
    // The live path never decodes, so the sink sees it now...
    append(&wal, b"BAD entry").await;
    append(&wal, b"good again").await;
    wal.shutdown().await.unwrap();
    assert_eq!(sink.len(), 3);

    // ...but replay cannot.
    let (wal, report, sink) = open(local(dir.path()), cfg()).await;
    assert_eq!(sink.entries(), entries(&[(1, b"good"), (3, b"good again")]));
    assert_eq!(report.entries_replayed, 2);
    assert_eq!(report.last_sequence, Some(3));
    assert!(matches!(
        &report.corruptions[0].kind,
        CorruptionKind::UndecodableEntry { sequence: 2, .. }
    ));
    assert_eq!(report.corruptions[0].action, RecoveryAction::SkippedEntry);
    assert_eq!(append(&wal, b"four").await, 4);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn unsupported_version_is_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let seg = three_records(dir.path()).await;
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8] = 2;
    std::fs::write(&seg, &bytes).unwrap();
    let sink = Arc::new(Sink::default());
    let err = Wal::open(
        local(dir.path()),
        cfg(),
        sink as Arc<dyn WalSink<TestPayload>>,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WalError::UnsupportedVersion { version: 2, .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

#[tokio::test]
async fn damaged_objects_are_skipped() {
    let store = Arc::new(InMemory::new());
    let prefix = ObjectPath::from("wal");
    let backend = WalBackend::ObjectStore {
        store: store.clone(),
        prefix: prefix.clone(),
    };
    let (wal, _, _) = open(backend.clone(), cfg()).await;
    for data in [b"one".as_slice(), b"two", b"three"] {
        append(&wal, data).await;
    }
    wal.shutdown().await.unwrap();
    let second = prefix.clone().join(seg_name(2));
    let mut bytes = store
        .get_opts(&second, Default::default())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    store
        .put_opts(&second, bytes.into(), Default::default())
        .await
        .unwrap();
    store
        .put_opts(
            &prefix.clone().join(seg_name(9)),
            b"junk".to_vec().into(),
            Default::default(),
        )
        .await
        .unwrap();
    store
        .put_opts(
            &prefix.clone().join(seg_name(10)),
            Vec::new().into(),
            Default::default(),
        )
        .await
        .unwrap();

    let (wal, report, sink) = open(backend.clone(), cfg()).await;
    assert_eq!(sink.entries(), entries(&[(1, b"one"), (3, b"three")]));
    let kinds: Vec<_> = report
        .corruptions
        .iter()
        .map(|c| (&c.kind, &c.action))
        .collect();
    assert_eq!(report.corruptions.len(), 3, "{kinds:?}");
    assert!(matches!(
        kinds[0],
        (
            CorruptionKind::ChecksumMismatch { .. },
            RecoveryAction::SkippedRestOfFile
        )
    ));
    assert_eq!(
        kinds[1],
        (&CorruptionKind::BadMagic, &RecoveryAction::SkippedFile)
    );
    assert_eq!(
        kinds[2],
        (
            &CorruptionKind::TruncatedHeader { len: 0 },
            &RecoveryAction::SkippedFile
        )
    );
    // Above every object name, so the damaged objects are never overwritten.
    assert_eq!(report.next_sequence, 11);
    assert_eq!(append(&wal, b"four").await, 11);
    wal.shutdown().await.unwrap();
    let (_, _, sink) = open(backend, cfg()).await;
    assert_eq!(
        sink.entries(),
        entries(&[(1, b"one"), (3, b"three"), (11, b"four")])
    );
}

// ---------------------------------------------------------------- removal

/// Three flushes of three entries each: sequences 1-3, 4-6, 7-9.
async fn three_batches(wal: &TestWal) {
    for batch in 0..3u8 {
        append_no_sync(wal, &[batch, 0]).unwrap();
        append_no_sync(wal, &[batch, 1]).unwrap();
        append(wal, &[batch, 2]).await;
    }
}

#[tokio::test]
async fn remove_up_to_deletes_only_fully_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_target_bytes: 1,
        ..cfg()
    };
    let (wal, _, _) = open(local(dir.path()), config.clone()).await;
    three_batches(&wal).await;
    let names = |d: &Path| -> Vec<String> {
        segments(d)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(dir.path()),
        vec![seg_name(1), seg_name(4), seg_name(7)]
    );

    wal.remove_up_to(2).await.unwrap();
    let all = vec![seg_name(1), seg_name(4), seg_name(7)];
    assert_eq!(names(dir.path()), all, "1-3 only partly covered");
    wal.remove_up_to(5).await.unwrap();
    assert_eq!(names(dir.path()), vec![seg_name(4), seg_name(7)]);
    wal.remove_up_to(6).await.unwrap();
    assert_eq!(names(dir.path()), vec![seg_name(7)]);
    wal.remove_up_to(u64::MAX).await.unwrap();
    assert_eq!(
        names(dir.path()),
        vec![seg_name(7)],
        "newest segment is kept"
    );

    append(&wal, b"ten").await;
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(local(dir.path()), config).await;
    assert!(report.is_clean());
    assert_eq!(sink.seqs(), vec![7, 8, 9, 10]);
    assert_eq!(report.next_sequence, 11);
}

#[tokio::test]
async fn remove_up_to_object_store() {
    let store = Arc::new(InMemory::new());
    let prefix = ObjectPath::from("wal");
    let backend = WalBackend::ObjectStore {
        store: store.clone(),
        prefix: prefix.clone(),
    };
    let (wal, _, _) = open(backend.clone(), cfg()).await;
    three_batches(&wal).await;
    let names = || async {
        let mut v: Vec<String> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location.filename().unwrap().to_string())
            .try_collect()
            .await
            .unwrap();
        v.sort();
        v
    };
    assert_eq!(names().await, vec![seg_name(1), seg_name(4), seg_name(7)]);
    wal.remove_up_to(3).await.unwrap();
    assert_eq!(names().await, vec![seg_name(4), seg_name(7)]);
    wal.remove_up_to(5).await.unwrap();
    assert_eq!(
        names().await,
        vec![seg_name(4), seg_name(7)],
        "4-6 partly covered"
    );
    wal.remove_up_to(100).await.unwrap();
    assert_eq!(names().await, vec![seg_name(7)], "newest object is kept");
    wal.shutdown().await.unwrap();
    let (_, report, sink) = open(backend, cfg()).await;
    assert_eq!(sink.seqs(), vec![7, 8, 9]);
    assert_eq!(report.next_sequence, 10);
}

#[tokio::test]
async fn remove_up_to_with_a_shared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(local(dir.path()), cfg()).await;
    three_batches(&wal).await;
    wal.remove_up_to(u64::MAX).await.unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "a single segment is the newest"
    );
    wal.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- failures and metrics

/// InMemory store whose PUTs fail while `fail` is set.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemory,
    fail: AtomicBool,
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyStore")
    }
}

#[async_trait::async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: "injected put failure".into(),
            });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn failed_flush_fails_every_waiter_and_applies_nothing() {
    let store = Arc::new(FlakyStore::default());
    let backend = WalBackend::ObjectStore {
        store: store.clone(),
        prefix: ObjectPath::from("wal"),
    };
    let (wal, _, sink) = open(backend.clone(), cfg()).await;
    store.fail.store(true, Ordering::SeqCst);
    let writers: Vec<_> = (0..3u8)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move {
                wal.append(Bytes::copy_from_slice(&[i]), Arc::new(TestPayload(vec![i])))
                    .await
            })
        })
        .collect();
    for w in writers {
        let err = w.await.unwrap().unwrap_err();
        assert!(matches!(err, WalError::ObjectStore(_)), "{err:?}");
        assert!(err.to_string().contains("injected put failure"), "{err}");
    }
    assert_eq!(sink.len(), 0, "nothing durable, nothing applied");
    let m = wal.metrics();
    assert!(m.failed_flushes >= 1);
    assert_eq!(m.flushes, 0);

    store.fail.store(false, Ordering::SeqCst);
    let seq = append(&wal, b"after").await;
    assert_eq!(seq, 4, "failed sequences are not reused");
    assert_eq!(sink.entries(), entries(&[(4, b"after")]));
    wal.shutdown().await.unwrap();

    let (_, report, sink) = open(backend, cfg()).await;
    assert!(report.is_clean());
    assert_eq!(sink.entries(), entries(&[(4, b"after")]));
}

#[tokio::test]
async fn shutdown_reports_a_failed_final_flush() {
    let store = Arc::new(FlakyStore::default());
    let backend = WalBackend::ObjectStore {
        store: store.clone(),
        prefix: ObjectPath::from("wal"),
    };
    let (wal, _, sink) = open(backend, cfg()).await;
    append_no_sync(&wal, b"doomed").unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let err = wal.shutdown().await.unwrap_err();
    assert!(matches!(err, WalError::ObjectStore(_)));
    assert_eq!(sink.len(), 0);
}

#[tokio::test]
async fn metrics_count_flushes_entries_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(local(dir.path()), cfg()).await;
    for i in 0..5u8 {
        append(&wal, &[i; 10]).await;
    }
    let m = wal.metrics();
    assert_eq!(m.flushes, 5);
    assert_eq!(m.entries, 5);
    assert_eq!(m.failed_flushes, 0);
    assert_eq!(m.pending_ops, 0);
    assert_eq!(m.bytes_written, HEADER_LEN + 5 * record_len(&[&[0; 10]]));
    assert_eq!(m.flush_duration_buckets.iter().sum::<u64>(), 5);
    assert!(m.flush_duration_sum >= m.sync_duration_sum);
    wal.shutdown().await.unwrap();
    let seg = &segments(dir.path())[0];
    assert_eq!(std::fs::metadata(seg).unwrap().len(), m.bytes_written);
}
