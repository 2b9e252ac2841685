//! Chunk splitting for retrieval: a punctuation-aware recursive splitter with overlap.

/// One piece of a split text. `start`/`end` are character offsets (not bytes) into the input,
/// `end` exclusive, and `text` is exactly the input's characters `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Boundary levels, most preferred first.
const PARAGRAPH: usize = 0;
const LINE: usize = 1;
const SENTENCE: usize = 2;
const CLAUSE: usize = 3;
const WORD: usize = 4;
const ANY: usize = 5;

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '；' | '…')
}

fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '”' | '’' | '」' | '』' | '）' | ')' | ']' | '》' | '】'
    )
}

fn is_clause(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '，' | '、' | '：')
}

/// The ends of the segments of `chars[start..end]` cut at the boundaries of `level`; each cut
/// is placed after the boundary (the separator stays with the text before it). The last end is
/// always `end`.
fn cuts(chars: &[char], start: usize, end: usize, level: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let at = |i: usize| chars.get(i).copied().unwrap_or(' ');
    let mut i = start;
    while i < end {
        let c = at(i);
        let cut = match level {
            PARAGRAPH if c == '\n' => {
                // A line break, optional blanks, and another line break: a blank line.
                let mut j = i + 1;
                while j < end && at(j).is_whitespace() && at(j) != '\n' {
                    j += 1;
                }
                if j < end && at(j) == '\n' {
                    let mut k = j + 1;
                    while k < end && at(k).is_whitespace() {
                        k += 1;
                    }
                    Some(k)
                } else {
                    None
                }
            }
            LINE if c == '\n' => Some(i + 1),
            SENTENCE if is_sentence_end(c) => {
                let mut j = i + 1;
                while j < end && (is_sentence_end(at(j)) || is_closing(at(j))) {
                    j += 1;
                }
                let ascii = c.is_ascii();
                if !ascii || j >= end || at(j).is_whitespace() {
                    while j < end && at(j).is_whitespace() {
                        j += 1;
                    }
                    Some(j)
                } else {
                    None
                }
            }
            CLAUSE if is_clause(c) => {
                let mut j = i + 1;
                while j < end && at(j).is_whitespace() {
                    j += 1;
                }
                Some(j)
            }
            WORD if c.is_whitespace() => {
                let mut j = i + 1;
                while j < end && at(j).is_whitespace() {
                    j += 1;
                }
                Some(j)
            }
            _ => None,
        };
        match cut {
            Some(j) if j < end => {
                out.push(j);
                i = j;
            }
            Some(_) => break,
            None => i += 1,
        }
    }
    out.push(end);
    out
}

/// Splits `chars[start..end]` into contiguous ranges of at most `limit` characters, preferring
/// the boundaries of `level` and packing small segments together.
fn split_rec(
    chars: &[char],
    start: usize,
    end: usize,
    level: usize,
    limit: usize,
    out: &mut Vec<(usize, usize)>,
) {
    if end - start <= limit {
        out.push((start, end));
        return;
    }
    if level >= ANY {
        let mut s = start;
        while s < end {
            let e = (s + limit).min(end);
            out.push((s, e));
            s = e;
        }
        return;
    }
    let ends = cuts(chars, start, end, level);
    if ends.len() == 1 {
        split_rec(chars, start, end, level + 1, limit, out);
        return;
    }
    let (mut cur_start, mut cur_end) = (start, start);
    let mut seg_start = start;
    for seg_end in ends {
        if seg_end - seg_start > limit {
            if cur_end > cur_start {
                out.push((cur_start, cur_end));
            }
            split_rec(chars, seg_start, seg_end, level + 1, limit, out);
            cur_start = seg_end;
        } else if seg_end - cur_start > limit {
            if cur_end > cur_start {
                out.push((cur_start, cur_end));
            }
            cur_start = seg_start;
        }
        cur_end = seg_end;
        seg_start = seg_end;
    }
    if cur_end > cur_start {
        out.push((cur_start, cur_end));
    }
}

