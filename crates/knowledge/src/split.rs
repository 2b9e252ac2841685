//! STUB (replaced by the splitter).
pub struct Piece {
    pub start: usize,
    pub end: usize,
    pub text: String,
}
pub fn split(text: &str, max_chars: usize, _overlap: usize) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(max_chars.max(1))
        .enumerate()
        .map(|(i, c)| Piece {
            start: i * max_chars,
            end: i * max_chars + c.len(),
            text: c.iter().collect(),
        })
        .collect()
}
