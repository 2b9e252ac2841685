//! Spreadsheets (xlsx, xls) through calamine, and question/answer rows for QA imports.

use super::office::Zip;
use super::{MAX_TEXT_CHARS, ParseError, invalid, too_much_text};
use calamine::{Data, DataRef, ExcelDateTime, Reader, Xls, Xlsx};
use std::collections::BTreeMap;
use std::io::Cursor;

/// Sparse rows: per row, the (column, text) of its non-empty cells in column order.
pub(crate) type SparseRows = Vec<Vec<(u32, String)>>;

/// Largest number of cells an .xls sheet may span (rows x columns of its used area); calamine
/// allocates the whole rectangle.
const MAX_XLS_SHEET_CELLS: u64 = 4_000_000;

fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

fn date_text(d: &ExcelDateTime) -> String {
    if !d.is_datetime() {
        return float_text(d.as_f64());
    }
    let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
    if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{day:02}")
    } else {
        format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{s:02}")
    }
}

fn data_ref_text(d: &DataRef<'_>) -> String {
    match d {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => float_text(*f),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => {
            s.trim().to_owned()
        }
        DataRef::SharedString(s) => s.trim().to_owned(),
        DataRef::Bool(b) => b.to_string().to_uppercase(),
        DataRef::DateTime(d) => date_text(d),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

fn data_text(d: &Data) -> String {
    match d {
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.trim().to_owned(),
        Data::Bool(b) => b.to_string().to_uppercase(),
        Data::DateTime(d) => date_text(d),
        Data::Error(_) | Data::Empty => String::new(),
    }
}

fn open_xlsx(bytes: &[u8]) -> Result<Xlsx<Cursor<&[u8]>>, ParseError> {
    // calamine decompresses without limits: prove the archive is not a zip bomb first.
    Zip::open(bytes, "Excel (.xlsx)")?.check_all()?;
    Xlsx::new(Cursor::new(bytes)).map_err(|e| {
        invalid(format!(
            "the file is not a valid Excel (.xlsx) workbook: {e}"
        ))
    })
}

/// All non-empty cells of one xlsx sheet, streamed (no dense rectangle is allocated).
fn xlsx_sheet_rows(
    book: &mut Xlsx<Cursor<&[u8]>>,
    name: &str,
    budget: &mut usize,
) -> Result<SparseRows, ParseError> {
    let mut reader = book
        .worksheet_cells_reader(name)
        .map_err(|e| invalid(format!("cannot read sheet `{name}`: {e}")))?;
    let mut rows: BTreeMap<u32, Vec<(u32, String)>> = BTreeMap::new();
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| invalid(format!("cannot read sheet `{name}`: {e}")))?
    {
        let text = data_ref_text(cell.get_value());
        if text.is_empty() {
            continue;
        }
        *budget = budget
            .checked_sub(text.len() + 3)
            .ok_or_else(too_much_text)?;
        let (row, col) = cell.get_position();
        rows.entry(row).or_default().push((col, text));
    }
    Ok(rows
        .into_values()
        .map(|mut cells| {
            cells.sort_by_key(|(c, _)| *c);
            cells
        })
        .collect())
}

fn open_xls(bytes: &[u8]) -> Result<Xls<Cursor<&[u8]>>, ParseError> {
    super::cfb::check_xls_bounds(bytes, MAX_XLS_SHEET_CELLS)?;
    Xls::new(Cursor::new(bytes)).map_err(|e| {
        invalid(format!(
            "the file is not a valid Excel (.xls) workbook: {e}"
        ))
    })
}

fn xls_sheet_rows(
    book: &mut Xls<Cursor<&[u8]>>,
    name: &str,
    budget: &mut usize,
) -> Result<SparseRows, ParseError> {
    let range = book
        .worksheet_range(name)
        .map_err(|e| invalid(format!("cannot read sheet `{name}`: {e}")))?;
    let mut rows: BTreeMap<usize, Vec<(u32, String)>> = BTreeMap::new();
    for (row, col, value) in range.used_cells() {
        let text = data_text(value);
        if text.is_empty() {
            continue;
        }
        *budget = budget
            .checked_sub(text.len() + 3)
            .ok_or_else(too_much_text)?;
        rows.entry(row)
            .or_default()
            .push((u32::try_from(col).unwrap_or(u32::MAX), text));
    }
    Ok(rows.into_values().collect())
}

/// Renders sheets as text: rows as lines of cells joined with " | "; with several sheets each
/// starts with a `# name` line.
fn sheets_text(sheets: Vec<(String, SparseRows)>) -> String {
    let several = sheets.iter().filter(|(_, rows)| !rows.is_empty()).count() > 1;
    let mut out = String::new();
    for (name, rows) in sheets {
        if rows.is_empty() {
            continue;
        }
        if several {
            out.push_str("# ");
            out.push_str(&name);
            out.push('\n');
        }
        for row in rows {
            let cells: Vec<&str> = row.iter().map(|(_, v)| v.as_str()).collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Every sheet of an xlsx workbook as text.
pub(crate) fn xlsx_text(bytes: &[u8]) -> Result<String, ParseError> {
    let mut book = open_xlsx(bytes)?;
    let mut budget = MAX_TEXT_CHARS.saturating_mul(4);
    let mut sheets = Vec::new();
    for name in book.sheet_names() {
        let rows = xlsx_sheet_rows(&mut book, &name, &mut budget)?;
        sheets.push((name, rows));
    }
    Ok(sheets_text(sheets))
}

/// Every sheet of an xls workbook as text.
pub(crate) fn xls_text(bytes: &[u8]) -> Result<String, ParseError> {
    let mut book = open_xls(bytes)?;
    let mut budget = MAX_TEXT_CHARS.saturating_mul(4);
    let mut sheets = Vec::new();
    for name in book.sheet_names() {
        let rows = xls_sheet_rows(&mut book, &name, &mut budget)?;
        sheets.push((name, rows));
    }
    Ok(sheets_text(sheets))
}

pub(crate) fn xlsx_first_sheet_rows(bytes: &[u8]) -> Result<SparseRows, ParseError> {
    let mut book = open_xlsx(bytes)?;
    let name = book
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| invalid("the workbook has no sheets"))?;
    xlsx_sheet_rows(&mut book, &name, &mut MAX_TEXT_CHARS.saturating_mul(4))
}

pub(crate) fn xls_first_sheet_rows(bytes: &[u8]) -> Result<SparseRows, ParseError> {
    let mut book = open_xls(bytes)?;
    let name = book
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| invalid("the workbook has no sheets"))?;
    xls_sheet_rows(&mut book, &name, &mut MAX_TEXT_CHARS.saturating_mul(4))
}

fn is_header_word(cell: &str) -> bool {
    let word = cell
        .trim()
        .trim_end_matches([':', '：'])
        .trim()
        .to_lowercase();
    matches!(
        word.as_str(),
        "q" | "a"
            | "question"
            | "questions"
            | "answer"
            | "answers"
            | "query"
            | "reply"
            | "response"
            | "问题"
            | "答案"
            | "问"
            | "答"
            | "提问"
            | "回答"
            | "答复"
            | "回复"
            | "标准问题"
            | "问句"
            | "标准答案"
    )
}

/// Question/answer pairs from sparse rows: the first two non-empty columns, a header row
/// skipped, incomplete rows skipped.
pub(crate) fn qa_from_rows(rows: SparseRows) -> Result<Vec<(String, String)>, ParseError> {
    let rows: Vec<Vec<(u32, String)>> = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|row| !row.is_empty())
        .collect();
    if !rows.iter().take(10).any(|row| row.len() >= 2) {
        return Err(invalid(
            "expected two columns (question and answer), but the first rows have fewer",
        ));
    }
    let mut columns: Vec<u32> = rows
        .iter()
        .flat_map(|row| row.iter().map(|(c, _)| *c))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let (Some(&q_col), Some(&a_col)) = (columns.first(), columns.get(1)) else {
        return Err(invalid("expected two columns (question and answer)"));
    };
    let cell = |row: &[(u32, String)], col: u32| {
        row.iter()
            .find(|(c, _)| *c == col)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let mut pairs = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let (q, a) = (cell(row, q_col), cell(row, a_col));
        if i == 0 && (is_header_word(&q) || is_header_word(&a)) {
            continue;
        }
        if !q.is_empty() && !a.is_empty() {
            pairs.push((q, a));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rows(v: &[&[(u32, &str)]]) -> SparseRows {
        v.iter()
            .map(|r| r.iter().map(|(c, s)| (*c, (*s).to_owned())).collect())
            .collect()
    }

    #[test]
    fn qa_columns_header_and_gaps() {
        let pairs = qa_from_rows(rows(&[
            &[],
            &[(1, "问题"), (2, "答案")],
            &[(1, "What?"), (2, "That.")],
            &[(1, "Only a question")],
            &[(2, "Only an answer")],
            &[(1, "Why?"), (2, "Because."), (3, "extra")],
        ]))
        .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("What?".to_owned(), "That.".to_owned()),
                ("Why?".to_owned(), "Because.".to_owned())
            ]
        );
    }

    #[test]
    fn qa_needs_two_columns() {
        assert!(qa_from_rows(rows(&[&[(0, "a")], &[(0, "b")]])).is_err());
        assert!(qa_from_rows(Vec::new()).is_err());
    }

    #[test]
    fn number_formatting() {
        assert_eq!(float_text(3.0), "3");
        assert_eq!(float_text(2.5), "2.5");
    }
}
