//! `node.invoke` across instances: an operator's invoke for a node that is
//! not connected here is sent, as a NATS request, to `invoke.<instance>` of
//! the instance holding the node (known from its announcements:
//! cluster/node_directory.rs). That instance checks the call as it would a
//! local one, runs it on its node exactly as a local `node.invoke`, and
//! replies with the node's result or error (docs/cluster.md, "node.invoke
//! across instances").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::RequestErrorKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::subjects::Subject;
use super::{Cluster, ClusterError};
use crate::server::node_invoke::{caller_may_invoke, invoke_here, NodeInvoke, MAX_INVOKE_TIMEOUT_MS};
use crate::server::wire::RequestError;
use crate::server::Gateway;

/// How much longer than the node's own timeout the caller waits for the
/// holding instance: that instance answers a node timeout itself, so only
/// a lost instance or bus runs into this margin.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// The request on the bus: the invoke and the caller's scopes (the caller's
/// instance checked them; the holder checks again with the same rules).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeAsked {
    caller_scopes: Vec<String>,
    invoke: NodeInvoke,
}

/// The reply: the node's result, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
enum InvokeAnswered {
    Ok { result: Value },
    Failed { failure: Failure },
}

/// The errors a `node.invoke` on the holding instance can end with, as they
/// cross the bus; the caller's instance turns them back into the same
/// request errors, so the operator sees what a local invoke would answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Failure {
    NodeFailed { code: String, message: String },
    Denied { message: String, reason: String },
    Unavailable { message: String },
    InvalidParams { message: String },
    MissingScope { scope: String },
    Cluster { code: String, message: String },
}

impl Failure {
    fn of(e: &RequestError) -> Failure {
        match e {
            RequestError::NodeFailed { code, message } => {
                Failure::NodeFailed { code: code.clone(), message: message.clone() }
            }
            RequestError::Denied { message, reason } => {
                Failure::Denied { message: message.clone(), reason: reason.clone() }
            }
            RequestError::InvalidParams { message, .. } => Failure::InvalidParams { message: message.clone() },
            RequestError::MissingScope { scope } => Failure::MissingScope { scope: scope.clone() },
            RequestError::Cluster { code, message } => {
                Failure::Cluster { code: (*code).to_owned(), message: message.clone() }
            }
            // Nothing else comes out of an invoke; should it, its wire
            // message still reaches the caller.
            other => Failure::Unavailable { message: crate::server::wire::request(other).message },
        }
    }

    fn into_request_error(self) -> RequestError {
        match self {
            Failure::NodeFailed { code, message } => RequestError::NodeFailed { code, message },
            Failure::Denied { message, reason } => RequestError::Denied { message, reason },
            Failure::Unavailable { message } => RequestError::Unavailable(message),
            Failure::InvalidParams { message } => RequestError::InvalidParams { method: "node.invoke".into(), message },
            Failure::MissingScope { scope } => RequestError::MissingScope { scope },
            Failure::Cluster { code, message } => RequestError::Cluster { code: known_cluster_code(&code), message },
        }
    }
}

/// A cluster code from another instance, as one of ours (stable codes only).
fn known_cluster_code(code: &str) -> &'static str {
    const CODES: [&str; 4] =
        ["CLUSTER_UNAVAILABLE", "CLUSTER_TIMEOUT", "CLUSTER_MESSAGE_TOO_LARGE", "CLUSTER_MESSAGE_INVALID"];
    CODES.into_iter().find(|c| *c == code).unwrap_or("CLUSTER_MESSAGE_INVALID")
}

fn refused(e: ClusterError) -> RequestError {
    tracing::warn!(code = e.code(), error = %e, "cross-instance node.invoke failed");
    RequestError::cluster(e.code(), e.to_string())
}

/// Run `invoke` on the instance holding its node and return its answer.
/// NATS down: refused at once (`CLUSTER_UNAVAILABLE`); no instance holds
/// the node: the local "not connected" error; the holder silent past the
/// invoke's timeout: `CLUSTER_TIMEOUT`.
pub async fn forward(c: &Cluster, caller_scopes: &[String], invoke: NodeInvoke) -> Result<Value, RequestError> {
    let client = match c.client() {
        Some(client) if c.is_connected() => client,
        _ => return Err(refused(ClusterError::Unavailable)),
    };
    let Some(holder) = c.node_directory().holder(&invoke.node_id) else {
        return Err(RequestError::Unavailable(format!(
            "node {} is not connected to any instance of the cluster",
            invoke.node_id
        )));
    };
    let wait = Duration::from_millis(invoke.timeout_ms) + ANSWER_MARGIN;
    let asked = InvokeAsked { caller_scopes: caller_scopes.to_vec(), invoke };
    let payload = c.encode(&asked).map_err(refused)?;
    if payload.len() > client.max_payload() {
        return Err(refused(ClusterError::TooLarge { size: payload.len(), max: client.max_payload() }));
    }
    let subject = c.subjects().of_instance(Subject::Invoke, &holder);
    let request = async_nats::Request::new().payload(payload.into()).timeout(Some(wait));
    let reply = match client.send_request(subject, request).await {
        Ok(reply) => reply,
        Err(e) => {
            return Err(refused(match e.kind() {
                RequestErrorKind::NoResponders => ClusterError::InstanceGone { instance: holder },
                RequestErrorKind::TimedOut => {
                    ClusterError::Timeout { instance: holder, timeout_ms: wait.as_millis() as u64 }
                }
                _ => ClusterError::Unavailable,
            }))
        }
    };
    match c.decode::<InvokeAnswered>(&reply.payload) {
        Ok(Some(envelope)) => match envelope.body {
            InvokeAnswered::Ok { result } => Ok(result),
            InvokeAnswered::Failed { failure } => Err(failure.into_request_error()),
        },
        Ok(None) => Err(refused(ClusterError::Message("an invoke answered by this instance itself".into()))),
        Err(e) => {
            tracing::warn!(subject = %reply.subject, code = e.code(), error = %e, "invoke answer dropped");
            Err(refused(e))
        }
    }
}

