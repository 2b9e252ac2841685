//! Text extraction from uploaded documents (the first step of knowledge base ingestion).
//!
//! [`extract`] turns the bytes of one uploaded file into plain text, choosing the reader by the
//! file name's extension; [`qa_rows`] reads question/answer pairs from a spreadsheet for QA
//! knowledge bases. Every reader is bounded: inputs above a per-type size are refused, zip
//! entries are decompressed under a cap (zip bombs), the extracted text is capped, and a panic in
//! a third-party reader is caught and reported as [`ParseError::Invalid`].

mod cfb;
mod eml;
mod html;
mod office;
mod pdf;
mod rtf;
mod sheet;
mod text;
mod xml;

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Text pulled out of one uploaded document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("unsupported file type `.{0}`")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the file is larger than {0} bytes for its type")]
    TooLarge(u64),
}

/// Largest accepted PDF upload.
pub const MAX_PDF_BYTES: u64 = 50 * 1024 * 1024;
/// Largest accepted upload of any other type.
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
/// Longest extracted text, in characters; longer text is refused as [`ParseError::Invalid`].
pub const MAX_TEXT_CHARS: usize = 20_000_000;
/// Largest decompressed size of one zip entry (docx, pptx, xlsx).
pub(crate) const MAX_ZIP_ENTRY_BYTES: u64 = 64 * 1024 * 1024;
/// Largest decompressed size of all the zip entries read from one file.
pub(crate) const MAX_ZIP_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// Largest number of entries in a zip container.
pub(crate) const MAX_ZIP_ENTRIES: usize = 20_000;

const OLD_OFFICE: &str = "old binary .doc/.ppt files cannot be read; save as .docx/.pptx";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Html,
    Xml,
    Json,
    Csv,
    Eml,
    Docx,
    Pptx,
    Xlsx,
    Xls,
    Pdf,
    Rtf,
    OldOffice,
}

impl Kind {
    fn of(ext: &str) -> Option<Kind> {
        Some(match ext {
            "txt" | "md" | "markdown" => Kind::Text,
            "html" | "htm" => Kind::Html,
            "xml" => Kind::Xml,
            "json" => Kind::Json,
            "csv" => Kind::Csv,
            "eml" => Kind::Eml,
            "docx" => Kind::Docx,
            "pptx" => Kind::Pptx,
            "xlsx" => Kind::Xlsx,
            "xls" => Kind::Xls,
            "pdf" => Kind::Pdf,
            "rtf" => Kind::Rtf,
            "doc" | "ppt" => Kind::OldOffice,
            _ => return None,
        })
    }

    fn max_bytes(self) -> u64 {
        match self {
            Kind::Pdf => MAX_PDF_BYTES,
            _ => MAX_FILE_BYTES,
        }
    }
}

/// Lower-case extension of a file name ("" if none).
pub fn extension(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rfind('.') {
        Some(dot) if dot + 1 < base.len() => base
            .get(dot + 1..)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Whether uploads of this name are accepted at all.
pub fn is_supported(name: &str) -> bool {
    Kind::of(&extension(name)).is_some()
}

/// Extracts readable text from one uploaded file, choosing the reader by the name's extension.
///
/// Never panics; the input size, zip entry sizes and the extracted text are bounded. A document
/// without any readable text is [`ParseError::Invalid`].
pub fn extract(name: &str, bytes: &[u8]) -> Result<Extracted, ParseError> {
    let ext = extension(name);
    let kind = Kind::of(&ext).ok_or(ParseError::Unsupported(ext))?;
    let cap = kind.max_bytes();
    if bytes.len() as u64 > cap {
        return Err(ParseError::TooLarge(cap));
    }
    let raw = guarded(|| extract_kind(kind, bytes))?;
    finish(raw)
}

/// QA knowledge bases: rows of (question, answer) from csv / xlsx / xls.
///
/// Reads the first sheet; the first two non-empty columns are the question and the answer; a
/// first row that looks like a header ("question", "answer", "问题", "答案", ...) is skipped, and so
/// are rows missing either cell. Err(Invalid) when none of the first 10 non-empty rows has two
/// non-empty cells, or when the type is not csv/xlsx/xls.
pub fn qa_rows(name: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let ext = extension(name);
    let kind = match Kind::of(&ext) {
        Some(kind @ (Kind::Csv | Kind::Xlsx | Kind::Xls)) => kind,
        _ => {
            return Err(ParseError::Invalid(format!(
                "question/answer files must be .csv, .xlsx or .xls, not `.{ext}`"
            )));
        }
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ParseError::TooLarge(MAX_FILE_BYTES));
    }
    let rows = guarded(|| match kind {
        Kind::Csv => {
            let decoded = text::decode_text(bytes);
            text::check_textual(&decoded)?;
            Ok(text::csv_rows_sparse(&decoded))
        }
        Kind::Xlsx => sheet::xlsx_first_sheet_rows(bytes),
        _ => sheet::xls_first_sheet_rows(bytes),
    })?;
    sheet::qa_from_rows(rows)
}

/// Runs a reader, turning a panic inside it (a bug in a third-party parser) into `Invalid`.
fn guarded<T>(f: impl FnOnce() -> Result<T, ParseError>) -> Result<T, ParseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(invalid("the file is damaged or in an unexpected format")),
    }
}

