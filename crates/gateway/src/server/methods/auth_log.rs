//! `clawgate.auth.log`: the recent admission decisions (the in-memory
//! ring), for `clawgate auth log`. clawgate's own method, for admins only:
//! the entries name client addresses, devices and proxy users.
//!
//! Params: `{ limit?: 1..=1000 (default 50), afterSeq?: n }`. The answer
//! holds the newest `limit` entries after `afterSeq`, oldest first, and
//! `lastSeq`, which a follower passes back as `afterSeq`.

use serde_json::{json, Value};

use super::super::auth_log::CAPACITY;
use super::super::wire::RequestError;
use super::call::{Call, Reply};

const DEFAULT_LIMIT: u64 = 50;

pub(super) fn read(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (limit, after) = params(c.method, &c.params)?;
        let (entries, last_seq) = c.gw.auth_log.read(after, limit);
        Ok(json!({ "entries": entries, "lastSeq": last_seq, "capacity": CAPACITY }))
    })
}

fn params(method: &str, params: &Option<Value>) -> Result<(usize, u64), RequestError> {
    let invalid = |message: String| RequestError::InvalidParams { method: method.to_owned(), message };
    let empty = serde_json::Map::new();
    let object = match params {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("params must be an object".into())),
    };
    if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "limit" | "afterSeq")) {
        return Err(invalid(format!("unknown param {unknown:?}: expected limit or afterSeq")));
    }
    let limit = match object.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=CAPACITY as u64).contains(n))
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {CAPACITY}")))?,
    };
    let after = match object.get("afterSeq") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| invalid("afterSeq must be a non-negative integer".into()))?,
    };
    Ok((limit as usize, after))
}
