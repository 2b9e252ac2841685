//! E-mail messages (RFC 822 / MIME): headers, multipart bodies, quoted-printable and base64
//! transfer encodings, RFC 2047 encoded words and charsets.

use super::html::html_to_text;
use super::text::{check_textual, decode_no_bom};
use super::{Extracted, ParseError, invalid};

const MAX_DEPTH: usize = 16;

struct Part<'a> {
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl Part<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a message or body part into unfolded headers and the body.
fn split_part(raw: &[u8]) -> Part<'_> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let end = raw
            .get(at..)
            .and_then(|r| r.iter().position(|b| *b == b'\n'))
            .map_or(raw.len(), |p| at + p);
        let line = raw.get(at..end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let next = (end + 1).min(raw.len());
        if line.is_empty() {
            at = next;
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            && let Some((_, value)) = headers.last_mut()
        {
            value.push_str(&text);
            at = next;
            continue;
        }
        match text.split_once(':') {
            Some((name, value))
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
            {
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
            // Not a header line: the body starts here (no blank line).
            _ => break,
        }
        at = next;
    }
    Part {
        headers,
        body: raw.get(at..).unwrap_or_default(),
    }
}

/// Content type (lower case) and its parameters (names lower case, values unquoted).
fn content_type(value: Option<&str>) -> (String, Vec<(String, String)>) {
    let value = value.unwrap_or("text/plain");
    let mut parts = split_params(value).into_iter();
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((
                k.trim().trim_end_matches('*').to_ascii_lowercase(),
                v.to_owned(),
            ))
        })
        .collect();
    (
        if mime.is_empty() {
            "text/plain".to_owned()
        } else {
            mime
        },
        params,
    )
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes base64, skipping characters outside the alphabet (line breaks) and stopping at `=`.
pub(crate) fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    out
}

