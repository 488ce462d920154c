//! Group commit for SQLite: one writer thread, one connection, many callers.
//!
//! ```text
//!   session A ─┐                      BEGIN IMMEDIATE
//!   session B ─┼─ job ─▶ channel ─▶     SAVEPOINT; job A; RELEASE
//!   session C ─┘                        SAVEPOINT; job B; RELEASE   (B failed: ROLLBACK TO)
//!                                       SAVEPOINT; job C; RELEASE
//!                                     COMMIT   ── one fsync ──▶ A, B, C answered
//! ```
//!
//! SQLite has one writer at a time and, with `synchronous=FULL`, every
//! commit waits for an fsync of the WAL (milliseconds). Writers that each
//! commit on their own are serialized on that fsync, and the ones that
//! collide sleep in SQLite's busy handler. Here the jobs that arrive while a
//! transaction is being written are run together in the next one: each job
//! in a savepoint of its own (a failing job is rolled back alone and gets
//! its error), then one `COMMIT` covers them all. A caller is answered only
//! after that commit, so it still awaits its own durability: nothing it
//! reports as written can be lost, and a failed commit fails every job of
//! the group.
//!
//! The savepoints are paid for only when needed: a group first runs its
//! jobs straight in the transaction (a savepoint copies every page it first
//! changes to a sub-journal); only when a job fails is the transaction
//! rolled back and the group run again, each job in its savepoint as drawn.
//!
//! The writer is a plain thread with a rusqlite connection ([`super::lite`]):
//! a job's statements run back to back on it, and the fsync blocks only it.
//! A caller's cost is one hand-off there and one back.

use std::any::Any;
use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{oneshot, Mutex};
use tracing::warn;

use super::lite::LiteOptions;
use crate::store::error::{Result, StoreError};

/// Most jobs in one transaction: bounds how long the write lock is held
/// (and so how long other writers wait) when the queue is deep.
const MAX_GROUP: usize = 256;

type Value = Box<dyn Any + Send>;

/// A unit of work run inside the group transaction. It may run twice: a
/// group whose jobs all succeed is committed as is; when one fails, the
/// whole transaction is rolled back and the jobs run again, each in a
/// savepoint of its own.
type Run = Box<dyn FnMut(&Connection) -> Result<Value> + Send>;

enum Msg {
    Job {
        run: Run,
        reply: oneshot::Sender<Result<Value>>,
    },
    Stop,
}

/// The handle callers submit jobs through.
#[derive(Debug)]
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Msg>,
}

impl GroupWriter {
    /// Opens the writer's connection and starts its thread; each group
    /// transaction takes its turn at `gate` (see [`super::GatePool`]).
    pub(crate) fn spawn(options: &LiteOptions, gate: Arc<Mutex<()>>) -> Result<GroupWriter> {
        let conn = options.open()?;
        // The writer's page cache (SQLite's default is 2 MiB; see
        // `DEFAULT_SQLITE_WRITER_CACHE_MIB`). Negative: a size in KiB.
        let kib = i64::from(options.writer_cache_mib) * 1024;
        conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("scomo-sqlite-writer".into())
            .spawn(move || run(&conn, &rx, &gate))
            .map_err(|e| StoreError::GroupCommit {
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(GroupWriter { jobs: tx })
    }

    /// Runs `f` in the next group transaction and returns its value once
    /// that transaction is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let mut f = f;
        let run: Run = Box::new(move |conn| f(conn).map(|v| Box::new(v) as Value));
        self.jobs
            .send(Msg::Job { run, reply })
            .map_err(|_| stopped())?;
        let value = answer.await.map_err(|_| stopped())??;
        value
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::GroupCommit {
                reason: "the writer returned a value of another type".into(),
            })
    }

    /// Stops the writer thread once the jobs already submitted are done.
    pub(crate) fn stop(&self) {
        let _ = self.jobs.send(Msg::Stop);
    }
}

fn stopped() -> StoreError {
    StoreError::GroupCommit {
        reason: "the store is closed".into(),
    }
}

type Job = (Run, oneshot::Sender<Result<Value>>);

fn run(conn: &Connection, rx: &mpsc::Receiver<Msg>, gate: &Mutex<()>) {
    let mut stopping = false;
    while !stopping {
        let first = match rx.recv() {
            Ok(Msg::Job { run, reply }) => (run, reply),
            Ok(Msg::Stop) | Err(_) => break,
        };
        // Jobs that arrive while waiting for the turn join this group.
        let turn = gate.blocking_lock();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Job { run, reply }) => group.push((run, reply)),
                Ok(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        run_group(conn, group);
        drop(turn);
    }
    // Jobs submitted before the stop still get their answer.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Job { run, reply } = msg {
            let _turn = gate.blocking_lock();
            run_group(conn, vec![(run, reply)]);
        }
    }
}

fn run_group(conn: &Connection, mut group: Vec<Job>) {
    metrics::histogram!(crate::metrics::STORE_GROUP_SIZE).record(group.len() as f64);
    // The common case first: every job succeeds, and no savepoint is paid
    // for (a savepoint copies each page it first changes to a sub-journal).
    let fast = match run_cached(conn, "BEGIN IMMEDIATE") {
        Ok(()) => {
            let mut results = Vec::with_capacity(group.len());
            for (run, _) in &mut group {
                match run(conn) {
                    Ok(v) => results.push(Ok(v)),
                    Err(e) => {
                        results.push(Err(e));
                        break;
                    }
                }
            }
            if results.iter().all(Result::is_ok) && results.len() == group.len() {
                Some(results)
            } else {
                rollback(conn);
                None
            }
        }
        Err(e) => {
            let reason = format!("cannot begin the group transaction: {e}");
            for (_, reply) in group {
                let _ = reply.send(Err(StoreError::GroupCommit {
                    reason: reason.clone(),
                }));
            }
            return;
        }
    };
    match fast {
        Some(results) => {
            let done = group.into_iter().map(|(_, reply)| reply).zip(results);
            finish(conn, done.collect(), None);
        }
        None => run_isolated(conn, group),
    }
}

