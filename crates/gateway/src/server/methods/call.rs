//! What a method handler is: one request as the handler sees it, and the
//! answer it will give. Apart from the table so that the handlers and the
//! table that names them do not import each other.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use super::super::registry::SessionInfo;
use super::super::wire::RequestError;
use super::super::Gateway;

/// One request as a handler sees it.
pub struct Call<'a> {
    pub gw: &'a Arc<Gateway>,
    pub session: &'a Arc<SessionInfo>,
    pub method: &'a str,
    pub params: Option<Value>,
}

/// The answer a handler will give.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<Value, RequestError>> + Send + 'a>>;

/// A handler served inside this process.
pub type LocalHandler = for<'a> fn(Call<'a>) -> Reply<'a>;
