//! The DM sessions this node holds, by `RespURI` token.
//!
//! A session lives here between messages. Each has its own async lock, held
//! while one message is handled (store calls included), so two messages of
//! one session never run at once while different sessions run in parallel.
//! The table lock itself is a plain mutex held only to look up or insert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::session::LiveSession;

/// A held session.
pub(crate) type SessionRef = Arc<tokio::sync::Mutex<LiveSession>>;

/// Sessions in flight on this node.
pub(crate) struct SessionTable {
    map: Mutex<HashMap<String, SessionRef>>,
    capacity: usize,
}

impl SessionTable {
    pub(crate) fn new(capacity: usize) -> SessionTable {
        SessionTable {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SessionRef>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session with this token.
    pub(crate) fn get(&self, token: &str) -> Option<SessionRef> {
        self.lock().get(token).cloned()
    }

    /// Whether another session fits.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().len() < self.capacity
    }

    /// Holds a session under its token.
    pub(crate) fn insert(&self, token: String, session: SessionRef) {
        self.lock().insert(token, session);
        self.report();
    }

    /// Drops a session.
    pub(crate) fn remove(&self, token: &str) -> Option<SessionRef> {
        let s = self.lock().remove(token);
        self.report();
        s
    }

    /// Removes and returns the sessions idle past their timeout. A session
    /// whose lock is held is handling a message, so it is not idle.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<SessionRef> {
        let mut map = self.lock();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.try_lock().is_ok_and(|s| s.is_expired(now)))
            .map(|(k, _)| k.clone())
            .collect();
        let out = expired.iter().filter_map(|k| map.remove(k)).collect();
        drop(map);
        self.report();
        out
    }

    /// Removes every session (shutdown).
    pub(crate) fn drain(&self) -> Vec<SessionRef> {
        let out = self.lock().drain().map(|(_, v)| v).collect();
        self.report();
        out
    }

    /// How many sessions are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn report(&self) {
        metrics::gauge!(crate::metrics::SESSIONS_ACTIVE).set(self.len() as f64);
    }
}
