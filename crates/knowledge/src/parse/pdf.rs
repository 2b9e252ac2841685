//! PDF text through lopdf: the text of every page, in page order.

use super::{MAX_TEXT_CHARS, ParseError, invalid, too_much_text};
use lopdf::{Document, LoadOptions};

/// Largest decompressed size of one stream (and of one page's content).
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn pdf_text(bytes: &[u8]) -> Result<String, ParseError> {
    if !bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Err(invalid("the file is not a PDF document"));
    }
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| {
        if matches!(e, lopdf::Error::Decryption(_)) || matches!(e, lopdf::Error::InvalidPassword) {
            invalid("the PDF is encrypted and cannot be read")
        } else {
            invalid(format!("the file is not a readable PDF document: {e}"))
        }
    })?;
    let mut out = String::new();
    let mut errors = 0usize;
    for page in doc.get_pages().keys() {
        for chunk in doc.extract_text_chunks_with_limit(&[*page], MAX_STREAM_BYTES) {
            match chunk {
                Ok(text) => out.push_str(&text),
                Err(_) => errors += 1,
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
        if out.len() > MAX_TEXT_CHARS.saturating_mul(4) {
            return Err(too_much_text());
        }
    }
    if out.trim().is_empty() {
        return Err(invalid(if errors > 0 {
            "the text of the PDF could not be decoded"
        } else {
            "the PDF contains no text (a scanned document needs OCR first)"
        }));
    }
    Ok(out)
}