fn extract_kind(kind: Kind, bytes: &[u8]) -> Result<Extracted, ParseError> {
    match kind {
        Kind::Text => {
            let decoded = text::decode_text(bytes);
            text::check_textual(&decoded)?;
            Ok(untitled(decoded))
        }
        Kind::Html => {
            let decoded = html::decode_html(bytes);
            text::check_textual(&decoded)?;
            let (text, title) = html::html_to_text(&decoded);
            Ok(Extracted { text, title })
        }
        Kind::Xml => {
            let decoded = text::decode_text(bytes);
            text::check_textual(&decoded)?;
            xml::xml_text(&decoded).map(untitled)
        }
        Kind::Json => {
            let decoded = text::decode_text(bytes);
            text::json_text(&decoded).map(untitled)
        }
        Kind::Csv => {
            let decoded = text::decode_text(bytes);
            text::check_textual(&decoded)?;
            Ok(untitled(text::csv_text(&decoded)))
        }
        Kind::Eml => eml::eml_text(bytes),
        Kind::Docx => office::docx_text(bytes),
        Kind::Pptx => office::pptx_text(bytes),
        Kind::Xlsx => sheet::xlsx_text(bytes).map(untitled),
        Kind::Xls => sheet::xls_text(bytes).map(untitled),
        Kind::Pdf => pdf::pdf_text(bytes).map(untitled),
        Kind::Rtf => rtf::rtf_text(bytes).map(untitled),
        Kind::OldOffice => Err(invalid(OLD_OFFICE)),
    }
}

fn untitled(text: String) -> Extracted {
    Extracted { text, title: None }
}

pub(crate) fn invalid(message: impl Into<String>) -> ParseError {
    ParseError::Invalid(message.into())
}

pub(crate) fn too_much_text() -> ParseError {
    invalid(format!(
        "the document holds more than {MAX_TEXT_CHARS} characters of text"
    ))
}

