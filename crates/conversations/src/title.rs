//! The title rule: the first message's text without control, skill or XML tags,
//! whitespace collapsed, cut at 50 characters with `...`.

const MAX_CHARS: usize = 50;

/// The title for a first message; `None` when nothing readable is left (the caller then uses
/// the localised "new conversation").
pub fn title_from(text: &str) -> Option<String> {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        plain.push_str(&rest[..start]);
        let after = &rest[start..];
        // A tag is `<name ...>` or `</name>`; a lone `<` is kept as text.
        match after.find('>') {
            Some(end)
                if after[1..end]
                    .trim_start_matches('/')
                    .starts_with(|c: char| c.is_ascii_alphabetic()) =>
            {
                plain.push(' ');
                rest = &after[end + 1..];
            }
            _ => {
                plain.push('<');
                rest = &after[1..];
            }
        }
    }
    plain.push_str(rest);
    let collapsed = plain
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if collapsed.is_empty() {
        return None;
    }
    if collapsed.chars().count() > MAX_CHARS {
        let cut: String = collapsed.chars().take(MAX_CHARS).collect();
        Some(format!("{cut}..."))
    } else {
        Some(collapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_dropped_whitespace_collapsed_and_long_text_cut() {
        assert_eq!(
            title_from("<enable_plan>true</enable_plan>  Hello\n\tworld").as_deref(),
            Some("true Hello world")
        );
        assert_eq!(title_from("a < b").as_deref(), Some("a < b"));
        assert_eq!(title_from(" <x/> ").as_deref(), None);
        let long = "word ".repeat(30);
        let t = title_from(&long).unwrap();
        assert!(t.ends_with("...") && t.chars().count() == 53, "{t}");
    }
}
