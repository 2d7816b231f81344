//! The relayed requests of one session the upstream has not answered yet,
//! so that a link that dies answers each of them with an error instead of
//! leaving the client waiting for an answer that will never come.
//!
//! The count is bounded: a session with [`MAX_UNANSWERED`] requests in the
//! upstream's hands stops forwarding more (its client waits, back-pressure)
//! until answers come back.

use std::collections::HashMap;

use serde_json::json;

use super::failure::DEFAULT_RETRY_AFTER_MS;

/// Requests one session may have in the upstream's hands at once.
pub const MAX_UNANSWERED: usize = 1024;

/// Request ids sent up and not answered yet (a client may reuse an id, so
/// each id counts how often it is outstanding).
#[derive(Default)]
pub struct PendingAnswers {
    ids: HashMap<String, u32>,
    total: usize,
}

impl PendingAnswers {
    pub fn has_room(&self) -> bool {
        self.total < MAX_UNANSWERED
    }

    pub fn sent(&mut self, id: &str) {
        *self.ids.entry(id.to_owned()).or_default() += 1;
        self.total += 1;
    }

    /// The upstream answered `id` (answers to ids never sent are ignored).
    pub fn answered(&mut self, id: &str) {
        if let Some(n) = self.ids.get_mut(id) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.ids.remove(id);
            }
        }
    }

    /// Every id still waiting, once per time it was sent; empties the set.
    pub fn take_all(&mut self) -> Vec<String> {
        self.total = 0;
        self.ids.drain().flat_map(|(id, n)| std::iter::repeat_n(id, n as usize)).collect()
    }
}

/// The answer a request gets when the link it went up on (or was about to)
/// ended first: retryable, as at admission.
pub fn link_lost_answer(id: &str) -> String {
    json!({
        "type": "res",
        "id": id,
        "ok": false,
        "error": {
            "code": "UNAVAILABLE",
            "message": "the upstream gateway went away before answering; reconnect and retry",
            "details": { "code": "UPSTREAM_UNAVAILABLE" },
            "retryable": true,
            "retryAfterMs": DEFAULT_RETRY_AFTER_MS,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_counted_per_send_and_bounded() {
        let mut p = PendingAnswers::default();
        p.sent("a");
        p.sent("a");
        p.sent("b");
        p.answered("a");
        p.answered("never-sent");
        let mut left = p.take_all();
        left.sort();
        assert_eq!(left, ["a", "b"]);
        assert!(p.take_all().is_empty());
        for i in 0..MAX_UNANSWERED {
            assert!(p.has_room());
            p.sent(&i.to_string());
        }
        assert!(!p.has_room());
        p.answered("7");
        assert!(p.has_room());
    }

    #[test]
    fn the_answer_is_a_retryable_upstream_unavailable_error() {
        let v: serde_json::Value = serde_json::from_str(&link_lost_answer("x\"1")).unwrap();
        assert_eq!((v["type"].as_str(), v["id"].as_str(), v["ok"].as_bool()), (Some("res"), Some("x\"1"), Some(false)));
        assert_eq!(v["error"]["details"]["code"], "UPSTREAM_UNAVAILABLE");
        assert_eq!(v["error"]["retryable"], true);
    }
}
