//! Operator scopes, their implication rules, and scope sets: coverage,
//! normalisation, union. Every crate compares scopes through here.

pub const ADMIN: &str = "operator.admin";
pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const SESSIONS_READ: &str = "operator.sessions.read";
pub const SESSIONS_WRITE: &str = "operator.sessions.write";
pub const APPROVALS: &str = "operator.approvals";
pub const QUESTIONS: &str = "operator.questions";
pub const PAIRING: &str = "operator.pairing";
pub const TALK: &str = "operator.talk";
pub const TALK_SECRETS: &str = "operator.talk.secrets";

/// The closed set of operator scopes the protocol defines.
pub const KNOWN_SCOPES: &[&str] =
    &[ADMIN, READ, WRITE, SESSIONS_READ, SESSIONS_WRITE, APPROVALS, QUESTIONS, PAIRING, TALK, TALK_SECRETS];

/// Does holding `held` satisfy a requirement for `required`?
/// Only `operator.*` strings count; `admin` satisfies everything; `write`
/// satisfies `read`, `talk`, `sessions.read` and `sessions.write`; `read` or
/// `sessions.write` satisfy `sessions.read`; anything else needs an exact match.
pub fn scope_implies(held: &str, required: &str) -> bool {
    if !held.starts_with("operator.") || !required.starts_with("operator.") {
        return false;
    }
    if held == required || held == ADMIN {
        return true;
    }
    match held {
        WRITE => matches!(required, READ | TALK | SESSIONS_READ | SESSIONS_WRITE),
        READ | SESSIONS_WRITE => required == SESSIONS_READ,
        _ => false,
    }
}

/// Is `required` satisfied by any scope in `held`?
pub fn satisfied_by<S: AsRef<str>>(held: &[S], required: &str) -> bool {
    held.iter().any(|h| scope_implies(h.as_ref(), required))
}

/// Every scope of `requested` satisfied by `granted`?
pub fn covered_by<A: AsRef<str>, B: AsRef<str>>(requested: &[A], granted: &[B]) -> bool {
    requested.iter().all(|r| satisfied_by(granted, r.as_ref()))
}

/// The scopes of `requested` that `granted` does not satisfy.
pub fn not_covered<A: AsRef<str>, B: AsRef<str>>(requested: &[A], granted: &[B]) -> Vec<String> {
    requested.iter().filter(|r| !satisfied_by(granted, r.as_ref())).map(|r| r.as_ref().to_owned()).collect()
}

/// The scopes of `requested` that `held` neither implies nor holds verbatim.
/// Unlike [`not_covered`], a verbatim match counts for strings outside
/// `operator.*` too: what the store records as approved is granted as is.
pub fn not_held<A: AsRef<str>, B: AsRef<str>>(requested: &[A], held: &[B]) -> Vec<String> {
    not_covered(requested, held).into_iter().filter(|r| !held.iter().any(|h| h.as_ref() == r)).collect()
}

/// Does `held` imply or hold verbatim every scope of `requested`?
pub fn holds_all<A: AsRef<str>, B: AsRef<str>>(requested: &[A], held: &[B]) -> bool {
    not_held(requested, held).is_empty()
}

/// `a ∪ b`, normalized.
pub fn union<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> Vec<String> {
    let all: Vec<&str> = a.iter().map(AsRef::as_ref).chain(b.iter().map(AsRef::as_ref)).collect();
    normalize(&all)
}

/// Trimmed, deduplicated, sorted; empty strings dropped. Implied scopes are not added.
pub fn normalize<S: AsRef<str>>(scopes: &[S]) -> Vec<String> {
    let mut out: Vec<String> = scopes.iter().map(|s| s.as_ref().trim().to_owned()).filter(|s| !s.is_empty()).collect();
    out.sort();
    out.dedup();
    out
}

/// Requested scopes as granted: deduplicated, the client's order kept.
pub fn dedupe_in_order<S: AsRef<str>>(scopes: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !out.iter().any(|o| o == s.as_ref()) {
            out.push(s.as_ref().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implication_table() {
        assert!(scope_implies(ADMIN, WRITE));
        assert!(scope_implies(ADMIN, "operator.anything"));
        assert!(scope_implies(WRITE, READ));
        assert!(scope_implies(WRITE, TALK));
        assert!(!scope_implies(WRITE, TALK_SECRETS));
        assert!(!scope_implies(READ, WRITE));
        assert!(scope_implies(READ, SESSIONS_READ));
        assert!(scope_implies(SESSIONS_WRITE, SESSIONS_READ));
        assert!(!scope_implies(SESSIONS_READ, READ));
        assert!(!scope_implies("admin", READ));
        assert!(!scope_implies(ADMIN, "node"));
    }

    #[test]
    fn coverage_lists_the_excess() {
        assert!(covered_by(&[READ, TALK], &[WRITE]));
        assert_eq!(not_covered(&[READ, ADMIN], &[WRITE]), vec![ADMIN.to_owned()]);
    }

    #[test]
    fn held_verbatim_counts_outside_operator_scopes() {
        assert!(not_covered(&["custom.x"], &["custom.x"]) == vec!["custom.x".to_owned()]);
        assert!(holds_all(&["custom.x", READ], &["custom.x", WRITE]));
        assert_eq!(not_held(&["custom.y", READ], &["custom.x"]), vec!["custom.y".to_owned(), READ.to_owned()]);
        assert_eq!(union(&[WRITE, READ], &[" operator.read ", ADMIN]), vec![ADMIN, READ, WRITE]);
    }
}
