//! The streaming pipeline: events accepted over HTTP → the write-ahead log
//! (durable before the caller is answered) → micro-batches committed to the
//! lake as versions, each recording the highest log sequence it contains.
//!
//! A micro-batch goes through the batch pipeline itself (validation,
//! upsert by key, rejects, rollups, the one commit path), fed from an
//! in-memory landing of the batch's winning rows, so streaming and batch
//! ingest can never disagree on what a row means. Exactly once: the commit
//! and its log position are one lake version; after a crash the log is
//! replayed from the recorded position, and identical rows commit nothing.
//! For one key the event with the latest `occurred_at` wins (ties: the
//! larger `event_id`), within a batch and against every event committed
//! before: each landed row carries its event's stamp in hidden columns,
//! and upsert resolution keeps a stored row whose stamp is later (so the
//! writer holds no per-key state of its own, and a restart loses none).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, StringArray};
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::contract::row::{Reject, RowParser, value_at};
use crate::contract::values::{Value, days_to_date};
use crate::contract::{Entity, Kind, MONEY_SCALE, RATE_SCALE, Stamp};
use crate::lake::maintenance::Compaction;
use crate::lake::wal::{self, STREAM_APP, Wal};
use crate::lake::{DataFile, Location, Manifest, parquet_io, snapshot};

use super::batch::{self, IngestError, IngestOptions};
use super::events::{EventChecker, EventKind, LoggedEvent, split_body};
use super::resolve::PartitionStamps;
use super::stage::KeyMap;
use super::writer_cache::WriterCache;

/// Event ids remembered per process to answer a re-sent event `duplicate`
/// without logging it again (older repeats are still harmless: the same
/// row upserts to nothing).
const RECENT_IDS: usize = 1 << 20;

