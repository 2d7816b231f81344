//! An upstream event frame made ready for the session's own `seq`: the
//! frame as the upstream wrote it with its top-level `seq` member cut out,
//! everything else copied byte for byte (no parse into values, no
//! re-serialisation of the payload, which may be large: chat and agent
//! streams).

use serde_json::Value;

/// `frame` (a JSON object, already known to be valid JSON) without its
/// top-level `seq` member, or `None` when it is not a JSON object.
pub fn without_seq(frame: &str) -> Option<String> {
    match seq_spans(frame.as_bytes()) {
        Some(spans) => {
            let mut out = String::with_capacity(frame.len());
            let mut from = 0;
            for (start, end) in spans {
                out.push_str(&frame[from..start]);
                from = end;
            }
            out.push_str(&frame[from..]);
            Some(out)
        }
        // Not what the scanner expects: the slow way decides.
        None => {
            let Ok(Value::Object(mut members)) = serde_json::from_str::<Value>(frame) else { return None };
            members.remove("seq");
            Some(Value::Object(members).to_string())
        }
    }
}

/// The byte ranges to cut so that no top-level `seq` member is left: each
/// member with its separating comma (the one before it, or for the first
/// member the one after it). `None` when `json` is not an object this
/// scanner reads to the end.
fn seq_spans(json: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut spans = Vec::new();
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b'}') {
        return (skip_ws(json, i + 1) == json.len()).then_some(spans);
    }
    // Where the member before ends (its comma follows), none for the first.
    let mut previous_end: Option<usize> = None;
    loop {
        let key_start = i;
        let key_end = skip_string(json, i)?;
        i = skip_ws(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let value_end = skip_value(json, skip_ws(json, i + 1))?;
        i = skip_ws(json, value_end);
        let last = match json.get(i) {
            Some(b',') => false,
            Some(b'}') => true,
            _ => return None,
        };
        if is_seq(&json[key_start..key_end])? {
            match previous_end {
                // `,"seq":1` after the member before.
                Some(end) => spans.push((end, value_end)),
                // `"seq":1,` as the first member (or the only one).
                None if last => spans.push((key_start, value_end)),
                None => spans.push((key_start, skip_ws(json, i + 1))),
            }
        } else {
            previous_end = Some(value_end);
        }
        if last {
            return (skip_ws(json, i + 1) == json.len()).then_some(spans);
        }
        i = skip_ws(json, i + 1);
    }
}

/// Whether a member name (with its quotes) is `seq`, escapes decoded.
fn is_seq(quoted: &[u8]) -> Option<bool> {
    if !quoted.contains(&b'\\') {
        return Some(quoted == b"\"seq\"");
    }
    let name: String = serde_json::from_slice(quoted).ok()?;
    Some(name == "seq")
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while matches!(json.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string starting at `i`.
fn skip_string(json: &[u8], mut i: usize) -> Option<usize> {
    if json.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    loop {
        match json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The end of the value starting at `i`.
fn skip_value(json: &[u8], mut i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => skip_string(json, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = skip_string(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while !matches!(json.get(i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_seq_goes_and_everything_else_stays_as_written() {
        let frame = r#"{"type":"event","event":"chat","payload":{"text":"a \"b\" }","seq":7,"n":1.50},"seq":41,"stateVersion":{"presence":1,"health":2}}"#;
        assert_eq!(
            without_seq(frame).unwrap(),
            r#"{"type":"event","event":"chat","payload":{"text":"a \"b\" }","seq":7,"n":1.50},"stateVersion":{"presence":1,"health":2}}"#
        );
        assert_eq!(without_seq(r#"{"type":"event","event":"x","seq":3}"#).unwrap(), r#"{"type":"event","event":"x"}"#);
        assert_eq!(without_seq(r#"{"seq":3,"type":"event"}"#).unwrap(), r#"{"type":"event"}"#);
        assert_eq!(without_seq(r#"{"seq":1}"#).unwrap(), "{}");
        assert_eq!(without_seq("{}").unwrap(), "{}");
        assert_eq!(without_seq(r#"{"a":[1,{"seq":2}],"b":"seq"}"#).unwrap(), r#"{"a":[1,{"seq":2}],"b":"seq"}"#);
    }

    #[test]
    fn spacing_repeats_and_escaped_names() {
        let spaced = " { \"seq\" : 3 , \"type\" : \"event\" , \"seq\" : 4 , \"event\" : \"x\" } ";
        assert_eq!(parsed(&without_seq(spaced).unwrap()), serde_json::json!({"type": "event", "event": "x"}));
        let escaped = r#"{"type":"event","a\"b":1,"se\u0071":2,"event":"x"}"#;
        assert_eq!(
            parsed(&without_seq(escaped).unwrap()),
            serde_json::json!({"type": "event", "event": "x", "a\"b": 1})
        );
    }

    #[test]
    fn non_objects_are_none() {
        assert_eq!(without_seq("[1,2]"), None);
        assert_eq!(without_seq("{nope"), None);
        assert_eq!(without_seq("3"), None);
    }
}
