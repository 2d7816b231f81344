//! Which characters a self-reported string may hold, and how to print one
//! that holds others anyway.
//!
//! A client names itself (platform, device family, display name, …) and an
//! approver later reads those names in a terminal. A terminal obeys escape
//! sequences and a bidi override reorders what follows it, so a name could
//! rewrite the line an approver reads ("role operator scopes operator.read")
//! while the request asks for admin. The gateway refuses such characters at
//! connect ([`first_non_printing`]); everything it prints from a client or
//! the store goes through [`printable`] in case an older store holds them.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character that does not print as itself: C0/C1 controls
/// (escape, carriage return, tab, …), line and paragraph separators, and the
/// invisible format characters (bidi embeddings, overrides and isolates,
/// zero-width characters, the byte-order mark, tag characters).
pub fn is_non_printing(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{0600}'..='\u{0605}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// The first non-printing character of `s` and its character index.
pub fn first_non_printing(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|(_, c)| is_non_printing(*c))
}

/// `s` with every non-printing character written as `\u{…}`. Borrowed when
/// there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_non_printing) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_non_printing(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON with every non-printing character inside its strings
/// written as a JSON `\uXXXX` escape: the same JSON, safe on a terminal.
pub fn printable_json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_non_printing_beyond_json) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_non_printing_beyond_json(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{:04x}", unit);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Non-printing, but not the whitespace JSON itself uses between tokens.
fn is_non_printing_beyond_json(c: char) -> bool {
    is_non_printing(c) && !matches!(c, '\n' | '\r' | '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bidi_overrides_are_non_printing() {
        for c in ['\u{1b}', '\r', '\n', '\t', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}'] {
            assert!(is_non_printing(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '中', '🙂', '-', '.'] {
            assert!(!is_non_printing(c), "{c:?}");
        }
    }

    #[test]
    fn printable_escapes_what_a_terminal_would_obey() {
        let attack = "linux\u{1b}[1A\r\u{1b}[83C\u{1b}[Koperator.read";
        let shown = printable(attack);
        assert!(!shown.chars().any(is_non_printing), "{shown}");
        assert_eq!(shown, "linux\\u{1b}[1A\\u{d}\\u{1b}[83C\\u{1b}[Koperator.read");
        assert!(matches!(printable("macOS 15"), Cow::Borrowed(_)));
        assert_eq!(first_non_printing("ab\u{202e}c"), Some((2, '\u{202e}')));
    }

    #[test]
    fn printable_json_stays_the_same_json() {
        let v = serde_json::json!({"platform": "a\u{202e}b\u{9b}c\u{e0041}", "n": 1});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let shown = printable_json(&text);
        assert!(!shown.chars().any(is_non_printing_beyond_json), "{shown}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).unwrap(), v);
    }
}
