//! Who may call what, from the method table's requirements: `health`
//! always; node methods need role node; every other method needs role
//! operator and its scope (scope implication applies); methods the schema
//! does not list need `operator.admin`.

use clawgate_protocol::methods::MethodScope;
use clawgate_protocol::scopes::satisfied_by;

use crate::admission::decision::Role;

use super::super::registry::SessionInfo;
use super::super::wire::RequestError;
use super::table::{self, Requirement};

/// What the method requires: its table entry, else the schema's scope.
fn requirement(method: &str) -> Requirement {
    table::lookup(method).map_or_else(|| Requirement::from_schema(method), |e| e.requirement)
}

pub fn authorize(method: &str, session: &SessionInfo) -> Result<(), RequestError> {
    let Requirement::Scope(required) = requirement(method) else { return Ok(()) };
    let wrong_role = || RequestError::UnauthorizedRole { role: session.role.as_str().to_owned() };
    match (required, session.role) {
        (MethodScope::Node, Role::Node) => Ok(()),
        (MethodScope::Node, _) | (_, Role::Node) => Err(wrong_role()),
        // Scope upgrades are requested with whatever scopes one has.
        _ if matches!(method, "device.scopes.requestUpgrade" | "device.scopes.waitUpgrade") => Ok(()),
        (MethodScope::Operator(scope) | MethodScope::Dynamic { base: scope }, Role::Operator) => {
            if satisfied_by(&session.scopes, scope) {
                Ok(())
            } else {
                Err(RequestError::MissingScope { scope: scope.to_owned() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::RuleId;
    use clawgate_protocol::scopes;

    fn session(role: Role, scopes: &[&str]) -> SessionInfo {
        SessionInfo {
            conn_id: "c".into(),
            role,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            client: clawgate_protocol::ClientInfo {
                id: "cli".into(),
                version: "1".into(),
                platform: "linux".into(),
                mode: "cli".into(),
                display_name: None,
                build_id: None,
                device_family: None,
                model_identifier: None,
                time_zone: None,
                instance_id: None,
            },
            client_ip: "127.0.0.1".parse().unwrap(),
            rule: RuleId::LocalOwner,
            connected_at_ms: 0,
            device_id: None,
            token_issued_at_ms: None,
            node: None,
            service: None,
        }
    }

    /// Method, caller role, caller scopes, expected outcome.
    type Case<'a> = (&'a str, Role, &'a [&'a str], Result<(), &'a str>);

    #[test]
    fn one_method_from_each_scope_class() {
        let cases: &[Case] = &[
            ("health", Role::Node, &[], Ok(())),
            ("health", Role::Operator, &[], Ok(())),
            ("status", Role::Operator, &[scopes::READ], Ok(())),
            ("status", Role::Operator, &[scopes::WRITE], Ok(())),
            ("status", Role::Operator, &[], Err("MISSING_SCOPE operator.read")),
            ("send", Role::Operator, &[scopes::READ], Err("MISSING_SCOPE operator.write")),
            ("send", Role::Operator, &[scopes::WRITE], Ok(())),
            ("config.set", Role::Operator, &[scopes::WRITE], Err("MISSING_SCOPE operator.admin")),
            ("config.set", Role::Operator, &[scopes::ADMIN], Ok(())),
            ("config.get", Role::Operator, &[scopes::READ], Ok(())),
            ("exec.approval.resolve", Role::Operator, &[scopes::WRITE], Err("MISSING_SCOPE operator.approvals")),
            ("exec.approval.resolve", Role::Operator, &[scopes::APPROVALS], Ok(())),
            ("question.resolve", Role::Operator, &[scopes::QUESTIONS], Ok(())),
            ("talk.speak", Role::Operator, &[scopes::WRITE], Ok(())),
            ("device.pair.approve", Role::Operator, &[scopes::WRITE], Err("MISSING_SCOPE operator.pairing")),
            ("device.pair.approve", Role::Operator, &[scopes::PAIRING], Ok(())),
            ("node.invoke", Role::Operator, &[scopes::READ], Err("MISSING_SCOPE operator.write")),
            ("node.invoke", Role::Operator, &[scopes::WRITE], Ok(())),
            ("node.invoke.result", Role::Operator, &[scopes::ADMIN], Err("UNAUTHORIZED_ROLE")),
            ("node.invoke.result", Role::Node, &[], Ok(())),
            ("node.event", Role::Node, &[], Ok(())),
            ("status", Role::Node, &[], Err("UNAUTHORIZED_ROLE")),
            ("no.such.method", Role::Operator, &[scopes::WRITE], Err("MISSING_SCOPE operator.admin")),
            ("no.such.method", Role::Operator, &[scopes::ADMIN], Ok(())),
            ("device.scopes.requestUpgrade", Role::Operator, &[], Ok(())),
        ];
        for (method, role, held, expected) in cases {
            let got = authorize(method, &session(*role, held)).map_err(|e| match e {
                RequestError::MissingScope { scope } => format!("MISSING_SCOPE {scope}"),
                RequestError::UnauthorizedRole { .. } => "UNAUTHORIZED_ROLE".into(),
                other => format!("{other:?}"),
            });
            assert_eq!(got, expected.map_err(str::to_owned), "{method} as {role:?} with {held:?}");
        }
    }
}
