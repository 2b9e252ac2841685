//! Zip based Office documents (docx, pptx) and the bounded zip reading they share with xlsx.

use super::xml::{XmlEvent, walk};
use super::{
    Extracted, MAX_TEXT_CHARS, MAX_ZIP_ENTRIES, MAX_ZIP_ENTRY_BYTES, MAX_ZIP_TOTAL_BYTES,
    ParseError, invalid, too_much_text,
};
use std::io::{Cursor, Read};
use zip::ZipArchive;
use zip::result::ZipError;

/// A zip archive read under a decompression budget.
pub(crate) struct Zip<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    used: u64,
}

impl<'a> Zip<'a> {
    pub(crate) fn open(bytes: &'a [u8], what: &str) -> Result<Self, ParseError> {
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|_| {
            invalid(format!(
                "the file is not a valid {what} document (not a zip archive)"
            ))
        })?;
        if archive.len() > MAX_ZIP_ENTRIES {
            return Err(invalid(format!(
                "the archive has more than {MAX_ZIP_ENTRIES} entries"
            )));
        }
        Ok(Zip { archive, used: 0 })
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect()
    }

    /// Reads one entry; `None` when it does not exist.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ParseError> {
        let entry = match self.archive.by_name(name) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(invalid(format!("cannot read `{name}` in the archive: {e}"))),
        };
        let buf = read_limited(entry, name, MAX_ZIP_TOTAL_BYTES.saturating_sub(self.used))?;
        self.used += buf.len() as u64;
        Ok(Some(buf))
    }

    /// Reads one entry as UTF-8 text (lossy); `None` when it does not exist.
    pub(crate) fn read_text(&mut self, name: &str) -> Result<Option<String>, ParseError> {
        Ok(self
            .read(name)?
            .map(|bytes| match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }))
    }

    /// Decompresses every entry (into nothing) to prove the archive stays within the entry
    /// and total budgets, whatever sizes its headers declare. Used before handing the bytes to
    /// a reader that decompresses without limits.
    pub(crate) fn check_all(&mut self) -> Result<(), ParseError> {
        for i in 0..self.archive.len() {
            let entry = self
                .archive
                .by_index(i)
                .map_err(|e| invalid(format!("cannot read the archive: {e}")))?;
            let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
            let limit = MAX_ZIP_ENTRY_BYTES.min(MAX_ZIP_TOTAL_BYTES.saturating_sub(self.used));
            if entry.size() > limit {
                return Err(bomb(&name));
            }
            let copied = std::io::copy(&mut entry.take(limit + 1), &mut std::io::sink())
                .map_err(|e| invalid(format!("cannot read `{name}` in the archive: {e}")))?;
            if copied > limit {
                return Err(bomb(&name));
            }
            self.used += copied;
        }
        Ok(())
    }
}

fn bomb(name: &str) -> ParseError {
    invalid(format!(
        "`{name}` in the archive decompresses to more than {MAX_ZIP_ENTRY_BYTES} bytes (or the archive to more than {MAX_ZIP_TOTAL_BYTES})"
    ))
}

fn read_limited(
    entry: zip::read::ZipFile<'_, Cursor<&[u8]>>,
    name: &str,
    budget: u64,
) -> Result<Vec<u8>, ParseError> {
    let limit = MAX_ZIP_ENTRY_BYTES.min(budget);
    let declared = entry.size();
    if declared > limit {
        return Err(bomb(name));
    }
    let capacity = usize::try_from(declared.min(1 << 20)).unwrap_or(0);
    let mut buf = Vec::with_capacity(capacity);
    entry
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| invalid(format!("cannot read `{name}` in the archive: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(bomb(name));
    }
    Ok(buf)
}

/// `dc:title` of `docProps/core.xml`, when present.
fn core_title(zip: &mut Zip<'_>) -> Option<String> {
    let xml = zip.read_text("docProps/core.xml").ok()??;
    let mut depth_in_title = false;
    let mut title = String::new();
    walk(&xml, |event| match event {
        XmlEvent::Start("title") => depth_in_title = true,
        XmlEvent::End("title") => depth_in_title = false,
        XmlEvent::Text(t) if depth_in_title => title.push_str(&t),
        _ => {}
    })
    .ok()?;
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// Word: the paragraphs of `word/document.xml` as lines; table cells joined with " | ".
pub(crate) fn docx_text(bytes: &[u8]) -> Result<Extracted, ParseError> {
    let mut zip = Zip::open(bytes, "Word (.docx)")?;
    let xml = zip
        .read_text("word/document.xml")?
        .ok_or_else(|| invalid("the file is not a Word document (no word/document.xml)"))?;
    let mut out = String::new();
    let mut in_text = 0usize;
    let mut in_cell = 0usize;
    walk(&xml, |event| match event {
        XmlEvent::Start("t") => in_text += 1,
        XmlEvent::End("t") => in_text = in_text.saturating_sub(1),
        XmlEvent::Start("tc") => in_cell += 1,
        XmlEvent::End("tc") => {
            in_cell = in_cell.saturating_sub(1);
            let len = out.trim_end_matches([' ', '\t']).len();
            out.truncate(len);
            out.push_str(" | ");
        }
        XmlEvent::End("tr") => {
            let len = out.trim_end_matches([' ', '|']).len();
            out.truncate(len);
            out.push('\n');
        }
        XmlEvent::End("p") => out.push(if in_cell > 0 { ' ' } else { '\n' }),
        XmlEvent::Empty("tab") | XmlEvent::Start("tab") => out.push('\t'),
        XmlEvent::Empty("br" | "cr") => out.push(if in_cell > 0 { ' ' } else { '\n' }),
        XmlEvent::Text(t) if in_text > 0 => out.push_str(&t),
        _ => {}
    })?;
    if out.len() > MAX_TEXT_CHARS.saturating_mul(4) {
        return Err(too_much_text());
    }
    let title = core_title(&mut zip);
    Ok(Extracted { text: out, title })
}

/// PowerPoint: the text runs of `ppt/slides/slideN.xml` in slide-number order; one line per
/// paragraph, a blank line between slides.
pub(crate) fn pptx_text(bytes: &[u8]) -> Result<Extracted, ParseError> {
    let mut zip = Zip::open(bytes, "PowerPoint (.pptx)")?;
    let mut slides: Vec<(u32, String)> = zip
        .names()
        .into_iter()
        .filter_map(|name| {
            let n = name
                .strip_prefix("ppt/slides/slide")?
                .strip_suffix(".xml")?;
            n.parse::<u32>().ok().map(|n| (n, name))
        })
        .collect();
    if slides.is_empty() && zip.read("ppt/presentation.xml")?.is_none() {
        return Err(invalid(
            "the file is not a PowerPoint document (no ppt/presentation.xml)",
        ));
    }
    slides.sort();
    let mut out = String::new();
    for (_, name) in slides {
        let Some(xml) = zip.read_text(&name)? else {
            continue;
        };
        let mut in_text = 0usize;
        walk(&xml, |event| match event {
            XmlEvent::Start("t") => in_text += 1,
            XmlEvent::End("t") => in_text = in_text.saturating_sub(1),
            XmlEvent::End("p") => out.push('\n'),
            XmlEvent::Empty("br") => out.push('\n'),
            XmlEvent::Text(t) if in_text > 0 => out.push_str(&t),
            _ => {}
        })?;
        out.push('\n');
        if out.len() > MAX_TEXT_CHARS.saturating_mul(4) {
            return Err(too_much_text());
        }
    }
    let title = core_title(&mut zip);
    Ok(Extracted { text: out, title })
}
