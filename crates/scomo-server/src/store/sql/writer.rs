//! Group commit for SQLite: one writer task, one connection, many callers.
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

use std::any::Any;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection as _;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tracing::warn;

use crate::store::error::{Result, StoreError};

/// Most jobs in one transaction: bounds how long the write lock is held
/// (and so how long other writers wait) when the queue is deep.
const MAX_GROUP: usize = 256;

type Value = Box<dyn Any + Send>;

/// A unit of work run inside the group transaction.
type Run = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Value>> + Send>;

struct Job {
    run: Run,
    reply: oneshot::Sender<Result<Value>>,
}

/// The handle callers submit jobs through.
#[derive(Debug)]
pub(crate) struct GroupWriter {
    jobs: mpsc::UnboundedSender<Job>,
    stop: Arc<Notify>,
}

impl GroupWriter {
    /// Starts the writer task on `conn`; each group transaction takes its
    /// turn at `gate` (see [`super::GatePool`]).
    pub(crate) fn spawn(conn: SqliteConnection, gate: Arc<Mutex<()>>) -> GroupWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(Notify::new());
        tokio::spawn(run(conn, rx, stop.clone(), gate));
        GroupWriter { jobs: tx, stop }
    }

    /// Runs `f` in the next group transaction and returns its value once
    /// that transaction is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move { f(conn).await.map(|v| Box::new(v) as Value) })
        });
        self.jobs.send(Job { run, reply }).map_err(|_| stopped())?;
        let value = answer.await.map_err(|_| stopped())??;
        value
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::GroupCommit {
                reason: "the writer returned a value of another type".into(),
            })
    }

    /// Stops the writer task once the jobs already submitted are done.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }
}

fn stopped() -> StoreError {
    StoreError::GroupCommit {
        reason: "the store is closed".into(),
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    stop: Arc<Notify>,
    gate: Arc<Mutex<()>>,
) {
    loop {
        let first = tokio::select! {
            biased;
            job = rx.recv() => match job {
                Some(j) => j,
                None => break,
            },
            () = stop.notified() => break,
        };
        // Jobs that arrive while waiting for the turn join this group.
        let turn = gate.lock().await;
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        run_group(&mut conn, group).await;
        drop(turn);
    }
    // Jobs submitted before the stop still get their answer.
    rx.close();
    while let Some(j) = rx.recv().await {
        let _turn = gate.lock().await;
        run_group(&mut conn, vec![j]).await;
    }
    let _ = conn.close().await;
}

async fn run_group(conn: &mut SqliteConnection, group: Vec<Job>) {
    metrics::histogram!(crate::metrics::STORE_GROUP_SIZE).record(group.len() as f64);
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        let reason = format!("cannot begin the group transaction: {e}");
        for j in group {
            let _ = j.reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
        }
        return;
    }
    let mut done: Vec<(oneshot::Sender<Result<Value>>, Result<Value>)> =
        Vec::with_capacity(group.len());
    let mut broken: Option<String> = None;
    for j in group {
        if let Some(reason) = &broken {
            let _ = j.reply.send(Err(StoreError::GroupCommit {
                reason: reason.clone(),
            }));
            continue;
        }
        if let Err(e) = exec(conn, "SAVEPOINT job").await {
            broken = Some(format!("cannot open a savepoint: {e}"));
            let _ = j.reply.send(Err(StoreError::GroupCommit {
                reason: format!("cannot open a savepoint: {e}"),
            }));
            continue;
        }
        let result = (j.run)(conn).await;
        let close = if result.is_ok() {
            exec(conn, "RELEASE job").await
        } else {
            match exec(conn, "ROLLBACK TO job").await {
                Ok(()) => exec(conn, "RELEASE job").await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = close {
            broken = Some(format!("cannot close a savepoint: {e}"));
        }
        done.push((j.reply, result));
    }
    let committed = match &broken {
        None => exec(conn, "COMMIT").await.map_err(|e| e.to_string()),
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
            if let Err(e) = exec(conn, "ROLLBACK").await {
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

async fn exec(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(&mut *conn).await.map(|_| ())
}