/// Runs the group again after one of its jobs failed: each job in a
/// savepoint, so the failing one is rolled back alone.
fn run_isolated(conn: &Connection, group: Vec<Job>) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let reason = format!("cannot begin the group transaction: {e}");
        for (_, reply) in group {
            let _ = reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
        }
        return;
    }
    let mut done: Vec<(oneshot::Sender<Result<Value>>, Result<Value>)> =
        Vec::with_capacity(group.len());
    let mut broken: Option<String> = None;
    for (mut run, reply) in group {
        if let Some(reason) = &broken {
            let _ = reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
            continue;
        }
        if let Err(e) = run_cached(conn, "SAVEPOINT job") {
            let reason = format!("cannot open a savepoint: {e}");
            let _ = reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
            broken = Some(reason);
            continue;
        }
        let result = run(conn);
        let close = if result.is_ok() {
            run_cached(conn, "RELEASE job")
        } else {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        };
        if let Err(e) = close {
            broken = Some(format!("cannot close a savepoint: {e}"));
        }
        done.push((reply, result));
    }
    finish(conn, done, broken);
}

/// Commits (unless `broken`) and answers every job: with its own result
/// once committed, with the failure otherwise.
fn finish(
    conn: &Connection,
    done: Vec<(oneshot::Sender<Result<Value>>, Result<Value>)>,
    broken: Option<String>,
) {
    let committed = match &broken {
        None => run_cached(conn, "COMMIT").map_err(|e| e.to_string()),
        Some(reason) => Err(reason.clone()),
    };
    match committed {
        Ok(()) => {
            for (reply, result) in done {
                let _ = reply.send(result);
            }
        }
        Err(reason) => {
            warn!(%reason, jobs = done.len(), "group transaction failed");
            rollback(conn);
            for (reply, _) in done {
                let _ = reply.send(Err(StoreError::GroupCommit {
                    reason: reason.clone(),
                }));
            }
        }
    }
}

fn rollback(conn: &Connection) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        warn!(error = %e, "cannot roll the group transaction back");
    }
}

/// Runs a transaction-control statement, prepared once.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::config::SqliteSync;
    use std::time::Duration;

    type TestJob = Box<dyn FnMut(&Connection) -> Result<i64> + Send>;

    fn writer(dir: &tempfile::TempDir) -> (Arc<GroupWriter>, Arc<Mutex<()>>, LiteOptions) {
        let path = dir.path().join("w.db");
        let c = Connection::open(&path).expect("create");
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .expect("schema");
        let options = LiteOptions {
            path,
            synchronous: SqliteSync::Full,
            busy_timeout: Duration::from_secs(5),
            writer_cache_mib: 2,
        };
        let gate = Arc::new(Mutex::new(()));
        let w = GroupWriter::spawn(&options, gate.clone()).expect("writer");
        (Arc::new(w), gate, options)
    }

    fn insert(n: i64) -> impl FnMut(&Connection) -> Result<i64> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
            Ok(n)
        }
    }

    fn rows(options: &LiteOptions) -> Vec<i64> {
        let c = options.open().expect("open");
        let mut st = c.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        let rows = st.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<rusqlite::Result<_>>().expect("rows")
    }

    /// Submits `jobs` while the gate is held, so that they run as one group.
    async fn one_group(w: &GroupWriter, gate: &Mutex<()>, jobs: Vec<TestJob>) -> Vec<Result<i64>> {
        let held = gate.lock().await;
        let writes = futures_util::future::join_all(jobs.into_iter().map(|j| w.write(j)));
        let release = async {
            // Every write has been polled (and so sent) once before this
            // second poll lets the writer take its turn.
            tokio::task::yield_now().await;
            drop(held);
        };
        tokio::join!(writes, release).0
    }

    #[tokio::test]
    async fn a_failing_job_is_rolled_back_alone_and_the_rest_of_its_group_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let (w, gate, options) = writer(&dir);
        let got = one_group(
            &w,
            &gate,
            vec![
                Box::new(insert(1)),
                // Writes, then fails: its row must not survive.
                Box::new(|c: &Connection| {
                    c.execute("INSERT INTO t (n) VALUES (2)", [])?;
                    Err(StoreError::Invalid {
                        field: "test",
                        reason: "refused".into(),
                    })
                }),
                Box::new(insert(3)),
                // A constraint failure inside SQLite.
                Box::new(insert(1)),
            ],
        )
        .await;
        assert!(matches!(got[0], Ok(1)), "{:?}", got[0]);
        assert!(
            matches!(got[1], Err(StoreError::Invalid { field: "test", .. })),
            "{:?}",
            got[1]
        );
        assert!(matches!(got[2], Ok(3)), "{:?}", got[2]);
        assert!(matches!(got[3], Err(StoreError::Sqlite(_))), "{:?}", got[3]);
        assert_eq!(rows(&options), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_group_that_succeeds_commits_every_job() {
        let dir = tempfile::tempdir().expect("dir");
        let (w, gate, options) = writer(&dir);
        let jobs: Vec<TestJob> = (1..=5).map(|n| Box::new(insert(n)) as _).collect();
        let got = one_group(&w, &gate, jobs).await;
        assert_eq!(
            got.into_iter().map(|r| r.expect("ok")).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(rows(&options), vec![1, 2, 3, 4, 5]);
    }
}
