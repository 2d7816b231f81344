//! `policy.maxPayload` per session, by what the session may do: a session
//! that can only read (or do nothing) has no reason to send large frames,
//! while writers, admins and nodes send attachments and invoke results. The
//! server option stays the upper bound (it is also the socket's own limit).
//! See docs/threat-model.md ("Large frames from anyone admitted").

use clawgate_protocol::Role;

/// The largest frame a scopeless or read-only operator session may send.
pub const READ_ONLY_MAX_PAYLOAD: usize = 1024 * 1024;

/// Scopes that only read.
fn is_read_only(scope: &str) -> bool {
    scope.ends_with(".read")
}

/// The largest frame this session may send after hello-ok.
pub fn max_payload<S: AsRef<str>>(role: Role, scopes: &[S], server_max: usize) -> usize {
    let reads_only = scopes.iter().all(|s| is_read_only(s.as_ref()));
    if role == Role::Operator && reads_only {
        READ_ONLY_MAX_PAYLOAD.min(server_max)
    } else {
        server_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 25 * 1024 * 1024;

    #[test]
    fn readers_get_the_small_limit_and_writers_admins_nodes_the_full_one() {
        let none: [&str; 0] = [];
        assert_eq!(max_payload(Role::Operator, &none, MAX), READ_ONLY_MAX_PAYLOAD);
        assert_eq!(
            max_payload(Role::Operator, &["operator.read", "operator.sessions.read"], MAX),
            READ_ONLY_MAX_PAYLOAD
        );
        assert_eq!(max_payload(Role::Operator, &["operator.read", "operator.write"], MAX), MAX);
        assert_eq!(max_payload(Role::Operator, &["operator.admin"], MAX), MAX);
        assert_eq!(max_payload(Role::Operator, &["operator.approvals"], MAX), MAX);
        assert_eq!(max_payload(Role::Node, &none, MAX), MAX);
        // The server option stays the upper bound.
        assert_eq!(max_payload(Role::Operator, &none, 4096), 4096);
    }
}