/// Normalises line ends and blank lines, drops control characters, enforces the text cap and
/// refuses documents without any text.
fn finish(raw: Extracted) -> Result<Extracted, ParseError> {
    let text = normalize(&raw.text);
    if text.is_empty() {
        return Err(invalid("no readable text was found in the document"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(too_much_text());
    }
    let title = raw
        .title
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty());
    Ok(Extracted { text, title })
}

fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0usize;
    let unified = raw.replace("\r\n", "\n").replace('\r', "\n");
    for line in unified.split('\n') {
        let cleaned: String = line
            .chars()
            .filter(|c| *c == '\t' || !c.is_control())
            .map(|c| if c == '\u{feff}' { ' ' } else { c })
            .collect();
        let cleaned = cleaned.trim_end();
        if cleaned.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(cleaned);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Pseudo-random garbage (xorshift), the same on every run.
    fn garbage(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    const W: &str = "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"";

    fn docx() -> Vec<u8> {
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document {W}><w:body>\
             <w:p><w:r><w:t>Hello</w:t></w:r><w:r><w:t xml:space=\"preserve\"> Word &amp; friends</w:t></w:r></w:p>\
             <w:p><w:r><w:t>Second</w:t><w:tab/><w:t>para</w:t><w:br/><w:t>graph</w:t></w:r></w:p>\
             <w:tbl><w:tr><w:tc><w:p><w:r><w:t>A1</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>B1</w:t></w:r></w:p></w:tc></w:tr></w:tbl>\
             <w:p><w:r><w:instrText>HYPERLINK x</w:instrText><w:t>中文</w:t></w:r></w:p></w:body></w:document>"
        );
        let core = "<?xml version=\"1.0\"?><cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
             xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>My Doc</dc:title><dc:creator>me</dc:creator></cp:coreProperties>";
        zip_of(&[
            ("word/document.xml", doc.as_bytes()),
            ("docProps/core.xml", core.as_bytes()),
        ])
    }

    fn slide(texts: &[&str]) -> String {
        let paras: String = texts
            .iter()
            .map(|t| format!("<a:p><a:r><a:t>{t}</a:t></a:r></a:p>"))
            .collect();
        format!(
            "<p:sld xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
             xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"><p:cSld><p:spTree><p:sp><p:txBody>{paras}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
        )
    }

    fn pptx() -> Vec<u8> {
        let (s1, s2, s10) = (
            slide(&["Title slide", "Sub"]),
            slide(&["Second"]),
            slide(&["Tenth"]),
        );
        zip_of(&[
            ("ppt/presentation.xml", b"<p:presentation xmlns:p=\"x\"/>"),
            ("ppt/slides/slide10.xml", s10.as_bytes()),
            ("ppt/slides/slide2.xml", s2.as_bytes()),
            ("ppt/slides/slide1.xml", s1.as_bytes()),
            ("ppt/slides/_rels/slide1.xml.rels", b"<Relationships/>"),
        ])
    }

    const SML: &str = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"";
    const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

    fn xlsx() -> Vec<u8> {
        let types = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
            <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
            <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
            <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
            <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
            <Override PartName=\"/xl/worksheets/sheet2.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
            <Override PartName=\"/xl/sharedStrings.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml\"/></Types>";
        let rels = format!(
            "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"{REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
        );
        let workbook = format!(
            "<?xml version=\"1.0\"?><workbook {SML} xmlns:r=\"{REL}\"><sheets>\
             <sheet name=\"QA\" sheetId=\"1\" r:id=\"rId1\"/><sheet name=\"Other\" sheetId=\"2\" r:id=\"rId2\"/></sheets></workbook>"
        );
        let wb_rels = format!(
            "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"{REL}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
             <Relationship Id=\"rId2\" Type=\"{REL}/worksheet\" Target=\"worksheets/sheet2.xml\"/>\
             <Relationship Id=\"rId3\" Type=\"{REL}/sharedStrings\" Target=\"sharedStrings.xml\"/></Relationships>"
        );
        let sst = format!(
            "<?xml version=\"1.0\"?><sst {SML} count=\"4\" uniqueCount=\"4\"><si><t>Question</t></si><si><t>Answer</t></si>\
             <si><t>What is RAG?</t></si><si><t>Retrieval &amp; generation</t></si></sst>"
        );
        let sheet1 = format!(
            "<?xml version=\"1.0\"?><worksheet {SML}><sheetData>\
             <row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\"><v>1</v></c></row>\
             <row r=\"2\"><c r=\"A2\" t=\"s\"><v>2</v></c><c r=\"B2\" t=\"s\"><v>3</v></c></row>\
             <row r=\"3\"><c r=\"A3\" t=\"inlineStr\"><is><t>How many?</t></is></c><c r=\"B3\"><v>42</v></c></row>\
             <row r=\"4\"><c r=\"A4\" t=\"inlineStr\"><is><t>No answer</t></is></c></row>\
             </sheetData></worksheet>"
        );
        let sheet2 = format!(
            "<?xml version=\"1.0\"?><worksheet {SML}><sheetData><row r=\"2\"><c r=\"C2\"><v>2.5</v></c></row></sheetData></worksheet>"
        );
        zip_of(&[
            ("[Content_Types].xml", types.as_bytes()),
            ("_rels/.rels", rels.as_bytes()),
            ("xl/workbook.xml", workbook.as_bytes()),
            ("xl/_rels/workbook.xml.rels", wb_rels.as_bytes()),
            ("xl/sharedStrings.xml", sst.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet1.as_bytes()),
            ("xl/worksheets/sheet2.xml", sheet2.as_bytes()),
        ])
    }

    fn record(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(data);
    }

    fn label(row: u16, col: u16, s: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [row, col, 0, u16::try_from(s.len()).unwrap()] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.push(0); // compressed (8-bit) characters
        d.extend_from_slice(s.as_bytes());
        d
    }

    fn number(row: u16, col: u16, v: f64) -> Vec<u8> {
        let mut d = Vec::new();
        for x in [row, col, 0] {
            d.extend_from_slice(&x.to_le_bytes());
        }
        d.extend_from_slice(&v.to_le_bytes());
        d
    }

    /// A BIFF8 workbook stream with one sheet, wrapped in a compound file (512-byte sectors:
    /// FAT, directory, then the stream padded to 4096 bytes so it is not in the mini stream).
    fn xls(cells: &[(u16, u16, &str)], num: Option<(u16, u16, f64)>) -> Vec<u8> {
        let bof = |dt: u16| {
            let mut d = vec![0x00, 0x06];
            d.extend_from_slice(&dt.to_le_bytes());
            d.extend_from_slice(&[0; 12]);
            d
        };
        let mut globals = Vec::new();
        record(&mut globals, 0x0809, &bof(0x0005));
        let name = b"Sheet1";
        let boundsheet_len = 4 + 4 + 2 + 2 + name.len();
        let sheet_pos = u32::try_from(globals.len() + boundsheet_len + 4).unwrap();
        let mut bs = sheet_pos.to_le_bytes().to_vec();
        bs.extend_from_slice(&[0, 0, u8::try_from(name.len()).unwrap(), 0]);
        bs.extend_from_slice(name);
        record(&mut globals, 0x0085, &bs);
        record(&mut globals, 0x000A, &[]);
        assert_eq!(globals.len(), sheet_pos as usize);
        let mut stream = globals;
        record(&mut stream, 0x0809, &bof(0x0010));
        for (r, c, s) in cells {
            record(&mut stream, 0x0204, &label(*r, *c, s));
        }
        if let Some((r, c, v)) = num {
            record(&mut stream, 0x0203, &number(r, c, v));
        }
        record(&mut stream, 0x000A, &[]);
        let stream_len = stream.len();
        stream.resize(stream_len.max(4096).div_ceil(512) * 512, 0);
        let n = stream.len() / 512;
        let mut out = vec![0u8; 512];
        out[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        let put16 =
            |o: &mut Vec<u8>, at: usize, v: u16| o[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |o: &mut Vec<u8>, at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut out, 0x18, 0x3E);
        put16(&mut out, 0x1A, 3);
        put16(&mut out, 0x1C, 0xFFFE);
        put16(&mut out, 0x1E, 9);
        put16(&mut out, 0x20, 6);
        put32(&mut out, 0x2C, 1); // FAT sectors
        put32(&mut out, 0x30, 1); // first directory sector
        put32(&mut out, 0x38, 4096);
        put32(&mut out, 0x3C, 0xFFFF_FFFE);
        put32(&mut out, 0x44, 0xFFFF_FFFE);
        for i in 0..109 {
            put32(&mut out, 0x4C + i * 4, if i == 0 { 0 } else { 0xFFFF_FFFF });
        }
        // FAT
        let mut fat = vec![0xFFFF_FFFFu32; 128];
        fat[0] = 0xFFFF_FFFD;
        fat[1] = 0xFFFF_FFFE;
        for i in 0..n {
            fat[2 + i] = if i + 1 == n {
                0xFFFF_FFFE
            } else {
                u32::try_from(3 + i).unwrap()
            };
        }
        for v in fat {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // Directory: root entry and the Workbook stream.
        let entry = |name: &str, kind: u8, child: u32, start: u32, size: u32| {
            let mut e = vec![0u8; 128];
            let units: Vec<u16> = name.encode_utf16().collect();
            for (i, u) in units.iter().enumerate() {
                e[i * 2..i * 2 + 2].copy_from_slice(&u.to_le_bytes());
            }
            e[0x40..0x42]
                .copy_from_slice(&u16::try_from((units.len() + 1) * 2).unwrap().to_le_bytes());
            e[0x42] = kind;
            e[0x43] = 1;
            e[0x44..0x48].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
            e[0x48..0x4C].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
            e[0x4C..0x50].copy_from_slice(&child.to_le_bytes());
            e[0x74..0x78].copy_from_slice(&start.to_le_bytes());
            e[0x78..0x7C].copy_from_slice(&size.to_le_bytes());
            e
        };
        out.extend(entry("Root Entry", 5, 1, 0xFFFF_FFFE, 0));
        out.extend(entry(
            "Workbook",
            2,
            0xFFFF_FFFF,
            2,
            u32::try_from(stream.len()).unwrap(),
        ));
        out.extend(vec![0u8; 256]);
        out.extend(stream);
        out
    }

    /// A one-page PDF showing `text`, with a correct xref table.
    fn pdf(text: &str) -> Vec<u8> {
        let content = format!("BT /F1 24 Tf 72 700 Td ({text}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        ];
        let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    fn eml() -> String {
        let html = b64(b"<p>HTML version</p>");
        let second = b64("Second part: 你好".as_bytes());
        let subject = b64("会议 notes".as_bytes());
        format!(
            "From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>\r\nTo: team@example.com\r\n\
             Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: =?UTF-8?B?{subject}?=\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\n\
             Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             Caf=C3=A9 at 10, soft=\r\n break.\r\n--inner\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{html}\r\n--inner--\r\n--outer\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{second}\r\n--outer\r\n\
             Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nU2VjcmV0IGF0dGFjaG1lbnQ=\r\n--outer--\r\n"
        )
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("Report.Final.PDF"), "pdf");
        assert_eq!(extension("dir.d/noext"), "");
        assert_eq!(extension("trailing."), "");
        assert_eq!(extension(".bashrc"), "bashrc");
        for ok in [
            "a.txt",
            "a.md",
            "a.markdown",
            "a.HTML",
            "a.htm",
            "a.xml",
            "a.json",
            "a.csv",
            "a.eml",
            "a.docx",
            "a.pptx",
            "a.xlsx",
            "a.xls",
            "a.pdf",
            "a.rtf",
            "a.doc",
            "a.ppt",
        ] {
            assert!(is_supported(ok), "{ok}");
        }
        assert!(!is_supported("a.exe"));
        assert!(!is_supported("noext"));
        assert!(matches!(extract("a.exe", b"x"), Err(ParseError::Unsupported(e)) if e == "exe"));
    }

    #[test]
    fn old_office_is_refused_with_advice() {
        let err = extract("old.doc", b"\xd0\xcf\x11\xe0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "old binary .doc/.ppt files cannot be read; save as .docx/.pptx"
        );
        assert!(matches!(
            extract("old.ppt", b""),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn size_caps() {
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(
            extract("a.txt", &big),
            Err(ParseError::TooLarge(MAX_FILE_BYTES))
        ));
        assert!(matches!(
            qa_rows("a.csv", &big),
            Err(ParseError::TooLarge(_))
        ));
        // A pdf may be larger (it then fails as not-a-pdf, not as too large).
        assert!(matches!(
            extract("a.pdf", &big),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn plain_text_and_markdown() {
        let ex = extract(
            "notes.md",
            "\u{feff}# Title\r\n\r\n\r\n\r\nBody  \r\nline".as_bytes(),
        )
        .unwrap();
        assert_eq!(ex.text, "# Title\n\nBody\nline");
        assert_eq!(ex.title, None);
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("héllo".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(extract("a.txt", &utf16).unwrap().text, "héllo");
        assert!(matches!(
            extract("a.txt", b"  \n\t"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn html_document() {
        let html = "<html><head><title>Doc &amp; Co</title><style>p{}</style><script>x()</script></head>\
                    <body><p>Hello&nbsp;<b>world</b> &lt;3 &#8364;&#x21;</p></body></html>";
        let ex = extract("page.htm", html.as_bytes()).unwrap();
        assert_eq!(ex.title.as_deref(), Some("Doc & Co"));
        assert_eq!(ex.text, "Hello world <3 €!");
    }

    #[test]
    fn xml_and_json_and_csv() {
        let ex = extract("d.xml", b"<a><b>one</b><c>two &amp; three</c></a>").unwrap();
        assert_eq!(ex.text, "one\ntwo & three");
        let ex = extract("d.json", br#"{"faq":[{"q":"Why?","a":"Because"}],"n":1}"#).unwrap();
        assert_eq!(ex.text, "faq[0].a: Because\nfaq[0].q: Why?\nn: 1");
        let ex = extract("d.csv", b"name,city\n\"Doe, J\",Paris\n\n,\n").unwrap();
        assert_eq!(ex.text, "name | city\nDoe, J | Paris");
    }

    #[test]
    fn eml_multipart() {
        let ex = extract("mail.eml", eml().as_bytes()).unwrap();
        assert_eq!(ex.title.as_deref(), Some("会议 notes"));
        assert_eq!(
            ex.text,
            "From: René <rene@example.com>\nTo: team@example.com\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\
             Subject: 会议 notes\n\nCafé at 10, soft break.\n\nSecond part: 你好"
        );
    }

    #[test]
    fn rtf_document() {
        let ex = extract(
            "a.rtf",
            br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\f0 Caf\'e9 \u8364? 5\par Next}",
        )
        .unwrap();
        assert_eq!(ex.text, "Café € 5\nNext");
    }

    #[test]
    fn docx_document() {
        let ex = extract("a.docx", &docx()).unwrap();
        assert_eq!(ex.title.as_deref(), Some("My Doc"));
        assert_eq!(
            ex.text,
            "Hello Word & friends\nSecond\tpara\ngraph\nA1 | B1\n中文"
        );
        // A zip without word/document.xml is not a Word document.
        let other = zip_of(&[("a.txt", b"x")]);
        assert!(matches!(
            extract("a.docx", &other),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn pptx_slides_in_number_order() {
        let ex = extract("deck.pptx", &pptx()).unwrap();
        assert_eq!(ex.text, "Title slide\nSub\n\nSecond\n\nTenth");
        assert_eq!(ex.title, None);
    }

    #[test]
    fn xlsx_all_sheets() {
        let ex = extract("book.xlsx", &xlsx()).unwrap();
        assert_eq!(
            ex.text,
            "# QA\nQuestion | Answer\nWhat is RAG? | Retrieval & generation\nHow many? | 42\nNo answer\n\n# Other\n2.5"
        );
    }

    #[test]
    fn xls_workbook() {
        let bytes = xls(
            &[
                (0, 0, "Question"),
                (0, 1, "Answer"),
                (1, 0, "Hi?"),
                (1, 1, "Hello"),
            ],
            Some((2, 1, 7.0)),
        );
        let ex = extract("old.xls", &bytes).unwrap();
        assert_eq!(ex.text, "Question | Answer\nHi? | Hello\n7");
        let qa = qa_rows("old.xls", &bytes).unwrap();
        assert_eq!(qa, vec![("Hi?".to_owned(), "Hello".to_owned())]);
        // Cells at far-apart positions would make calamine allocate the whole rectangle.
        let sparse = xls(&[(0, 0, "a"), (60_000, 200, "b")], None);
        let err = extract("huge.xls", &sparse).unwrap_err();
        assert!(err.to_string().contains("cells"), "{err}");
    }

    #[test]
    fn pdf_document() {
        let ex = extract("a.pdf", &pdf("Hello PDF")).unwrap();
        assert_eq!(ex.text, "Hello PDF");
        // Truncated: an error or the text, never a panic.
        let bytes = pdf("Hello PDF");
        for cut in [10, 100, 200, bytes.len() - 30] {
            let _ = extract("a.pdf", &bytes[..cut]);
        }
    }

    #[test]
    fn qa_from_csv_and_xlsx() {
        let csv = "问题,答案\n什么是RAG？,检索增强生成\n\"Hi, there?\",\"Hello\"\nonly question,\n";
        let qa = qa_rows("qa.csv", csv.as_bytes()).unwrap();
        assert_eq!(
            qa,
            vec![
                ("什么是RAG？".to_owned(), "检索增强生成".to_owned()),
                ("Hi, there?".to_owned(), "Hello".to_owned())
            ]
        );
        let qa = qa_rows("qa.xlsx", &xlsx()).unwrap();
        assert_eq!(
            qa,
            vec![
                (
                    "What is RAG?".to_owned(),
                    "Retrieval & generation".to_owned()
                ),
                ("How many?".to_owned(), "42".to_owned())
            ]
        );
        // Not two columns.
        assert!(matches!(
            qa_rows("qa.csv", b"one\ntwo\nthree\n"),
            Err(ParseError::Invalid(_))
        ));
        // Not a spreadsheet type.
        assert!(matches!(
            qa_rows("qa.txt", b"a,b"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_for_every_type() {
        for seed in 1..4 {
            let junk = garbage(4096, seed);
            for ext in [
                "txt", "md", "markdown", "html", "htm", "xml", "json", "csv", "eml", "docx",
                "pptx", "xlsx", "xls", "pdf", "rtf", "doc", "ppt",
            ] {
                let result = extract(&format!("junk.{ext}"), &junk);
                assert!(
                    matches!(result, Err(ParseError::Invalid(_))),
                    "{ext}: {result:?}"
                );
            }
            for ext in ["csv", "xlsx", "xls"] {
                assert!(qa_rows(&format!("junk.{ext}"), &junk).is_err(), "{ext}");
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic() {
        let fixtures: Vec<(&str, Vec<u8>)> = vec![
            ("a.docx", docx()),
            ("a.pptx", pptx()),
            ("a.xlsx", xlsx()),
            ("a.xls", xls(&[(0, 0, "x"), (1, 1, "y")], Some((2, 2, 1.5)))),
            ("a.pdf", pdf("Hello PDF")),
            ("a.eml", eml().into_bytes()),
            ("a.rtf", br"{\rtf1 Caf\'e9 {\b x}\u8364?}".to_vec()),
            ("a.html", b"<html><title>t</title><p>x &amp; y</p>".to_vec()),
        ];
        for (name, bytes) in fixtures {
            for seed in 0..40u64 {
                let noise = garbage(8, seed + 7);
                let mut m = bytes.clone();
                let at = (usize::from(noise[0]) << 8 | usize::from(noise[1])) % m.len();
                m[at] = noise[2];
                let at2 = (usize::from(noise[3]) << 8 | usize::from(noise[4])) % m.len();
                m[at2] ^= noise[5];
                let _ = extract(name, &m);
                let _ = extract(name, &m[..at.max(1)]);
                let _ = qa_rows(name, &m);
            }
        }
    }

    #[test]
    fn zip_bomb_entry_is_refused() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1));
        w.start_file("word/document.xml", opts).unwrap();
        let block = vec![b' '; 1 << 20];
        for _ in 0..(MAX_ZIP_ENTRY_BYTES >> 20) + 1 {
            w.write_all(&block).unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
        for name in ["bomb.docx", "bomb.pptx", "bomb.xlsx"] {
            let result = extract(name, &bomb);
            assert!(
                matches!(result, Err(ParseError::Invalid(_))),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn text_cap() {
        assert_eq!(normalize("a\r\nb\rc\u{0}d"), "a\nb\ncd");
        let long = "word ".repeat(MAX_TEXT_CHARS / 5 + 1);
        assert!(
            finish(Extracted {
                text: long,
                title: None
            })
            .is_err()
        );
    }
}