/// Punctuation-aware recursive splitter: pieces of at most `max_chars` characters, preferring
/// boundaries in this order: blank lines (paragraphs), line breaks, sentence ends
/// (`. ! ?` before a space, and `。！？；`), clause marks (`, ; : ，、：`), whitespace, and finally
/// any character. Consecutive small units are packed together up to `max_chars`. `overlap`
/// characters of the previous piece's end are repeated at the start of the next (clamped below
/// `max_chars`; the overlap start moves forward to a word start when one is near). Whitespace
/// only pieces are dropped; pieces are trimmed and their offsets stay exact.
pub fn split(text: &str, max_chars: usize, overlap: usize) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let max_chars = max_chars.max(1);
    let overlap = overlap.min(max_chars - 1);
    // Each base range leaves room for the overlap prepended to it.
    let limit = max_chars - overlap;
    let mut ranges = Vec::new();
    if !chars.is_empty() {
        split_rec(&chars, 0, chars.len(), PARAGRAPH, limit, &mut ranges);
    }
    let mut pieces = Vec::with_capacity(ranges.len());
    let mut prev_end: Option<usize> = None;
    for (start, end) in ranges {
        let (mut s, mut e) = (start, end);
        while s < e && chars.get(s).is_some_and(|c| c.is_whitespace()) {
            s += 1;
        }
        while e > s && chars.get(e - 1).is_some_and(|c| c.is_whitespace()) {
            e -= 1;
        }
        if s == e {
            continue;
        }
        if let Some(prev) = prev_end.filter(|_| overlap > 0) {
            // Prepend up to `overlap` characters ending where the previous piece ended, keeping
            // the piece within max_chars.
            let take = overlap.min(prev);
            let mut o = (prev - take).max(e.saturating_sub(max_chars));
            // Start the overlap at a word start when one lies in its first half.
            let half = o + (prev.saturating_sub(o)) / 2;
            if o > 0
                && !chars.get(o - 1).is_some_and(|c| c.is_whitespace())
                && let Some(ws) =
                    (o..half).find(|i| chars.get(*i).is_some_and(|c| c.is_whitespace()))
            {
                o = ws + 1;
            }
            while o < s && chars.get(o).is_some_and(|c| c.is_whitespace()) {
                o += 1;
            }
            s = s.min(o);
        }
        prev_end = Some(e);
        pieces.push(Piece {
            start: s,
            end: e,
            text: chars.get(s..e).unwrap_or_default().iter().collect(),
        });
    }
    pieces
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(text: &str, max: usize, overlap: usize) -> Vec<Piece> {
        let chars: Vec<char> = text.chars().collect();
        let pieces = split(text, max, overlap);
        let mut covered_to = 0;
        for p in &pieces {
            assert!(p.start < p.end);
            assert!(
                p.end - p.start <= max,
                "{} chars > {max}: {:?}",
                p.end - p.start,
                p.text
            );
            assert_eq!(p.text, chars[p.start..p.end].iter().collect::<String>());
            assert_eq!(p.text, p.text.trim());
            assert!(p.end > covered_to || p.start < covered_to);
            covered_to = p.end;
        }
        // Every non-whitespace character is in some piece.
        for (i, c) in chars.iter().enumerate() {
            if !c.is_whitespace() {
                assert!(
                    pieces.iter().any(|p| p.start <= i && i < p.end),
                    "char {i} {c:?} lost"
                );
            }
        }
        pieces
    }

    #[test]
    fn empty_and_blank() {
        assert!(split("", 10, 0).is_empty());
        assert!(split(" \n\n \t", 10, 3).is_empty());
        assert!(split("abc", 0, 0).len() == 3);
    }

    #[test]
    fn small_text_is_one_piece() {
        let pieces = check("  Hello world.  ", 100, 10);
        assert_eq!(
            pieces,
            vec![Piece {
                start: 2,
                end: 14,
                text: "Hello world.".to_owned()
            }]
        );
    }

    #[test]
    fn prefers_paragraphs_then_sentences() {
        let text = "First paragraph is here.\n\nSecond one. It has two sentences.";
        let pieces = check(text, 40, 0);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "First paragraph is here.",
                "Second one. It has two sentences."
            ]
        );
        let pieces = check(text, 25, 0);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "First paragraph is here.",
                "Second one.",
                "It has two sentences."
            ]
        );
        // Decimal points are not sentence ends.
        let pieces = check("Pi is 3.14159 and e is 2.71828 roughly, ok", 20, 0);
        assert!(
            pieces.iter().all(|p| !p.text.starts_with("14159")),
            "{pieces:?}"
        );
    }

    #[test]
    fn packs_small_units() {
        let text = "a. b. c. d. e. f. g. h.";
        let pieces = check(text, 9, 0);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, vec!["a. b. c.", "d. e. f.", "g. h."]);
    }

    #[test]
    fn overlap_repeats_previous_end() {
        let text = "one two three four five six seven eight nine ten eleven twelve";
        let pieces = check(text, 20, 6);
        assert!(pieces.len() > 2);
        for pair in pieces.windows(2) {
            assert!(pair[1].start < pair[0].end, "{pair:?}");
            assert!(pair[1].start > pair[0].start);
        }
        let no_overlap = check(text, 20, 0);
        for pair in no_overlap.windows(2) {
            assert!(pair[1].start >= pair[0].end);
        }
        // Overlap at or above max is clamped.
        check(text, 5, 50);
    }

    #[test]
    fn cjk_without_spaces() {
        let text =
            "今天天气很好。我们去公园散步，然后吃午饭！你觉得怎么样？好的；没问题。".repeat(5);
        let pieces = check(&text, 16, 0);
        assert!(pieces.len() > 5);
        assert!(
            pieces
                .iter()
                .all(|p| p.text.ends_with(['。', '！', '？', '；', '，'])),
            "{pieces:?}"
        );
        check(&text, 16, 4);
        check(&text, 3, 1);
    }

    #[test]
    fn one_long_word() {
        let word = "x".repeat(100_000);
        let pieces = check(&word, 1000, 100);
        assert_eq!(pieces[0].start, 0);
        assert_eq!(pieces.last().unwrap().end, 100_000);
        assert!(pieces.len() >= 100);
    }

    #[test]
    fn multibyte_offsets_are_chars() {
        let text = "é€😀 abc. ".repeat(30);
        check(&text, 7, 2);
        check(&text, 1, 0);
    }
}
