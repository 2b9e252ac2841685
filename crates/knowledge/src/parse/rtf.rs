//! RTF: control words and non-text groups are dropped, text kept; `\'hh` bytes are decoded in
//! the document code page (`\ansicpg`), `\uN` as Unicode.

use super::{ParseError, invalid};
use encoding_rs::{Encoding, WINDOWS_1252};

const MAX_DEPTH: usize = 10_000;

/// Destinations whose content is not document text.
const SKIP: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "mmathPr",
    "fldinst",
    "header",
    "headerl",
    "headerr",
    "headerf",
    "footer",
    "footerl",
    "footerr",
    "footerf",
    "bkmkstart",
    "bkmkend",
    "filetbl",
    "revtbl",
    "listtext",
    "pntext",
    "pntxta",
    "pntxtb",
    "nonshppict",
    "shpinst",
    "wgrffmtfilter",
    "pgdsctbl",
    "operator",
    "author",
    "company",
    "title",
    "subject",
];

fn codepage(cp: i32) -> &'static Encoding {
    let label = match cp {
        65001 => "utf-8".to_owned(),
        936 => "gbk".to_owned(),
        54936 => "gb18030".to_owned(),
        950 => "big5".to_owned(),
        932 => "shift_jis".to_owned(),
        949 => "euc-kr".to_owned(),
        10000 => "macintosh".to_owned(),
        20866 => "koi8-r".to_owned(),
        874 | 1250..=1258 => format!("windows-{cp}"),
        _ => "windows-1252".to_owned(),
    };
    Encoding::for_label(label.as_bytes()).unwrap_or(WINDOWS_1252)
}

#[derive(Clone, Copy)]
struct Group {
    skip: bool,
    uc: usize,
}

struct Out {
    text: String,
    bytes: Vec<u8>,
    encoding: &'static Encoding,
    high_surrogate: Option<u16>,
}

impl Out {
    fn flush(&mut self) {
        if !self.bytes.is_empty() {
            let decoded = self
                .encoding
                .decode_without_bom_handling(&self.bytes)
                .0
                .into_owned();
            self.text.push_str(&decoded);
            self.bytes.clear();
        }
    }
    fn push_str(&mut self, s: &str) {
        self.flush();
        self.text.push_str(s);
    }
    fn push_unicode(&mut self, n: i32) {
        self.flush();
        let unit = if n < 0 { n + 65536 } else { n };
        let Ok(unit) = u16::try_from(unit) else {
            return;
        };
        if (0xD800..0xDC00).contains(&unit) {
            self.high_surrogate = Some(unit);
            return;
        }
        let units: Vec<u16> = match self.high_surrogate.take() {
            Some(high) if (0xDC00..0xE000).contains(&unit) => vec![high, unit],
            _ => vec![unit],
        };
        self.text.push_str(&String::from_utf16_lossy(&units));
    }
}

