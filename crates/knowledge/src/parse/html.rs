//! HTML to visible text: scripts, styles and the head are dropped, tags stripped, entities
//! decoded, block elements become line breaks; the title comes from `<title>`.

use super::text::decode_no_bom;
use encoding_rs::Encoding;
use std::borrow::Cow;

/// Decodes HTML bytes: BOM, else UTF-8, else the `<meta charset>` label, else the text fallback.
pub(crate) fn decode_html(bytes: &[u8]) -> String {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let rest = bytes.get(bom_len..).unwrap_or_default();
        return encoding.decode_without_bom_handling(rest).0.into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let head = bytes.get(..4096).unwrap_or(bytes).to_ascii_lowercase();
    let charset = find_bytes(&head, b"charset=", 0).map(|at| {
        let rest = head.get(at + 8..).unwrap_or_default();
        let rest = rest
            .strip_prefix(b"\"")
            .or_else(|| rest.strip_prefix(b"'"))
            .unwrap_or(rest);
        let end = rest
            .iter()
            .position(|b| matches!(b, b'"' | b'\'' | b';' | b'>' | b' ' | b'/'))
            .unwrap_or(rest.len());
        String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned()
    });
    decode_no_bom(bytes, charset.as_deref())
}

/// Finds `needle` in `hay` at or after `from`.
fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let tail = hay.get(from..)?;
    if needle.is_empty() || tail.len() < needle.len() {
        return None;
    }
    tail.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Finds `needle` (lower-case ASCII) in `hay` ignoring ASCII case, at or after `from`.
fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let tail = hay.get(from..)?;
    if needle.is_empty() || tail.len() < needle.len() {
        return None;
    }
    tail.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object",
];

/// Elements that start and end a line.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "html",
    "legend",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Elements separated from the previous paragraph by a blank line.
const PARAGRAPH: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
];

/// Converts HTML to text; returns the text and the `<title>`.
pub(crate) fn html_to_text(src: &str) -> (String, Option<String>) {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len() / 2);
    let mut title: Option<String> = None;
    let mut in_head = false;
    let mut pre_depth = 0usize;
    let mut i = 0usize;
    let mut text_start = 0usize;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'<') {
            i += 1;
            continue;
        }
        // Flush the text before this '<'.
        if !in_head {
            push_text(
                &mut out,
                src.get(text_start..i).unwrap_or_default(),
                pre_depth > 0,
            );
        }
        let next = bytes.get(i + 1).copied().unwrap_or(0);
        if src.get(i..).is_some_and(|s| s.starts_with("<!--")) {
            i = find_bytes(bytes, b"-->", i + 4).map_or(bytes.len(), |p| p + 3);
            text_start = i;
            continue;
        }
        if next == b'!' || next == b'?' {
            i = find_bytes(bytes, b">", i).map_or(bytes.len(), |p| p + 1);
            text_start = i;
            continue;
        }
        let closing = next == b'/';
        let name_start = if closing { i + 2 } else { i + 1 };
        let name_len = bytes
            .get(name_start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b':')
            .count();
        if name_len == 0 || !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // A lone '<' is text.
            text_start = i;
            i += 1;
            continue;
        }
        let name = src
            .get(name_start..name_start + name_len)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let tag_end = tag_end(bytes, name_start + name_len);
        i = tag_end;
        text_start = i;
        let name = name.as_str();
        if !closing {
            if HIDDEN.contains(&name) || name == "title" {
                let close = format!("</{name}");
                let content_end = find_ci(bytes, close.as_bytes(), i).unwrap_or(bytes.len());
                if name == "title" && title.is_none() {
                    let raw = src.get(i..content_end).unwrap_or_default();
                    let t = collapse_ws(&decode_entities(raw));
                    if !t.is_empty() {
                        title = Some(t);
                    }
                }
                i = if content_end >= bytes.len() {
                    bytes.len()
                } else {
                    tag_end_after(bytes, content_end)
                };
                text_start = i;
                continue;
            }
            match name {
                "head" => in_head = true,
                "br" => newline(&mut out),
                "td" | "th" if !out.is_empty() && !out.ends_with('\n') => {
                    trim_end_spaces(&mut out);
                    out.push_str(" | ");
                }
                _ => {}
            }
            if BLOCK.contains(&name) {
                in_head = false;
                if name == "pre" {
                    pre_depth += 1;
                }
                if PARAGRAPH.contains(&name) {
                    blank_line(&mut out);
                } else {
                    newline(&mut out);
                }
            }
        } else {
            if name == "head" {
                in_head = false;
            }
            if name == "pre" {
                pre_depth = pre_depth.saturating_sub(1);
            }
            if BLOCK.contains(&name) {
                if PARAGRAPH.contains(&name) {
                    blank_line(&mut out);
                } else {
                    newline(&mut out);
                }
            }
        }
    }
    if !in_head {
        push_text(
            &mut out,
            src.get(text_start..).unwrap_or_default(),
            pre_depth > 0,
        );
    }
    (out, title)
}

