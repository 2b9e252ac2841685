//! Plain text decoding, csv and json.

use super::{MAX_TEXT_CHARS, ParseError, invalid, too_much_text};
use encoding_rs::{Encoding, GB18030};

/// Decodes text bytes: a BOM (UTF-8, UTF-16 LE/BE) wins; else UTF-8; else GB18030 when the
/// bytes are valid GB18030 (common for Chinese files); else lossy UTF-8.
pub(crate) fn decode_text(bytes: &[u8]) -> String {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let rest = bytes.get(bom_len..).unwrap_or_default();
        return encoding.decode_without_bom_handling(rest).0.into_owned();
    }
    decode_no_bom(bytes, None)
}

/// Decodes bytes without a BOM, trying the named charset first (when known).
pub(crate) fn decode_no_bom(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(encoding) = charset.and_then(|label| Encoding::for_label(label.trim().as_bytes()))
        && encoding != encoding_rs::UTF_8
    {
        return encoding.decode_without_bom_handling(bytes).0.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let (decoded, had_errors) = GB18030.decode_without_bom_handling(bytes);
            if had_errors {
                String::from_utf8_lossy(bytes).into_owned()
            } else {
                decoded.into_owned()
            }
        }
    }
}

/// Refuses text that looks like binary data: more than 10% of its characters are
/// replacement characters or control characters other than tab, line feed, carriage return
/// and form feed.
pub(crate) fn check_textual(text: &str) -> Result<(), ParseError> {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\u{fffd}' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}')) {
            bad += 1;
        }
    }
    if bad > 0 && bad * 10 > total {
        return Err(invalid(
            "the file does not contain text (it looks like binary data)",
        ));
    }
    Ok(())
}

/// Picks the csv delimiter from the first non-empty line: the most frequent of `,` `;` tab.
fn sniff_delimiter(text: &str) -> char {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let count = |d: char| first.chars().filter(|c| *c == d).count();
    let (comma, semi, tab) = (count(','), count(';'), count('\t'));
    if tab > comma && tab >= semi {
        '\t'
    } else if semi > comma {
        ';'
    } else {
        ','
    }
}

/// Parses csv (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes) into rows of
/// trimmed cells.
pub(crate) fn csv_records(text: &str) -> Vec<Vec<String>> {
    let delimiter = sniff_delimiter(text);
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut field_started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if !field_started => {
                in_quotes = true;
                field_started = true;
            }
            c if c == delimiter => {
                row.push(field.trim().to_owned());
                field.clear();
                field_started = false;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                row.push(field.trim().to_owned());
                field.clear();
                field_started = false;
                rows.push(std::mem::take(&mut row));
            }
            ' ' | '\t' if !field_started => field.push(c),
            c => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if field_started || !field.trim().is_empty() || !row.is_empty() {
        row.push(field.trim().to_owned());
        rows.push(row);
    }
    rows
}

/// Csv as text: one line per non-empty row, cells joined with " | ".
pub(crate) fn csv_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for row in csv_records(text) {
        let last = row.iter().rposition(|c| !c.is_empty());
        let Some(last) = last else { continue };
        let cells: Vec<&str> = row.iter().take(last + 1).map(|c| c.as_str()).collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out
}

/// Csv rows as sparse (column, value) lists of the non-empty cells, for QA import.
pub(crate) fn csv_rows_sparse(text: &str) -> Vec<Vec<(u32, String)>> {
    csv_records(text)
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .map(|(i, v)| (u32::try_from(i).unwrap_or(u32::MAX), v))
                .collect()
        })
        .collect()
}

/// Json as `path: value` lines, one per text leaf (strings, numbers, booleans; nulls dropped).
pub(crate) fn json_text(text: &str) -> Result<String, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| invalid(format!("the file is not valid JSON: {e}")))?;
    let mut out = String::new();
    let mut path = String::new();
    json_walk(&value, &mut path, &mut out)?;
    Ok(out)
}

fn json_walk(
    value: &serde_json::Value,
    path: &mut String,
    out: &mut String,
) -> Result<(), ParseError> {
    use serde_json::Value;
    if out.len() > MAX_TEXT_CHARS.saturating_mul(4) {
        return Err(too_much_text());
    }
    let leaf = |path: &str, v: &str, out: &mut String| {
        if !path.is_empty() {
            out.push_str(path);
            out.push_str(": ");
        }
        out.push_str(v);
        out.push('\n');
    };
    match value {
        Value::Null => {}
        Value::Bool(b) => leaf(path, if *b { "true" } else { "false" }, out),
        Value::Number(n) => leaf(path, &n.to_string(), out),
        Value::String(s) => leaf(path, s, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                json_walk(item, path, out)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                json_walk(item, path, out)?;
                path.truncate(len);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_boms_and_fallbacks() {
        assert_eq!(decode_text(b"\xef\xbb\xbfhi"), "hi");
        assert_eq!(decode_text(b"\xff\xfeh\x00i\x00"), "hi");
        assert_eq!(decode_text(b"\xfe\xff\x00h\x00i"), "hi");
        assert_eq!(decode_text("héllo 你好".as_bytes()), "héllo 你好");
        // "你好" in GBK
        assert_eq!(decode_text(b"\xc4\xe3\xba\xc3"), "你好");
        // Latin-1 "café " is not valid GB18030 either: lossy
        assert_eq!(decode_text(b"caf\xe9 au lait"), "caf\u{fffd} au lait");
    }

    #[test]
    fn binary_is_refused() {
        assert!(check_textual("plain text\twith tabs\r\n").is_ok());
        assert!(check_textual("\u{0}\u{1}\u{2}abc").is_err());
    }

    #[test]
    fn csv_quotes_and_delimiters() {
        let rows = csv_records("a,\"b, \"\"quoted\"\"\",c\r\n\"multi\nline\",x\n\n");
        assert_eq!(
            rows,
            vec![
                vec!["a".to_owned(), "b, \"quoted\"".to_owned(), "c".to_owned()],
                vec!["multi\nline".to_owned(), "x".to_owned()],
                vec![String::new()],
            ]
        );
        assert_eq!(csv_text("x;y;z\n1;2;3"), "x | y | z\n1 | 2 | 3\n");
        assert_eq!(csv_text("x\ty\n1\t2\n"), "x | y\n1 | 2\n");
    }

    #[test]
    fn json_leaves() {
        let text = json_text(r#"{"a":{"b":[1,"two",null,true]},"c":"d"}"#).unwrap();
        assert_eq!(text, "a.b[0]: 1\na.b[1]: two\na.b[3]: true\nc: d\n");
        assert!(json_text("{not json").is_err());
    }
}
