//! The runner's schedule: messages ordered by next attempt time (unix ms). Built once at start
//! from the spool, then kept up to date by enqueues, delivery results and flush requests, so no
//! pass ever rescans the queue directory.

use crate::QueueId;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    by_time: BTreeSet<(u64, QueueId)>,
    due: HashMap<QueueId, u64>,
}

impl Schedule {
    /// Schedules `id` at `at` (replacing an earlier entry).
    pub(crate) fn insert(&mut self, id: QueueId, at: u64) {
        if let Some(old) = self.due.insert(id.clone(), at) {
            self.by_time.remove(&(old, id.clone()));
        }
        self.by_time.insert((at, id));
    }

    #[cfg(test)]
    pub(crate) fn remove(&mut self, id: &QueueId) {
        if let Some(old) = self.due.remove(id) {
            self.by_time.remove(&(old, id.clone()));
        }
    }

    /// The earliest message due at or before `now`, with the time it was due (0: new or
    /// flushed).
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, QueueId)> {
        let first = self.by_time.first()?;
        if first.0 > now {
            return None;
        }
        let (at, id) = self.by_time.pop_first()?;
        self.due.remove(&id);
        Some((at, id))
    }

    /// When the next message is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Makes every scheduled message due now (`pochta queue flush`).
    pub(crate) fn flush_all(&mut self) {
        let ids: Vec<QueueId> = self.due.keys().cloned().collect();
        for id in ids {
            self.insert(id, 0);
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: &QueueId) -> bool {
        self.due.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> QueueId {
        QueueId::parse(s).unwrap()
    }

    #[test]
    fn order_replace_flush() {
        let mut s = Schedule::default();
        s.insert(id("A"), 300);
        s.insert(id("B"), 100);
        s.insert(id("C"), 200);
        s.insert(id("B"), 400);
        assert_eq!(s.next_due(), Some(200));
        assert_eq!(s.pop_due(250), Some((200, id("C"))));
        assert_eq!(s.pop_due(250), None);
        s.flush_all();
        assert_eq!(s.next_due(), Some(0));
        assert_eq!(s.len(), 2);
        s.remove(&id("A"));
        assert!(!s.contains(&id("A")));
        assert_eq!(s.pop_due(0), Some((0, id("B"))));
        assert_eq!(s.pop_due(u64::MAX), None);
    }
}
