//! XML reading on top of quick-xml: a small event walker shared by the XML based formats, and
//! plain `.xml` files as text nodes.

use super::{ParseError, invalid};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use std::borrow::Cow;

/// One XML event, reduced to what text extraction needs. Names are local (no prefix).
pub(crate) enum XmlEvent<'a> {
    Start(&'a str),
    End(&'a str),
    Empty(&'a str),
    Text(Cow<'a, str>),
}

/// Walks an XML document, calling `f` for each element boundary and each piece of text (entity
/// and character references resolved, CDATA included). Malformed XML is `Invalid`.
pub(crate) fn walk(xml: &str, mut f: impl FnMut(XmlEvent<'_>)) -> Result<(), ParseError> {
    let mut reader = Reader::from_str(xml);
    loop {
        let event = reader.read_event().map_err(|e| {
            invalid(format!(
                "malformed XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(e) => f(XmlEvent::Start(e.local_name().into_inner())),
            Event::End(e) => f(XmlEvent::End(e.local_name().into_inner())),
            Event::Empty(e) => f(XmlEvent::Empty(e.local_name().into_inner())),
            Event::Text(t) => f(XmlEvent::Text(t.xml10_content())),
            Event::CData(c) => {
                f(XmlEvent::Text(c.into_inner()));
            }
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    f(XmlEvent::Text(Cow::Owned(c.to_string())));
                } else {
                    let name = r.xml10_content();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => f(XmlEvent::Text(Cow::Borrowed(s))),
                        None => f(XmlEvent::Text(Cow::Owned(format!("&{name};")))),
                    }
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// Text nodes of an XML document, one element's text per line.
pub(crate) fn xml_text(xml: &str) -> Result<String, ParseError> {
    fn flush(out: &mut String, cur: &mut String) {
        let t = cur.trim();
        if !t.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(t);
        }
        cur.clear();
    }
    let mut out = String::new();
    let mut cur = String::new();
    let mut elements = 0usize;
    walk(xml, |event| match event {
        XmlEvent::Start(_) | XmlEvent::Empty(_) => {
            elements += 1;
            flush(&mut out, &mut cur);
        }
        XmlEvent::End(_) => flush(&mut out, &mut cur),
        XmlEvent::Text(t) => cur.push_str(&t),
    })?;
    flush(&mut out, &mut cur);
    if elements == 0 {
        return Err(invalid("the file is not an XML document"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_nodes() {
        let xml = "<?xml version=\"1.0\"?><!DOCTYPE r><r a=\"1\"><t>Fish &amp; chips</t>\
                   <u><![CDATA[<raw>]]></u><v>&#x4e2d;&lt;</v><w/></r>";
        assert_eq!(xml_text(xml).unwrap(), "Fish & chips\n<raw>\n中<");
        assert!(xml_text("<a><b></a>").is_err());
        assert!(xml_text("just words").is_err());
    }
}