/// The index just after the `>` closing a tag whose name ends at `from` (quotes respected).
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut j = from;
    while let Some(&b) = bytes.get(j) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return j + 1,
            None => {}
        }
        j += 1;
    }
    bytes.len()
}

/// The index just after the next `>` at or after `from`.
fn tag_end_after(bytes: &[u8], from: usize) -> usize {
    find_bytes(bytes, b">", from).map_or(bytes.len(), |p| p + 1)
}

fn trim_end_spaces(out: &mut String) {
    let len = out.trim_end_matches([' ', '\t']).len();
    out.truncate(len);
}

fn newline(out: &mut String) {
    trim_end_spaces(out);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn blank_line(out: &mut String) {
    newline(out);
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

fn push_text(out: &mut String, raw: &str, pre: bool) {
    if raw.is_empty() {
        return;
    }
    let decoded = decode_entities(raw);
    if pre {
        out.push_str(&decoded);
        return;
    }
    let mut last_space = out.is_empty() || out.ends_with([' ', '\n']);
    for c in decoded.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(if c == '\u{a0}' { ' ' } else { c });
            last_space = false;
        }
    }
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes HTML character references: the common named ones and all numeric ones. Unknown
/// references are kept as written.
pub(crate) fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after
            .char_indices()
            .take(33)
            .find(|(_, c)| *c == ';')
            .map(|(p, _)| p);
        let decoded = semi.and_then(|p| after.get(..p)).and_then(entity);
        match (decoded, semi) {
            (Some(c), Some(p)) => {
                if c != '\u{200b}' {
                    out.push(c);
                }
                rest = after.get(p + 1..).unwrap_or_default();
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        return Some(
            char::from_u32(code)
                .filter(|c| *c != '\0')
                .unwrap_or('\u{fffd}'),
        );
    }
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwj" | "zwnj" => '\u{200b}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "aacute" => 'á',
        "ccedil" => 'ç',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_only() {
        let html = "<!DOCTYPE html><html><head><title>My &amp; Page</title>\
            <style>body { color: red; }</style><script>var x = '<p>no</p>';</script>\
            <meta charset=\"utf-8\"></head><body><h1>Head&shy;line</h1>\
            <p>Fish &amp; chips &lt;b&gt; &quot;q&quot; &#39;s&#39; a&nbsp;b &#x4e2d;&#25991;</p>\
            <!-- hidden comment --><div>one<br>two</div><SCRIPT type=x>alert(1)</SCRIPT>\
            <table><tr><td>c1</td><td>c2</td></tr></table><p>x < y &unknown; end</p></body></html>";
        let (text, title) = html_to_text(html);
        assert_eq!(title.as_deref(), Some("My & Page"));
        assert!(
            text.contains("Fish & chips <b> \"q\" 's' a b 中文"),
            "{text}"
        );
        assert!(text.contains("one\ntwo"), "{text}");
        assert!(text.contains("c1 | c2"), "{text}");
        assert!(text.contains("x < y &unknown; end"), "{text}");
        for hidden in ["color", "alert", "var x", "hidden comment", "My & Page"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }

    #[test]
    fn meta_charset() {
        let mut bytes = b"<html><head><meta charset=\"gbk\"></head><body>".to_vec();
        bytes.extend_from_slice(b"\xc4\xe3\xba\xc3 \xca\xc0\xbd\xe7</body></html>");
        let (text, _) = html_to_text(&decode_html(&bytes));
        assert_eq!(text.trim(), "你好 世界");
    }

    #[test]
    fn unterminated_markup_does_not_panic() {
        for s in [
            "<",
            "<a",
            "<!--",
            "<script>",
            "<title>x",
            "&#xFFFFFFFF;",
            "&#0;",
            "<p attr='>",
        ] {
            let _ = html_to_text(s);
        }
    }
}
