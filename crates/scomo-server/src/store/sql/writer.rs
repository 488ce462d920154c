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

/// A unit of work run inside the group transaction.
type Run = Box<dyn FnOnce(&Connection) -> Result<Value> + Send>;

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
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
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

fn run_group(conn: &Connection, group: Vec<Job>) {
    metrics::histogram!(crate::metrics::STORE_GROUP_SIZE).record(group.len() as f64);
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
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
    for (run, reply) in group {
        if let Some(reason) = &broken {
            let _ = reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let reason = format!("cannot open a savepoint: {e}");
            let _ = reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
            broken = Some(reason);
            continue;
        }
        let result = run(conn);
        let close = if result.is_ok() {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = close {
            broken = Some(format!("cannot close a savepoint: {e}"));
        }
        done.push((reply, result));
    }
    let committed = match &broken {
        None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
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
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                warn!(error = %e, "cannot roll the group transaction back");
            }
            for (reply, _) in done {
                let _ = reply.send(Err(StoreError::GroupCommit {
                    reason: reason.clone(),
                }));
            }
        }
    }
}
