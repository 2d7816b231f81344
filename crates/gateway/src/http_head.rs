//! An HTTP request head as read off the socket, and the JSON error body of
//! an HTTP refusal: shared by the server's own routes and the upstream HTTP
//! relay, which must not depend on the server to speak them.

#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order, duplicates kept.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_has_token("upgrade", "websocket") && self.header_has_token("connection", "upgrade")
    }
}

/// An error body in the shape OpenClaw uses for HTTP refusals.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "type": code, "message": message } })
}