/// One event's outcome, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    pub index: usize,
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to one request: counts, the log sequence that holds the
/// accepted events (when any), and each event's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub sequence: Option<u64>,
    pub results: Vec<EventOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the event log: {0}")]
    Log(#[from] object_store::Error),
    #[error("writing the event log: {0}")]
    LogWrite(String),
    #[error("a logged segment is unreadable: {0}")]
    Segment(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// This server's lease on the lake's stream ended (another server took
    /// it, or it could not be renewed in time): nothing is logged or
    /// committed here any more.
    #[error("this server no longer holds the lake's stream lease")]
    NotHolder,
}

/// Bounded memory of recently accepted event ids, per tenant: a 128-bit
/// hash of (tenant, id) each, so that checking a batch allocates nothing.
/// (Two distinct ids share a hash with a chance of about 2^-88 among a
/// million remembered; a false repeat would be answered `duplicate`.)
#[derive(Default)]
struct RecentIds {
    order: VecDeque<u128>,
    seen: std::collections::HashSet<u128, std::hash::BuildHasherDefault<super::stage::KeyHasher>>,
}

impl RecentIds {
    fn id(tenant: &str, id: &str) -> u128 {
        // Tenant ids are safe directory names (never a NUL, at most 64
        // bytes) and event ids at most 200 bytes: the pair fits on the stack.
        let mut buf = [0u8; 320];
        let (t, i) = (tenant.as_bytes(), id.as_bytes());
        let n = t.len() + 1 + i.len();
        if n > buf.len() {
            return xxhash_rust::xxh3::xxh3_128(format!("{tenant}\0{id}").as_bytes());
        }
        buf[..t.len()].copy_from_slice(t);
        buf[t.len() + 1..n].copy_from_slice(i);
        xxhash_rust::xxh3::xxh3_128(&buf[..n])
    }

    fn insert(&mut self, tenant: &str, id: &str) {
        let k = Self::id(tenant, id);
        if self.seen.insert(k) {
            self.order.push_back(k);
            if self.order.len() > RECENT_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
    }
}

/// How long a door waits for its events to be committed (normally about a
/// second) before it answers without them.
pub const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// Log bytes one micro-batch takes at most (but at least one segment):
/// under load a commit then takes a bounded time and memory, and the
/// backlog is worked off by consecutive commits.
const BATCH_BYTES: usize = 8 << 20;
/// Logged bytes waiting that start a micro-batch without waiting for the
/// writer's pace: a batch this large already spreads a version's fixed
/// cost thinly, and waiting would only let the backlog grow.
const PACE_BYTES: u64 = 1 << 20;

/// Accepted events of requests waiting for the next log segment, and who
/// waits for its sequence number.
#[derive(Default)]
struct Group {
    body: String,
    /// The sequence number, or why not (`None`: the lease ended).
    waiting: Vec<tokio::sync::oneshot::Sender<Result<u64, Option<String>>>>,
}

/// The streaming pipeline of one lake.
pub struct Stream {
    lake: Location,
    wal: Wal,
    checker: EventChecker,
    wake: Notify,
    committed: watch::Sender<u64>,
    recent: Mutex<RecentIds>,
    /// Group commit of the log: requests that arrive while a segment is
    /// being written go into the next one together.
    group: Mutex<Group>,
    flushing: tokio::sync::Mutex<()>,
    /// Stored keys and rollup states between micro-batches.
    cache: Arc<WriterCache>,
    /// Micro-batches re-based because another writer published first.
    rebases: AtomicU64,
    /// Unix milliseconds until which this process may log and commit (the
    /// server's lease, `lake::lease`); unbounded for a stream opened alone.
    held_until_ms: AtomicI64,
}

impl Stream {
    /// Open the log of `lake`, continuing after what its latest version holds.
    pub async fn open(lake: Location) -> Result<Arc<Self>, StreamError> {
        let committed = snapshot::latest(&lake).await?.and_then(|m| m.txns.get(STREAM_APP).copied());
        let wal = Wal::open(lake.clone(), committed).await?;
        let removed = wal::remove_stamp_files(&lake).await?;
        if removed > 0 {
            tracing::info!(removed, "stamp files of an earlier release removed: stamps are kept in the rows");
        }
        Ok(Arc::new(Stream {
            lake,
            wal,
            checker: EventChecker::default(),
            wake: Notify::new(),
            committed: watch::channel(committed.unwrap_or(0)).0,
            recent: Mutex::new(RecentIds::default()),
            group: Mutex::new(Group::default()),
            flushing: tokio::sync::Mutex::new(()),
            cache: Arc::new(WriterCache::default()),
            rebases: AtomicU64::new(0),
            held_until_ms: AtomicI64::new(i64::MAX),
        }))
    }

    /// Log and commit only until `ms` (Unix milliseconds): the server moves
    /// it on with each renewal of its lease, and to 0 when the lease is lost.
    pub fn hold_until(&self, ms: i64) {
        self.held_until_ms.store(ms, Ordering::SeqCst);
    }

    /// Whether this process may still log and commit.
    pub fn held(&self) -> bool {
        crate::lake::lease::now_ms() < self.held_until_ms.load(Ordering::SeqCst)
    }

    /// Event ids remembered to answer re-sent events `duplicate`, and
    /// their bound.
    pub fn recent_ids(&self) -> (usize, usize) {
        (self.recent.lock().expect("recent ids").order.len(), RECENT_IDS)
    }

    /// The highest log sequence a lake version contains.
    pub fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// What the writer keeps between micro-batches.
    pub fn cache(&self) -> &WriterCache {
        &self.cache
    }

    /// How many times a micro-batch was resolved again on a newer version
    /// because another writer (a batch ingest, `cip score`) published first.
    pub fn rebases(&self) -> u64 {
        self.rebases.load(Ordering::Relaxed)
    }

    /// The highest log sequence durable with every one below it: a lake
    /// version containing it contains every event acknowledged so far.
    pub fn logged(&self) -> u64 {
        self.wal.durable_through()
    }

    /// Logged segments not yet in a lake version.
    pub fn backlog(&self) -> u64 {
        self.wal.durable_through().saturating_sub(self.committed())
    }

    /// Bytes of log not yet in a lake version.
    pub fn backlog_bytes(&self) -> u64 {
        self.wal.pending_bytes()
    }

    /// Check the events of `body` for `tenant`, log the accepted ones
    /// durably, and say what became of each. Returns once they are durable.
    pub async fn accept(self: &Arc<Self>, tenant: &str, body: &str) -> Result<Accepted, StreamError> {
        // Checking a large batch is CPU work: off the async threads.
        let (this, t, b) = (self.clone(), tenant.to_string(), body.to_string());
        let (results, lines) = tokio::task::spawn_blocking(move || this.check_all(&t, &b))
            .await
            .map_err(|e| StreamError::LogWrite(format!("checking events: {e}")))?;
        let count = |s: &str| results.iter().filter(|r| r.status == s).count();
        let sequence = if lines.is_empty() {
            None
        } else {
            let mut body = lines.join("\n");
            body.push('\n');
            let seq = self.log(body).await?;
            let mut recent = self.recent.lock().expect("recent ids");
            for r in results.iter().filter(|r| r.status == "accepted") {
                recent.insert(tenant, r.event_id.as_deref().expect("accepted events have ids"));
            }
            self.wake.notify_one();
            Some(seq)
        };
        Ok(Accepted {
            accepted: count("accepted"),
            duplicates: count("duplicate"),
            rejected: count("rejected"),
            sequence,
            results,
        })
    }

    /// Each event's outcome, and the log lines of the accepted ones.
    fn check_all(&self, tenant: &str, body: &str) -> (Vec<EventOutcome>, Vec<String>) {
        let mut results = Vec::new();
        let mut lines = Vec::new();
        let mut in_request = std::collections::HashSet::new();
        for (index, text) in split_body(body).into_iter().enumerate() {
            match self.checker.check(text, tenant) {
                Ok(e) => {
                    let id = RecentIds::id(tenant, &e.event_id);
                    let repeat = !in_request.insert(id) || self.recent.lock().expect("recent ids").seen.contains(&id);
                    let status = if repeat { "duplicate" } else { "accepted" };
                    results.push(EventOutcome {
                        index,
                        event_id: Some(e.event_id.clone()),
                        status,
                        code: None,
                        reason: None,
                    });
                    if !repeat {
                        lines.push(serde_json::to_string(&e).expect("events serialise"));
                    }
                }
                Err(r) => results.push(EventOutcome {
                    index,
                    event_id: r.event_id,
                    status: "rejected",
                    code: Some(r.reject.code.as_str()),
                    reason: Some(r.reject.message),
                }),
            }
        }
        (results, lines)
    }

    /// Make `body` durable in the log, in one segment with whatever other
    /// requests are waiting: the first to get the flush lock writes the
    /// whole group, later holders find their events already written. One
    /// put (and fsync) then serves many small requests.
    async fn log(self: &Arc<Self>, body: String) -> Result<u64, StreamError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut g = self.group.lock().expect("log group");
            g.body.push_str(&body);
            g.waiting.push(tx);
        }
        // The write runs in a task of its own: a request that goes away (its
        // client disconnected) must not cancel a write others wait for.
        let this = self.clone();
        tokio::spawn(async move {
            let _flushing = this.flushing.lock().await;
            let group = std::mem::take(&mut *this.group.lock().expect("log group"));
            if !group.waiting.is_empty() {
                let result = if this.held() {
                    this.wal.append(Bytes::from(group.body)).await.map_err(|e| Some(e.to_string()))
                } else {
                    Err(None)
                };
                for w in group.waiting {
                    let _ = w.send(result.clone());
                }
            }
        });
        match rx.await.map_err(|_| StreamError::LogWrite("the log writer went away".into()))? {
            Ok(seq) => Ok(seq),
            Err(Some(e)) => Err(StreamError::LogWrite(e)),
            Err(None) => Err(StreamError::NotHolder),
        }
    }

    /// Wait until a lake version contains log sequence `seq`.
    pub async fn wait_committed(&self, seq: u64) {
        let mut rx = self.committed.subscribe();
        let _ = rx.wait_for(|c| *c >= seq).await;
    }

    /// Whether a lake version contains log sequence `seq` within
    /// [`COMMIT_WAIT`]: for a door that answers once its events are
    /// committed, and otherwise says they are durable but not yet visible.
    pub async fn committed_within(&self, seq: u64) -> bool {
        tokio::time::timeout(COMMIT_WAIT, self.wait_committed(seq)).await.is_ok()
    }

    /// Commit micro-batches until the task is dropped or the lease ends: at once when events
    /// arrive and the previous commit is done, so under load a batch holds
    /// everything that arrived during the last commit. `on_commit` is told
    /// each version published.
    /// With `maintain` = (interval, min files), it also compacts the lake's
    /// many small partitions between commits at that interval. A batch
    /// starts at least `pace` after the one before it started (so under
    /// load fewer, larger versions are published; idle, the first event
    /// after a quiet spell still commits at once).
    pub async fn run(
        self: Arc<Self>,
        on_commit: impl Fn(u64) + Send + Sync,
        maintain: Option<(Duration, usize)>,
        pace: Duration,
    ) {
        let mut compacted = std::time::Instant::now();
        // Versions published since the last compaction: each adds at most
        // one small file to a partition, so fewer cannot make one due.
        let mut since = 0usize;
        // The next micro-batch, being prepared while the current publishes:
        // reading, parsing and staging a batch takes about as long as
        // resolving and publishing one, so the two overlap on two cores.
        // It answers when it started preparing (after its pace).
        let mut ahead: Option<tokio::task::JoinHandle<(Instant, Prepares)>> = None;
        // When the last batch started being prepared.
        let mut began = Instant::now() - pace;
        // A compaction runs beside the micro-batches, not between them: it
        // takes a second or more, which would hold every event arriving
        // meanwhile past its second. It is one more writer on the one
        // commit path (whichever commits second re-bases), one at a time.
        let mut compaction: Option<tokio::task::JoinHandle<_>> = None;
        loop {
            if !self.held() {
                // Another server takes the events now; it replays the log.
                tracing::warn!("the stream lease ended: this server's writer stops");
                return;
            }
            if compaction.as_ref().is_some_and(|c| c.is_finished()) {
                match compaction.take().expect("checked").await {
                    Ok(Ok(Some(version))) => on_commit(version),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "scheduled compaction failed; will try again"),
                    Err(e) => tracing::warn!(error = %e, "scheduled compaction stopped; will try again"),
                }
            }
            if let Some((every, min_files)) = maintain
                && compaction.is_none()
                && since >= min_files
                && compacted.elapsed() >= every
            {
                (compacted, since) = (std::time::Instant::now(), 0);
                let this = self.clone();
                compaction = Some(tokio::spawn(async move { this.maintain(min_files).await }));
            }
            if ahead.is_none() && self.backlog() == 0 {
                // Woken by an accept; the timeout also retries after errors.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
            }
            let prepared = match ahead.take() {
                Some(next) => match next.await {
                    Ok((started, prepared)) => {
                        began = started;
                        prepared
                    }
                    Err(e) => Err(StreamError::LogWrite(format!("preparing: {e}"))),
                },
                None => {
                    let after = self.committed();
                    self.paced(after, began + pace).await;
                    began = Instant::now();
                    self.prepare(after).await
                }
            };
            let result = match prepared {
                Ok(Some(batch)) => {
                    if self.wal.durable_through() > batch.through {
                        let (this, after, at) = (self.clone(), batch.through, began + pace);
                        ahead = Some(tokio::spawn(async move {
                            this.paced(after, at).await;
                            (Instant::now(), this.prepare(after).await)
                        }));
                    }
                    self.publish(batch).await
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match result {
                Ok(Some(version)) => {
                    since += 1;
                    on_commit(version)
                }
                Ok(None) => {}
                Err(e) => {
                    // What was prepared ahead assumed this batch published.
                    if let Some(next) = ahead.take() {
                        next.abort();
                    }
                    tracing::warn!(error = %e, "streaming commit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Wait until `at`, or until [`PACE_BYTES`] of events after log
    /// sequence `after` are durable, whichever comes first.
    async fn paced(&self, after: u64, at: Instant) {
        loop {
            let now = Instant::now();
            if now >= at || self.wal.pending_bytes_after(after) >= PACE_BYTES {
                return;
            }
            tokio::time::sleep((at - now).min(Duration::from_millis(10))).await;
        }
    }

    /// Compact the small files of every partition with at least
    /// `min_files` of them (the streaming writer adds one per micro-batch
    /// that touches a partition; see [`Compaction::small_files`]), on the
    /// one commit path: another writer's commit in between only makes it
    /// re-base. The version published, if any.
    pub async fn maintain(&self, min_files: usize) -> Result<Option<u64>, crate::lake::maintenance::MaintenanceError> {
        let started = std::time::Instant::now();
        let run_id = crate::lake::new_run_id();
        let how = Compaction::small_files(min_files);
        let r = crate::lake::maintenance::optimize(&self.lake, None, None, &run_id, how).await?;
        if let Some(v) = r.version {
            // A compaction changes no row: kept rollup states hold for it.
            self.cache.advance_rollups(r.base, v);
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(version = ?r.version, partitions = r.compacted.len(), r.files_before, r.files_after, ms,
                "streaming writer compacted the lake");
        }
        Ok(r.version)
    }

    /// Commit every durable segment not yet committed as one lake version;
    /// the version published, if any row changed.
    pub async fn commit_once(&self) -> Result<Option<u64>, StreamError> {
        match self.prepare(self.committed()).await? {
            Some(batch) => self.publish(batch).await,
            None => Ok(None),
        }
    }

    /// The next micro-batch after log sequence `after`: its segments read
    /// (oldest first, up to [`BATCH_BYTES`]), each key's winning row staged
    /// in the lake, events that cannot be applied put in the rejected
    /// records. `None` when nothing durable follows `after`. It can run
    /// while the batch ending at `after` publishes: only a cancellation of
    /// a policy outside its own events waits for that version.
    async fn prepare(&self, after: u64) -> Result<Option<Prepared>, StreamError> {
        let through = self.wal.durable_through();
        if through <= after {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        let mut events: Vec<LoggedEvent> = Vec::new();
        // Oldest segments first, up to BATCH_BYTES: `through` becomes the
        // last one taken (the rest wait for the next batch).
        let seqs = self.wal.segments(after, through).await?;
        let mut reads =
            futures::stream::iter(seqs).map(|seq| async move { (seq, self.wal.read(seq).await) }).buffered(8);
        let (mut through, mut taken) = (after, 0usize);
        while let Some((seq, bytes)) = reads.next().await {
            let bytes = bytes?;
            (through, taken) = (seq, taken + bytes.len());
            let text = std::str::from_utf8(&bytes).map_err(|e| StreamError::Segment(format!("{seq}: {e}")))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // Lines are written by this code only; one that does not
                // read back must not stop every later commit.
                match serde_json::from_str(line) {
                    Ok(e) => events.push(e),
                    Err(e) => tracing::error!(seq, error = %e, "an unreadable line in the event log is skipped"),
                }
            }
            if taken >= BATCH_BYTES {
                break;
            }
        }
        drop(reads);
        let read_ms = ms(started);
        let t = std::time::Instant::now();
        let MicroBatch { landing, stamps, unapplied } = self.micro_batch(events, after).await?;
        let batch_ms = ms(t);
        if !unapplied.is_empty() {
            self.write_rejects(&unapplied).await?;
        }
        let opts = IngestOptions {
            txn: Some((STREAM_APP.to_string(), through)),
            cache: Some(self.cache.clone()),
            stamps: Some(Arc::new(stamps)),
            ..IngestOptions::default()
        };
        let t = std::time::Instant::now();
        let staged = match batch::stage(&landing, &self.lake, &opts).await {
            Ok(run) => Some(run),
            // Every event of the range was stale or repeated: nothing to land.
            Err(IngestError::NoFiles(_)) => None,
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(after, through, read_ms, batch_ms, stage_ms = ms(t), "streaming micro-batch staged");
        Ok(Some(Prepared { through, staged, opts }))
    }

    /// Publish a prepared micro-batch on top of the latest version and
    /// move the log's committed position to its end.
    async fn publish(&self, batch: Prepared) -> Result<Option<u64>, StreamError> {
        let Prepared { through, staged, opts } = batch;
        if !self.held() {
            return Err(StreamError::NotHolder);
        }
        let started = std::time::Instant::now();
        let report = match staged {
            Some(run) => {
                let r = batch::publish(&self.lake, run, &opts).await?;
                self.rebases.fetch_add(u64::from(r.attempts.saturating_sub(1)), Ordering::Relaxed);
                Some(r)
            }
            None => None,
        };
        let publish_ms = started.elapsed().as_millis() as u64;
        self.committed.send_replace(through);
        self.wal.committed_through(through);
        let published = report.filter(|r| r.published).and_then(|r| r.snapshot);
        // Deleted only once a version records them; a batch that changed
        // nothing leaves its segments to the next published one (a replay
        // of them changes nothing either).
        if published.is_some()
            && let Err(e) = self.wal.truncate(through).await
        {
            tracing::warn!(error = %e, through, "could not delete committed log segments; they are skipped on replay");
        }
        tracing::debug!(
            through,
            ?published,
            publish_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "streaming micro-batch committed"
        );
        Ok(published)
    }

    /// The winning row of every key the events touch, as an in-memory
    /// landing (one JSON Lines file per entity), and the winners' stamps.
    async fn micro_batch(&self, mut events: Vec<LoggedEvent>, after: u64) -> Result<MicroBatch, StreamError> {
        events.sort_by(|a, b| (a.at_ms, &a.event_id).cmp(&(b.at_ms, &b.event_id)));
        // (entity, tenant, key) → (stamp, row)
        let mut rows: BTreeMap<(Entity, String, u128), (Stamp, String)> = BTreeMap::new();
        // The latest version, read at the first cancellation of a policy
        // that is not in the batch itself.
        let mut manifest: Option<Manifest> = None;
        let mut unapplied: Vec<(LoggedEvent, Reject)> = Vec::new();
        for e in events {
            let kind = e.kind();
            let stamp = (e.at_ms, e.event_id.clone());
            let logged_key = e.key.as_deref().and_then(|k| u128::from_str_radix(k, 16).ok());
            let (key, row) = match kind {
                EventKind::Upserted(_) if let Some(k) = logged_key => (k, e.data.get().to_string()),
                EventKind::Upserted(entity) => match self.checker.check_row(entity, e.data.get()) {
                    Ok(k) => (k, e.data.get().to_string()),
                    Err(r) => {
                        unapplied.push((e, r));
                        continue;
                    }
                },
                EventKind::Cancelled => {
                    let c: Cancellation = serde_json::from_str(e.data.get())
                        .map_err(|err| StreamError::Segment(format!("cancellation {}: {err}", e.event_id)))?;
                    let policy_id = c.policy_id.trim();
                    let key = RowParser::hash_of_key(&[Value::Str(policy_id)]);
                    let base = match rows.get(&(Entity::Policies, e.tenant_id.clone(), key)) {
                        Some((_, row)) => Some(row.clone()),
                        None => {
                            if manifest.is_none() {
                                // The batch before this one may still be
                                // publishing: its policies must be seen.
                                self.wait_committed(after).await;
                                manifest = Some(snapshot::latest(&self.lake).await?.unwrap_or_else(Manifest::empty));
                            }
                            let m = manifest.as_ref().expect("just loaded");
                            self.stored_policy(m, &e.tenant_id, key, policy_id).await?
                        }
                    };
                    let Some(base) = base else {
                        let why = Reject::new(
                            crate::contract::RejectCode::UnknownKey,
                            format!("policy {policy_id} is not known: nothing to cancel"),
                        );
                        unapplied.push((e, why));
                        continue;
                    };
                    (key, cancelled(&base, &c.cancellation_date))
                }
            };
            // Sorted by stamp: a later event of the key replaces the row.
            rows.insert((kind.entity(), e.tenant_id.clone(), key), (stamp, row));
        }
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let landing = Location {
            store,
            prefix: Path::from("landing"),
            store_url: url::Url::parse("memory://stream-batch").expect("static url"),
        };
        let mut files: BTreeMap<Entity, String> = BTreeMap::new();
        let mut stamps: HashMap<(Entity, String), KeyMap<Stamp>> = HashMap::new();
        for ((entity, tenant, key), (stamp, row)) in rows {
            let f = files.entry(entity).or_default();
            f.push_str(&row);
            f.push('\n');
            stamps.entry((entity, tenant)).or_default().insert(key, stamp);
        }
        let stamps = stamps.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        for (entity, text) in files {
            let path = landing.child(&format!("{}/stream.jsonl", entity.name()));
            landing.store.put(&path, Bytes::from(text).into()).await?;
        }
        Ok(MicroBatch { landing, stamps, unapplied })
    }

    /// Events that were logged but cannot be applied (a cancellation of a
    /// policy nobody sent) go to the rejected-records store like a landing
    /// file's bad rows: never dropped silently.
    async fn write_rejects(&self, unapplied: &[(LoggedEvent, Reject)]) -> Result<(), StreamError> {
        use arrow::array::{ArrayRef, StringArray, UInt64Array};
        let run_id = crate::lake::new_run_id();
        for (e, r) in unapplied {
            tracing::warn!(event_id = %e.event_id, tenant = %e.tenant_id, code = r.code.as_str(), reason = %r.message,
                "a logged event could not be applied; it is in the rejected records");
        }
        let strings = |f: &dyn Fn(&(LoggedEvent, Reject)) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(unapplied.iter().map(f)))
        };
        let batch = arrow::record_batch::RecordBatch::try_new(
            crate::lake::rejects_schema(),
            vec![
                strings(&|_| run_id.clone()),
                strings(&|(e, _)| e.tenant_id.clone()),
                strings(&|(e, _)| e.kind().entity().name().to_string()),
                strings(&|_| "POST /ingest/events".to_string()),
                Arc::new(UInt64Array::from_iter_values((1..=unapplied.len() as u64).collect::<Vec<_>>())),
                strings(&|(_, r)| r.code.as_str().to_string()),
                strings(&|(_, r)| r.message.clone()),
                strings(&|(e, _)| serde_json::to_string(e).expect("events serialise")),
            ],
        )
        .map_err(|e| StreamError::Segment(format!("rejects batch: {e}")))?;
        let bytes = parquet_io::encode(crate::lake::rejects_schema(), &[batch])
            .map_err(|e| StreamError::Segment(format!("encoding rejects: {e}")))?;
        let path = self.lake.child(&crate::lake::rejects_file_path(&run_id, "events"));
        self.lake.store.put(&path, bytes.into()).await?;
        Ok(())
    }

    /// A stored policy as a JSON row: only files whose stored keys (kept
    /// by the writer's cache) hold its key are read.
    async fn stored_policy(
        &self,
        manifest: &Manifest,
        tenant: &str,
        key: u128,
        policy_id: &str,
    ) -> Result<Option<String>, StreamError> {
        let files: Vec<DataFile> = manifest.tenant_files(Entity::Policies.name(), tenant).cloned().collect();
        let keys = batch::read_stored_keys(&self.lake, Entity::Policies, &files, Some(&self.cache)).await?;
        for (f, stored) in files.iter().zip(keys) {
            if !stored.keys.contains(&key) {
                continue;
            }
            let batches = parquet_io::read(&self.lake.store, &self.lake.child(&f.path), None)
                .await
                .map_err(|e| StreamError::Segment(format!("reading {}: {e}", f.path)))?;
            for b in &batches {
                let ids = b.column_by_name("policy_id").expect("policy_id column");
                let ids = ids.as_any().downcast_ref::<StringArray>().expect("policy_id as utf8");
                if let Some(r) = (0..b.num_rows()).find(|r| ids.value(*r) == policy_id) {
                    return Ok(Some(row_json(Entity::Policies, b, r)));
                }
            }
        }
        Ok(None)
    }
}

/// What preparing a micro-batch gives: nothing to commit, or the batch.
type Prepares = Result<Option<Prepared>, StreamError>;

/// A micro-batch staged and ready to publish.
struct Prepared {
    /// The highest log sequence it contains.
    through: u64,
    /// Its rows staged (`None`: nothing to land).
    staged: Option<batch::StagedRun>,
    opts: IngestOptions,
}

/// What one micro-batch makes of its events.
struct MicroBatch {
    /// The winning rows, as an in-memory landing.
    landing: Location,
    /// The winning rows' stamps, landed with them.
    stamps: PartitionStamps,
    /// Events that cannot be applied, with why.
    unapplied: Vec<(LoggedEvent, Reject)>,
}

#[derive(serde::Deserialize)]
struct Cancellation {
    policy_id: String,
    cancellation_date: String,
}

/// `row` (a policy as JSON) cancelled on `date`.
fn cancelled(row: &str, date: &str) -> String {
    let mut m: BTreeMap<String, Box<RawValue>> = serde_json::from_str(row).expect("logged rows are objects");
    let text = |s: &str| RawValue::from_string(serde_json::to_string(s).expect("string")).expect("json");
    m.insert("status".into(), text("cancelled"));
    m.insert("cancellation_date".into(), text(date.trim()));
    serde_json::to_string(&m).expect("raw values serialise")
}

/// One stored row as a contract JSON object (the landing's own format).
fn row_json(entity: Entity, batch: &arrow::record_batch::RecordBatch, row: usize) -> String {
    let mut m = serde_json::Map::new();
    for col in entity.columns() {
        let Some(array) = batch.column_by_name(col.name) else { continue };
        let text = match value_at(array.as_ref(), row) {
            Value::Null => continue,
            Value::Str(s) => s.to_string(),
            Value::Date(d) => days_to_date(d).format("%Y-%m-%d").to_string(),
            Value::Decimal(m) => {
                let scale = if col.kind == Kind::Rate { RATE_SCALE } else { MONEY_SCALE };
                rust_decimal::Decimal::from_i128_with_scale(m, scale as u32).to_string()
            }
        };
        m.insert(col.name.to_string(), serde_json::Value::String(text));
    }
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, kind: &str, data: serde_json::Value) -> String {
        serde_json::json!({ "event_id": id, "type": kind, "occurred_at": "2026-03-01T10:00:00Z", "data": data })
            .to_string()
    }

    /// The pace holds a batch until its time only while little waits: once
    /// a batch's worth of events after the last one is logged it starts at
    /// once, and events logged at or before `after` do not count.
    #[tokio::test]
    async fn the_pace_gives_way_to_a_full_batch_of_waiting_events() {
        let dir = tempfile::tempdir().unwrap();
        let lake = crate::lake::store::open(dir.path().to_str().unwrap()).unwrap();
        let stream = Stream::open(lake).await.unwrap();
        let hour = Duration::from_secs(3600);
        // Nothing waits: the full pace.
        let t = Instant::now();
        stream.paced(0, t + Duration::from_millis(250)).await;
        assert!(t.elapsed() >= Duration::from_millis(250));
        // 1 MiB logged as segment 1: a batch after 0 starts at once (not
        // an hour later) ...
        stream.wal.append(Bytes::from(vec![b'x'; PACE_BYTES as usize])).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(10), stream.paced(0, Instant::now() + hour)).await;
        assert!(waited.is_ok(), "a full batch waited for the pace");
        // ... while a batch after 1 (that segment being committed) waits.
        let t = Instant::now();
        stream.paced(1, t + Duration::from_millis(100)).await;
        assert!(t.elapsed() >= Duration::from_millis(100));
    }

    /// The writer prepares the next micro-batch while the previous one
    /// publishes; a cancellation in it of a policy landed by the previous
    /// batch waits for that version instead of calling the policy unknown.
    #[tokio::test]
    async fn a_batch_prepared_ahead_sees_the_policies_of_the_batch_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = crate::lake::store::open(dir.path().to_str().unwrap()).unwrap();
        let stream = Stream::open(lake.clone()).await.unwrap();
        let policy = serde_json::json!({ "policy_id": "P1", "policy_number": "N-1", "agency_id": "G1",
            "agent_id": "A1", "carrier_id": "K1", "customer_id": "C1", "line_of_business": "auto",
            "effective_date": "2026-01-01", "expiration_date": "2027-01-01", "premium": "1200.00", "status": "active" });
        stream.accept("t1", &event("e1", "policy.upserted", policy)).await.unwrap();
        let first = stream.prepare(0).await.unwrap().expect("the upsert's batch");
        assert_eq!(first.through, 1);
        let cancel = serde_json::json!({ "policy_id": "P1", "cancellation_date": "2026-02-01" });
        stream.accept("t1", &event("e2", "policy.cancelled", cancel)).await.unwrap();
        let ahead = {
            let s = stream.clone();
            tokio::spawn(async move { s.prepare(1).await })
        };
        // It cannot finish before the first batch is in a version.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!ahead.is_finished(), "the cancellation waits for the upsert's version");
        assert!(stream.publish(first).await.unwrap().is_some());
        let second = ahead.await.unwrap().unwrap().expect("the cancellation's batch");
        assert_eq!(second.through, 2);
        assert!(stream.publish(second).await.unwrap().is_some());
        let m = snapshot::latest(&lake).await.unwrap().unwrap();
        let files: Vec<DataFile> = m.tenant_files("policies", "t1").cloned().collect();
        let mut statuses = Vec::new();
        for f in &files {
            for b in parquet_io::read(&lake.store, &lake.child(&f.path), None).await.unwrap() {
                let status = b.column_by_name("status").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
                let date = b.column_by_name("cancellation_date").unwrap();
                statuses.extend((0..b.num_rows()).map(|r| (status.value(r).to_string(), date.is_valid(r))));
            }
        }
        assert_eq!(statuses, vec![("cancelled".to_string(), true)]);
    }
}
