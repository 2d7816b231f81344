//! Frame shapes. All objects are closed: unknown keys are errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorShape;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFrame {
    #[serde(rename = "type")]
    pub kind: FrameKind,
    pub id: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseFrame {
    #[serde(rename = "type")]
    pub kind: FrameKind,
    pub id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorShape>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFrame {
    #[serde(rename = "type")]
    pub kind: FrameKind,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, rename = "stateVersion", skip_serializing_if = "Option::is_none")]
    pub state_version: Option<StateVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameKind {
    #[serde(rename = "req")]
    Req,
    #[serde(rename = "res")]
    Res,
    #[serde(rename = "event")]
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// Any frame, as a client sees the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Req(RequestFrame),
    Res(ResponseFrame),
    Event(EventFrame),
}

/// Why a text frame is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON at all.
    NotJson(String),
    /// JSON, but not a request frame; `id` is echoed when one could be read.
    Invalid { id: Option<String>, reason: String },
}

impl FrameError {
    pub fn id(&self) -> Option<&str> {
        match self {
            FrameError::NotJson(_) => None,
            FrameError::Invalid { id, .. } => id.as_deref(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            FrameError::NotJson(r) | FrameError::Invalid { reason: r, .. } => r,
        }
    }
}

impl RequestFrame {
    pub fn new(id: impl Into<String>, method: impl Into<String>, params: Option<Value>) -> Self {
        RequestFrame { kind: FrameKind::Req, id: id.into(), method: method.into(), params, traceparent: None }
    }

    /// Parse one text frame as a request, enforcing the schema's constraints.
    pub fn parse(text: &str) -> Result<RequestFrame, FrameError> {
        // One pass for the common case, a valid request; anything else is
        // parsed again the slow way below, which says what is wrong.
        if let Ok(frame) = serde_json::from_str::<RequestFrame>(text) {
            if frame.kind == FrameKind::Req && frame.is_valid() {
                return Ok(frame);
            }
        }
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        let id = value.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let invalid = |reason: String| FrameError::Invalid { id: id.clone(), reason };
        if !value.is_object() {
            return Err(invalid("frame must be a JSON object".into()));
        }
        match value.get("type").and_then(Value::as_str) {
            Some("req") => {}
            Some(other) => return Err(invalid(format!("type must be \"req\", got \"{other}\""))),
            None => return Err(invalid("missing type".into())),
        }
        let frame: RequestFrame = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if frame.id.is_empty() {
            return Err(invalid("id must be a non-empty string".into()));
        }
        if frame.method.is_empty() {
            return Err(invalid("method must be a non-empty string".into()));
        }
        if frame.traceparent.as_ref().is_some_and(|t| t.len() > 128) {
            return Err(invalid("traceparent longer than 128 characters".into()));
        }
        Ok(frame)
    }

    fn is_valid(&self) -> bool {
        !self.id.is_empty() && !self.method.is_empty() && self.traceparent.as_ref().is_none_or(|t| t.len() <= 128)
    }
}

impl ResponseFrame {
    pub fn ok(id: impl Into<String>, payload: Value) -> Self {
        ResponseFrame { kind: FrameKind::Res, id: id.into(), ok: true, payload: Some(payload), error: None }
    }

    pub fn err(id: impl Into<String>, error: ErrorShape) -> Self {
        ResponseFrame { kind: FrameKind::Res, id: id.into(), ok: false, payload: None, error: Some(error) }
    }
}

impl EventFrame {
    pub fn new(event: impl Into<String>, payload: Option<Value>, seq: Option<u64>) -> Self {
        EventFrame { kind: FrameKind::Event, event: event.into(), payload, seq, state_version: None }
    }
}

impl Frame {
    /// Parse any frame (what a client reads from the server).
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        let invalid = |reason: String| FrameError::Invalid { id: None, reason };
        let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("req") => serde_json::from_value(value).map(Frame::Req).map_err(|e| invalid(e.to_string())),
            Some("res") => serde_json::from_value(value).map(Frame::Res).map_err(|e| invalid(e.to_string())),
            Some("event") => serde_json::from_value(value).map(Frame::Event).map_err(|e| invalid(e.to_string())),
            _ => Err(invalid("unknown frame type".into())),
        }
    }

    pub fn to_json(&self) -> String {
        let result = match self {
            Frame::Req(f) => serde_json::to_string(f),
            Frame::Res(f) => serde_json::to_string(f),
            Frame::Event(f) => serde_json::to_string(f),
        };
        // Serialising these plain structs cannot fail: no maps with non-string keys.
        result.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request() {
        let f = RequestFrame::parse(r#"{"type":"req","id":"1","method":"health"}"#).unwrap();
        assert_eq!(f.method, "health");
        assert_eq!(f.params, None);
    }

    #[test]
    fn rejects_unknown_keys_and_echoes_id() {
        let e = RequestFrame::parse(r#"{"type":"req","id":"7","method":"health","x":1}"#).unwrap_err();
        assert_eq!(e.id(), Some("7"));
        assert!(e.reason().contains("unknown field"), "{e:?}");
    }

    #[test]
    fn the_one_pass_parse_gives_what_the_two_pass_parse_gave() {
        let text = r#"{"type":"req","id":"1","method":"sessions.list","params":{"a":[1,2.5,null]},"traceparent":"t"}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(RequestFrame::parse(text).unwrap(), serde_json::from_value::<RequestFrame>(value).unwrap());
        // A repeated member fails the one pass; the slow way keeps the last, as before.
        let repeated = RequestFrame::parse(r#"{"type":"req","id":"1","method":"a","method":"b"}"#).unwrap();
        assert_eq!(repeated.method, "b");
        let long = format!(r#"{{"type":"req","id":"1","method":"a","traceparent":"{}"}}"#, "t".repeat(129));
        assert_eq!(RequestFrame::parse(&long).unwrap_err().id(), Some("1"));
    }

    #[test]
    fn rejects_empty_method_and_wrong_type() {
        assert!(RequestFrame::parse(r#"{"type":"req","id":"1","method":""}"#).is_err());
        assert!(RequestFrame::parse(r#"{"type":"event","event":"x"}"#).is_err());
        assert!(matches!(RequestFrame::parse("{nope"), Err(FrameError::NotJson(_))));
        assert!(RequestFrame::parse("[]").is_err());
    }

    #[test]
    fn round_trips_responses_and_events() {
        let r = ResponseFrame::ok("1", serde_json::json!({"ok": true}));
        let text = Frame::Res(r.clone()).to_json();
        assert_eq!(Frame::parse(&text).unwrap(), Frame::Res(r));
        let e = EventFrame::new("tick", Some(serde_json::json!({"ts": 1})), Some(3));
        let text = Frame::Event(e.clone()).to_json();
        assert_eq!(Frame::parse(&text).unwrap(), Frame::Event(e));
    }
}