/// Extracts the text of an RTF document.
pub(crate) fn rtf_text(bytes: &[u8]) -> Result<String, ParseError> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    if !bytes
        .get(start..)
        .unwrap_or_default()
        .starts_with(b"{\\rtf")
    {
        return Err(invalid("the file is not an RTF document"));
    }
    let mut out = Out {
        text: String::new(),
        bytes: Vec::new(),
        encoding: WINDOWS_1252,
        high_surrogate: None,
    };
    let mut stack: Vec<Group> = Vec::new();
    let mut state = Group { skip: false, uc: 1 };
    // Fallback characters still to skip after a \uN.
    let mut fallback = 0usize;
    // Whether the previous token opened a group (a destination word may follow).
    let mut group_start = false;
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(invalid("the RTF document is nested too deeply"));
                }
                stack.push(state);
                fallback = 0;
                group_start = true;
                i += 1;
                continue;
            }
            b'}' => {
                state = stack.pop().unwrap_or(state);
                fallback = 0;
                i += 1;
            }
            b'\\' => {
                let next = bytes.get(i + 1).copied().unwrap_or(b' ');
                if next.is_ascii_alphabetic() {
                    let word_start = i + 1;
                    let mut j = word_start;
                    while bytes.get(j).is_some_and(u8::is_ascii_alphabetic) && j - word_start < 32 {
                        j += 1;
                    }
                    let word = std::str::from_utf8(bytes.get(word_start..j).unwrap_or_default())
                        .unwrap_or_default();
                    let num_start = j;
                    if bytes.get(j) == Some(&b'-') {
                        j += 1;
                    }
                    while bytes.get(j).is_some_and(u8::is_ascii_digit) && j - num_start < 11 {
                        j += 1;
                    }
                    let param: Option<i32> =
                        std::str::from_utf8(bytes.get(num_start..j).unwrap_or_default())
                            .ok()
                            .and_then(|s| s.parse().ok());
                    if bytes.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    i = j;
                    if group_start && SKIP.contains(&word) {
                        state.skip = true;
                    }
                    group_start = false;
                    if word == "bin" {
                        let n = usize::try_from(param.unwrap_or(0).max(0)).unwrap_or(0);
                        i = i.saturating_add(n);
                        continue;
                    }
                    if word == "ansicpg" {
                        out.flush();
                        out.encoding = codepage(param.unwrap_or(1252));
                        continue;
                    }
                    if word == "uc" {
                        state.uc = usize::try_from(param.unwrap_or(1).clamp(0, 16)).unwrap_or(1);
                        continue;
                    }
                    if state.skip {
                        continue;
                    }
                    if word == "u" {
                        if let Some(n) = param {
                            out.push_unicode(n);
                            fallback = state.uc;
                        }
                        continue;
                    }
                    fallback = 0;
                    let text = match word {
                        "par" | "line" | "row" | "sect" | "page" => "\n",
                        "tab" => "\t",
                        "cell" => " | ",
                        "emdash" => "—",
                        "endash" => "–",
                        "bullet" => "•",
                        "lquote" => "‘",
                        "rquote" => "’",
                        "ldblquote" => "“",
                        "rdblquote" => "”",
                        "emspace" | "enspace" | "qmspace" => " ",
                        _ => "",
                    };
                    if !text.is_empty() {
                        out.push_str(text);
                    }
                    continue;
                }
                // Control symbols.
                i += 2;
                match next {
                    b'*' => {
                        if group_start {
                            state.skip = true;
                        }
                        continue;
                    }
                    b'\'' => {
                        let h = bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
                        let l = bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16));
                        if let (Some(h), Some(l)) = (h, l) {
                            i += 2;
                            if fallback > 0 {
                                fallback -= 1;
                            } else if !state.skip {
                                out.bytes.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                            }
                        }
                    }
                    _ if state.skip => {}
                    b'\\' | b'{' | b'}' => {
                        if fallback > 0 {
                            fallback -= 1;
                        } else {
                            out.push_str(&char::from(next).to_string());
                        }
                    }
                    b'~' => out.push_str(" "),
                    b'_' => out.push_str("-"),
                    b'\r' | b'\n' => out.push_str("\n"),
                    _ => {}
                }
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                i += 1;
                if fallback > 0 {
                    fallback -= 1;
                } else if !state.skip {
                    out.bytes.push(b);
                }
            }
        }
        group_start = false;
    }
    out.flush();
    Ok(out.text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_and_destinations() {
        let rtf = br"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}{\colortbl;\red0\green0\blue0;}
{\info{\title Secret title}}{\*\generator Foo;}\f0\fs24 Caf\'e9 costs 5\u8364? today.\par
Line \{two\} \\ end\tab x\line {\b bold} text\u20320\'3f\u22909?\par}";
        let text = rtf_text(rtf).unwrap();
        assert_eq!(
            text,
            "Café costs 5€ today.\nLine {two} \\ end\tx\nbold text你好\n"
        );
    }

    #[test]
    fn code_page_and_garbage() {
        let text = rtf_text(br"{\rtf1\ansi\ansicpg936 \'c4\'e3\'ba\'c3}").unwrap();
        assert_eq!(text, "你好");
        assert!(rtf_text(b"not rtf").is_err());
        assert!(rtf_text(b"{\\rtf1 \\u").is_ok());
        assert!(rtf_text(b"{\\rtf1 \\'").is_ok());
    }
}