/// The loop: serve the invokes other instances send to this one.
pub fn run(gw: Arc<Gateway>, c: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(serve(gw, c))
}

async fn serve(gw: Arc<Gateway>, c: Arc<Cluster>) {
    let Some(client) = c.client().cloned() else { return };
    let subject = c.subjects().of_instance(Subject::Invoke, c.instance());
    let mut requests = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject = %subject, error = %e, "cannot serve cross-instance invokes");
            return;
        }
    };
    while let Some(message) = requests.next().await {
        // Each invoke waits for its node on its own task.
        tokio::spawn(answer(gw.clone(), c.clone(), client.clone(), message));
    }
}

async fn answer(gw: Arc<Gateway>, c: Arc<Cluster>, client: async_nats::Client, message: async_nats::Message) {
    let Some(reply_to) = message.reply.clone() else {
        tracing::warn!(subject = %message.subject, "invoke request without a reply subject dropped");
        return;
    };
    let answered = match c.decode::<InvokeAsked>(&message.payload) {
        Ok(Some(envelope)) => {
            tracing::debug!(from = %envelope.from, node_id = %envelope.body.invoke.node_id,
                command = %envelope.body.invoke.command, "node.invoke from another instance");
            run_here(&gw, envelope.body).await
        }
        Ok(None) => failed(&ClusterError::Message("an invoke sent by this instance to itself".into())),
        Err(e) => {
            tracing::warn!(subject = %message.subject, code = e.code(), error = %e, "invoke request dropped");
            failed(&e)
        }
    };
    let mut payload = match c.encode(&answered) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "invoke answer not encoded");
            return;
        }
    };
    if payload.len() > client.max_payload() {
        let too_large = ClusterError::TooLarge { size: payload.len(), max: client.max_payload() };
        tracing::warn!(code = too_large.code(), error = %too_large, "invoke answer too large for the bus");
        match c.encode(&failed(&too_large)) {
            Ok(p) => payload = p,
            Err(_) => return,
        }
    }
    if let Err(e) = client.publish(reply_to, payload.into()).await {
        tracing::warn!(error = %e, "invoke answer not sent");
    }
}

fn failed(e: &ClusterError) -> InvokeAnswered {
    InvokeAnswered::Failed { failure: Failure::Cluster { code: e.code().to_owned(), message: e.to_string() } }
}

/// The same checks and the same run as a `node.invoke` from an operator
/// connected here.
async fn run_here(gw: &Arc<Gateway>, asked: InvokeAsked) -> InvokeAnswered {
    let mut invoke = asked.invoke;
    invoke.timeout_ms = invoke.timeout_ms.clamp(1, MAX_INVOKE_TIMEOUT_MS);
    let result = match caller_may_invoke(&asked.caller_scopes, &invoke.command) {
        Ok(()) => invoke_here(gw, &invoke).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(result) => InvokeAnswered::Ok { result },
        Err(e) => InvokeAnswered::Failed { failure: Failure::of(&e) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cross_the_bus_as_the_same_request_errors() {
        let errors = [
            RequestError::NodeFailed { code: "NOT_FOUND".into(), message: "no such bin".into() },
            RequestError::Denied { message: "m".into(), reason: "command-not-declared".into() },
            RequestError::Unavailable("node n is not connected".into()),
            RequestError::InvalidParams { method: "node.invoke".into(), message: "m".into() },
            RequestError::MissingScope { scope: "operator.admin".into() },
            {
                let e = ClusterError::Timeout { instance: "b".into(), timeout_ms: 5 };
                RequestError::cluster(e.code(), e.to_string())
            },
        ];
        for e in errors {
            let text = serde_json::to_string(&InvokeAnswered::Failed { failure: Failure::of(&e) }).unwrap();
            let InvokeAnswered::Failed { failure } = serde_json::from_str(&text).unwrap() else { panic!("{text}") };
            assert_eq!(failure.into_request_error(), e);
        }
    }

    #[test]
    fn an_unknown_cluster_code_is_not_passed_on() {
        let failure = Failure::Cluster { code: "SOMETHING_ELSE".into(), message: "m".into() };
        assert_eq!(
            failure.into_request_error(),
            RequestError::Cluster { code: "CLUSTER_MESSAGE_INVALID", message: "m".into() }
        );
    }
}
