//! STUB (replaced by the parser module).
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
}
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Invalid(String),
}
pub fn is_supported(name: &str) -> bool {
    name.ends_with(".txt") || name.ends_with(".md") || name.ends_with(".csv")
}
pub fn extract(_name: &str, bytes: &[u8]) -> Result<Extracted, ParseError> {
    Ok(Extracted {
        text: String::from_utf8_lossy(bytes).into_owned(),
        title: None,
    })
}
pub fn qa_rows(_name: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    if rows.is_empty() {
        return Err(ParseError::Invalid("no rows".into()));
    }
    Ok(rows)
}