/// Decodes quoted-printable: `=XX` escapes and soft line breaks; a stray `=` is kept.
pub(crate) fn qp_decode(input: &[u8], underscore_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0usize;
    while let Some(&b) = input.get(i) {
        if b == b'=' {
            let (h, l) = (input.get(i + 1).copied(), input.get(i + 2).copied());
            if let (Some(h), Some(l)) = (h.and_then(hex), l.and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            // Soft line break: "=" then optional spaces then a line end.
            let mut j = i + 1;
            while matches!(input.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            match (input.get(j), input.get(j + 1)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i = j + 2;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i = j + 1;
                    continue;
                }
                (None, _) => break,
                _ => {}
            }
        }
        out.push(if underscore_is_space && b == b'_' {
            b' '
        } else {
            b
        });
        i += 1;
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`) in a header value; the whitespace
/// between two adjacent encoded words is dropped.
pub(crate) fn decode_header(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = rest.get(..start).unwrap_or_default();
        let after = rest.get(start + 2..).unwrap_or_default();
        // An encoded word is short (75 characters by RFC 2047): never search further than this.
        let mut window_end = after.len().min(512);
        while !after.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let window = after.get(..window_end).unwrap_or_default();
        let decoded = (|| {
            let (charset, after) = window.split_once('?')?;
            let (enc, after) = after.split_once('?')?;
            let end = after.find("?=")?;
            let text = after.get(..end)?;
            let bytes = match enc {
                "B" | "b" => base64_decode(text.as_bytes()),
                "Q" | "q" => qp_decode(text.as_bytes(), true),
                _ => return None,
            };
            let consumed = start + 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
            let charset = charset.split('*').next().unwrap_or(charset);
            Some((decode_no_bom(&bytes, Some(charset)), consumed))
        })();
        match decoded {
            Some((text, consumed)) => {
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = rest.get(consumed..).unwrap_or_default();
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = after;
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_body(part: &Part<'_>, charset: Option<&str>) -> String {
    let encoding = part
        .header("Content-Transfer-Encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64_decode(part.body),
        "quoted-printable" => qp_decode(part.body, false),
        _ => part.body.to_vec(),
    };
    decode_no_bom(&bytes, charset)
}

/// The body parts of a multipart body, split at the boundary lines.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut at = 0usize;
    while at < body.len() {
        let end = body
            .get(at..)
            .and_then(|r| r.iter().position(|b| *b == b'\n'))
            .map_or(body.len(), |p| at + p);
        let line = body.get(at..end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(delimiter) {
            if let Some(start) = current {
                // The line break before the delimiter belongs to the delimiter.
                let mut part_end = at;
                if body.get(..part_end).is_some_and(|b| b.ends_with(b"\n")) {
                    part_end -= 1;
                }
                if body.get(..part_end).is_some_and(|b| b.ends_with(b"\r")) {
                    part_end -= 1;
                }
                parts.push(body.get(start..part_end.max(start)).unwrap_or_default());
            }
            if rest.starts_with(b"--") {
                return parts;
            }
            current = Some((end + 1).min(body.len()));
        }
        at = end + 1;
    }
    if let Some(start) = current {
        parts.push(body.get(start..).unwrap_or_default());
    }
    parts
}

#[derive(Default)]
struct Bodies {
    plain: Vec<String>,
    html: Vec<String>,
}

fn collect(part: &Part<'_>, depth: usize, bodies: &mut Bodies) {
    if depth > MAX_DEPTH {
        return;
    }
    let attachment = part
        .header("Content-Disposition")
        .is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("attachment"));
    let (mime, params) = content_type(part.header("Content-Type"));
    if mime.starts_with("multipart/") {
        let Some(boundary) = param(&params, "boundary") else {
            return;
        };
        for raw in multipart_parts(part.body, boundary) {
            collect(&split_part(raw), depth + 1, bodies);
        }
        return;
    }
    if attachment {
        return;
    }
    let charset = param(&params, "charset");
    match mime.as_str() {
        "text/plain" => bodies.plain.push(decode_body(part, charset)),
        "text/html" => bodies
            .html
            .push(html_to_text(&decode_body(part, charset)).0),
        "message/rfc822" => {
            let inner = split_part(part.body);
            collect(&inner, depth + 1, bodies);
        }
        _ => {}
    }
}

/// An .eml message: Subject as title; From/To/Cc/Date/Subject lines, then the text/plain body
/// (or the text/html body as text when there is no plain part).
pub(crate) fn eml_text(bytes: &[u8]) -> Result<Extracted, ParseError> {
    let message = split_part(bytes);
    let known = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "mime-version",
        "content-type",
        "return-path",
        "cc",
    ];
    if !message
        .headers
        .iter()
        .any(|(n, _)| known.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(invalid(
            "the file is not an e-mail message (no message headers)",
        ));
    }
    let mut out = String::new();
    for name in ["From", "To", "Cc", "Date", "Subject"] {
        if let Some(value) = message.header(name) {
            let value = decode_header(value);
            if !value.trim().is_empty() {
                out.push_str(&format!("{name}: {}\n", value.trim()));
            }
        }
    }
    let title = message.header("Subject").map(decode_header);
    let mut bodies = Bodies::default();
    collect(&message, 0, &mut bodies);
    let body = if bodies.plain.iter().any(|b| !b.trim().is_empty()) {
        bodies.plain.join("\n\n")
    } else {
        bodies.html.join("\n\n")
    };
    check_textual(&body)?;
    out.push('\n');
    out.push_str(&body);
    Ok(Extracted { text: out, title })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(base64_decode(b"SGVs\r\nbG8="), b"Hello");
        assert_eq!(
            qp_decode(b"caf=C3=A9 =\r\nsoft=3D", false),
            "café soft=".as_bytes()
        );
        assert_eq!(
            decode_header("=?UTF-8?B?5L2g5aW9?= =?utf-8?Q?_caf=C3=A9?= plain"),
            "你好 café plain"
        );
        assert_eq!(decode_header("=?iso-8859-1?q?p=E9ch=E9?="), "péché");
        assert_eq!(decode_header("broken =?x"), "broken =?x");
        assert_eq!(decode_header("=?utf-8*en?q?hi?= there"), "hi there");
        // Many unterminated encoded-word starts: linear, not quadratic.
        let long = "=?a?b".repeat(50_000);
        assert!(decode_header(&long) == long);
    }

    #[test]
    fn html_only_message() {
        let eml = "Subject: Hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b></p>";
        let ex = eml_text(eml.as_bytes()).unwrap();
        assert_eq!(ex.title.as_deref(), Some("Hi"));
        assert!(ex.text.contains("Hello there"), "{}", ex.text);
    }
}
