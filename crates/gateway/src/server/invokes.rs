//! Invocations in flight: an operator's `node.invoke` waits here until the
//! node it was sent to answers with `node.invoke.result`. A result is accepted
//! only from the connection the invoke was sent to.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::oneshot;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    Ok {
        payload: Option<Value>,
        payload_json: Option<String>,
    },
    Failed {
        code: String,
        message: String,
    },
    /// The node's connection ended before it answered.
    NodeGone,
}

struct Pending {
    node_id: String,
    conn_id: String,
    reply: oneshot::Sender<InvokeOutcome>,
}

/// Why a `node.invoke.result` was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultRejected {
    /// No invocation with that id is waiting (finished, timed out, or never sent).
    Unknown,
    /// It was sent to another connection or node: results are bound to the target.
    NotYours,
}

#[derive(Default)]
pub struct Invokes {
    pending: Mutex<HashMap<String, Pending>>,
    /// Results dropped because they came from the wrong connection.
    pub foreign_results: std::sync::atomic::AtomicU64,
}

impl Invokes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register an invocation sent to `conn_id`; the receiver gets its outcome.
    pub fn start(&self, id: &str, node_id: &str, conn_id: &str) -> oneshot::Receiver<InvokeOutcome> {
        let (reply, rx) = oneshot::channel();
        self.lock().insert(id.to_owned(), Pending { node_id: node_id.to_owned(), conn_id: conn_id.to_owned(), reply });
        rx
    }

    /// Forget an invocation (timed out, or the caller went away).
    pub fn cancel(&self, id: &str) {
        self.lock().remove(id);
    }

    /// A node's answer, from connection `from_conn` claiming `node_id`.
    pub fn complete(
        &self,
        id: &str,
        node_id: &str,
        from_conn: &str,
        outcome: InvokeOutcome,
    ) -> Result<(), ResultRejected> {
        let mut map = self.lock();
        let Some(p) = map.get(id) else { return Err(ResultRejected::Unknown) };
        if p.conn_id != from_conn || p.node_id != node_id {
            self.foreign_results.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ResultRejected::NotYours);
        }
        if let Some(p) = map.remove(id) {
            let _ = p.reply.send(outcome);
        }
        Ok(())
    }

    /// The node connection ended: fail everything still waiting on it.
    pub fn connection_closed(&self, conn_id: &str) {
        let mut map = self.lock();
        let ids: Vec<String> = map.iter().filter(|(_, p)| p.conn_id == conn_id).map(|(k, _)| k.clone()).collect();
        for id in ids {
            if let Some(p) = map.remove(&id) {
                let _ = p.reply.send(InvokeOutcome::NodeGone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_bound_to_the_target_connection() {
        let inv = Invokes::default();
        let mut rx = inv.start("i1", "node-a", "conn-a");
        let ok = InvokeOutcome::Ok { payload: None, payload_json: None };
        assert_eq!(inv.complete("i1", "node-a", "conn-b", ok.clone()), Err(ResultRejected::NotYours));
        assert_eq!(inv.complete("i1", "node-b", "conn-a", ok.clone()), Err(ResultRejected::NotYours));
        assert!(rx.try_recv().is_err(), "still waiting");
        assert_eq!(inv.complete("i1", "node-a", "conn-a", ok.clone()), Ok(()));
        assert_eq!(rx.try_recv().unwrap(), ok);
        assert_eq!(inv.complete("i1", "node-a", "conn-a", ok), Err(ResultRejected::Unknown));
    }

    #[test]
    fn a_closed_node_fails_its_invocations() {
        let inv = Invokes::default();
        let mut rx = inv.start("i1", "node-a", "conn-a");
        let mut other = inv.start("i2", "node-b", "conn-b");
        inv.connection_closed("conn-a");
        assert_eq!(rx.try_recv().unwrap(), InvokeOutcome::NodeGone);
        assert!(other.try_recv().is_err());
    }
}
