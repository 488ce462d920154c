//! The alert outbox: every OperationComplete report waits here, on disk,
//! until the server's Status 200 (or 202) for its Alert arrives.
//!
//! ```text
//!  executor ──push──▶ outbox.json ──pending()──▶ session package 1 (Alert 1226)
//!                        ▲                              │
//!                        └──────── ack(id) ◀── Status 200/202 for that Alert
//! ```
//!
//! The runtime learns that alerts wait through [`Outbox::subscribe`] (the
//! number pending) and opens a client-initiated session, retrying with
//! [`retry_delay`] while sessions fail.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use omadm_wire::model::Alert;
use scomo::OperationComplete;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store::{corrupt, to_json};
use crate::persist::{read_optional, write_atomic};

/// How many acknowledged operation ids are remembered, so that an
/// operation finishing again after a crash does not report twice.
const ACKED_MEMORY: usize = 256;

/// One queued report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Outbox id, for [`Outbox::ack`].
    pub id: u64,
    /// The operation that produced it.
    pub op_id: Option<u64>,
    /// The report.
    pub report: OperationComplete,
}

impl OutboxEntry {
    /// The Generic Alert to send (CmdID 0: the session numbers it).
    pub fn alert(&self) -> Alert {
        self.report.to_alert(None)
    }
}

/// An alert waiting for the server's Status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAlert {
    /// Outbox id, for [`Outbox::ack`].
    pub id: u64,
    /// The Generic Alert 1226 to send.
    pub alert: Alert,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    next_id: u64,
    entries: Vec<OutboxEntry>,
    /// Operations whose report was acknowledged (newest last).
    acked_ops: VecDeque<u64>,
}

/// The persisted outbox.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    state: Mutex<State>,
    pending: watch::Sender<usize>,
}

impl Outbox {
    pub(crate) fn open(path: PathBuf) -> io::Result<Outbox> {
        let state: State = match read_optional(&path)? {
            None => State {
                next_id: 1,
                ..State::default()
            },
            Some(b) => serde_json::from_slice(&b).map_err(|e| corrupt(&path, &e))?,
        };
        let n = state.entries.len();
        Ok(Outbox {
            path,
            state: Mutex::new(state),
            pending: watch::Sender::new(n),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The alerts to send, oldest first.
    pub fn pending(&self) -> Vec<PendingAlert> {
        self.lock()
            .entries
            .iter()
            .map(|e| PendingAlert {
                id: e.id,
                alert: e.alert(),
            })
            .collect()
    }

    /// The queued reports, oldest first.
    pub fn entries(&self) -> Vec<OutboxEntry> {
        self.lock().entries.clone()
    }

    /// How many alerts wait.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no alert waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The server acknowledged alert `id` (Status 200 or 202): it leaves the
    /// outbox. Returns whether it was there.
    pub fn ack(&self, id: u64) -> io::Result<bool> {
        let mut st = self.lock();
        let Some(pos) = st.entries.iter().position(|e| e.id == id) else {
            return Ok(false);
        };
        let mut next = st.clone();
        let e = next.entries.remove(pos);
        if let Some(op) = e.op_id {
            next.acked_ops.push_back(op);
            while next.acked_ops.len() > ACKED_MEMORY {
                next.acked_ops.pop_front();
            }
        }
        write_atomic(&self.path, &to_json(&next)?)?;
        *st = next;
        self.pending.send_replace(st.entries.len());
        Ok(true)
    }

    /// The number of pending alerts, updated on every change: the runtime
    /// waits on it to open a session.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.pending.subscribe()
    }

    /// Whether operation `op` already has its report queued or delivered.
    #[cfg(test)]
    pub(crate) fn knows_op(&self, op: u64) -> bool {
        let st = self.lock();
        st.entries.iter().any(|e| e.op_id == Some(op)) || st.acked_ops.contains(&op)
    }

    /// Queues a report (persisted before returning). An operation's report
    /// is queued once, however often it finishes.
    pub(crate) fn push(&self, op_id: Option<u64>, report: OperationComplete) -> io::Result<u64> {
        let mut st = self.lock();
        if let Some(op) = op_id {
            if let Some(e) = st.entries.iter().find(|e| e.op_id == Some(op)) {
                return Ok(e.id);
            }
            if st.acked_ops.contains(&op) {
                return Ok(0);
            }
        }
        let mut next = st.clone();
        let id = next.next_id.max(1);
        next.next_id = id + 1;
        next.entries.push(OutboxEntry { id, op_id, report });
        write_atomic(&self.path, &to_json(&next)?)?;
        *st = next;
        self.pending.send_replace(st.entries.len());
        Ok(id)
    }
}

/// The delay before retry number `attempt` (0-based) of a session that
/// should deliver pending alerts: `min` doubled per attempt, at most `max`.
pub fn retry_delay(attempt: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    min.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scomo::alert::ComponentResult;
    use scomo::ResultCode;

    fn report(code: u16) -> OperationComplete {
        OperationComplete {
            correlator: Some("c".into()),
            items: vec![ComponentResult {
                source_uri: Some("./SCOMO/Download/p/Operations/Download".into()),
                target_uri: None,
                result: ResultCode(code),
                identifier: Some("p".into()),
            }],
        }
    }

    #[test]
    fn push_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.json");
        let ob = Outbox::open(path.clone()).unwrap();
        let rx = ob.subscribe();
        let a = ob.push(Some(7), report(1200)).unwrap();
        assert_eq!(ob.push(Some(7), report(1200)).unwrap(), a);
        let b = ob.push(None, report(1402)).unwrap();
        assert_eq!(*rx.borrow(), 2);
        let pending = ob.pending();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].alert.correlator.as_deref(), Some("c"));
        drop(ob);
        let ob = Outbox::open(path.clone()).unwrap();
        assert_eq!(ob.len(), 2);
        assert!(ob.ack(a).unwrap());
        assert!(!ob.ack(a).unwrap());
        assert!(ob.knows_op(7));
        // A report of an acknowledged operation is not queued again.
        assert_eq!(ob.push(Some(7), report(1200)).unwrap(), 0);
        assert_eq!(ob.entries().iter().map(|e| e.id).collect::<Vec<_>>(), [b]);
        let ob = Outbox::open(path).unwrap();
        assert!(ob.knows_op(7));
        assert!(ob.push(None, report(1200)).unwrap() > b);
    }

    #[test]
    fn backoff() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(retry_delay(0, min, max), min);
        assert_eq!(retry_delay(2, min, max), Duration::from_secs(20));
        assert_eq!(retry_delay(10, min, max), max);
        assert_eq!(retry_delay(u32::MAX, min, max), max);
    }
}
