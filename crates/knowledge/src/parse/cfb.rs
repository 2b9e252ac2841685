//! A minimal reader of the Compound File Binary format (the container of .xls files), used to
//! check the used area of every sheet before calamine allocates it: calamine builds a dense
//! rectangle per sheet, so a few crafted cell records at extreme positions could otherwise make
//! it allocate gigabytes.

use super::{ParseError, invalid};

const SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const MAX_REGULAR: u32 = 0xFFFF_FFFA;

fn not_xls() -> ParseError {
    invalid("the file is not a valid Excel (.xls) workbook")
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

struct Cfb<'a> {
    bytes: &'a [u8],
    shift: u32,
    fat: Vec<u32>,
}

impl<'a> Cfb<'a> {
    fn sector(&self, s: u32) -> Option<&'a [u8]> {
        let size = 1usize << self.shift;
        let start = (usize::try_from(s).ok()? + 1).checked_mul(size)?;
        self.bytes.get(start..start.checked_add(size)?)
    }

    /// The sectors of a chain, each visited once (a cyclic chain stops at the first revisit).
    fn chain(table: &[u32], start: u32) -> Vec<u32> {
        let mut seen = vec![false; table.len()];
        let mut out = Vec::new();
        let mut s = start;
        while s <= MAX_REGULAR {
            let Ok(i) = usize::try_from(s) else { break };
            match seen.get_mut(i) {
                Some(v) if !*v => *v = true,
                _ => break,
            }
            out.push(s);
            s = table.get(i).copied().unwrap_or(END_OF_CHAIN);
        }
        out
    }

    fn read_chain(&self, start: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for s in Self::chain(&self.fat, start) {
            match self.sector(s) {
                Some(data) => out.extend_from_slice(data),
                None => break,
            }
        }
        out
    }
}

fn parse(bytes: &[u8]) -> Option<Cfb<'_>> {
    if bytes.get(..8)? != SIGNATURE {
        return None;
    }
    let shift = u32::from(u16_at(bytes, 0x1E)?);
    if shift != 9 && shift != 12 {
        return None;
    }
    let mut cfb = Cfb {
        bytes,
        shift,
        fat: Vec::new(),
    };
    let size = 1usize << shift;
    let total_sectors = bytes.len() / size;
    // The FAT sectors: 109 in the header, the rest in the DIFAT chain.
    let mut fat_sectors: Vec<u32> = (0..109)
        .filter_map(|i| u32_at(bytes, 0x4C + i * 4))
        .filter(|s| *s <= MAX_REGULAR)
        .collect();
    let mut difat = u32_at(bytes, 0x44)?;
    let mut steps = 0usize;
    while difat <= MAX_REGULAR && steps <= total_sectors {
        steps += 1;
        let Some(data) = cfb.sector(difat) else { break };
        let per = size / 4 - 1;
        fat_sectors.extend(
            (0..per)
                .filter_map(|i| u32_at(data, i * 4))
                .filter(|s| *s <= MAX_REGULAR),
        );
        difat = u32_at(data, per * 4).unwrap_or(END_OF_CHAIN);
    }
    fat_sectors.truncate(total_sectors);
    let mut fat = Vec::new();
    for s in fat_sectors {
        if let Some(data) = cfb.sector(s) {
            fat.extend((0..size / 4).filter_map(|i| u32_at(data, i * 4)));
        }
    }
    cfb.fat = fat;
    Some(cfb)
}

/// The "Workbook" (or BIFF5 "Book") stream of a compound file.
fn workbook_stream(bytes: &[u8]) -> Option<Vec<u8>> {
    let cfb = parse(bytes)?;
    let dir = cfb.read_chain(u32_at(bytes, 0x30)?);
    let entries: Vec<&[u8]> = dir.chunks_exact(128).collect();
    let name_of = |e: &[u8]| -> String {
        let len = usize::from(u16_at(e, 0x40).unwrap_or(0)).min(64);
        let units: Vec<u16> = (0..len.saturating_sub(2) / 2)
            .filter_map(|i| u16_at(e, i * 2))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let root = entries.first()?;
    let entry = entries.iter().find(|e| {
        e.get(0x42) == Some(&2)
            && matches!(
                name_of(e).as_str(),
                "Workbook" | "Book" | "WORKBOOK" | "BOOK"
            )
    })?;
    let start = u32_at(entry, 0x74)?;
    let size = usize::try_from(u32_at(entry, 0x78)?).ok()?;
    let cutoff = usize::try_from(u32_at(bytes, 0x38)?).ok()?;
    let mut data = if size < cutoff {
        // Small streams live in the mini stream, in 64-byte mini sectors.
        let mini_fat_bytes = cfb.read_chain(u32_at(bytes, 0x3C)?);
        let mini_fat: Vec<u32> = mini_fat_bytes
            .chunks_exact(4)
            .filter_map(|c| u32_at(c, 0))
            .collect();
        let mini_stream = cfb.read_chain(u32_at(root, 0x74)?);
        let mut out = Vec::new();
        for s in Cfb::chain(&mini_fat, start) {
            let at = usize::try_from(s).ok()?.checked_mul(64)?;
            match mini_stream.get(at..at + 64) {
                Some(d) => out.extend_from_slice(d),
                None => break,
            }
        }
        out
    } else {
        cfb.read_chain(start)
    };
    data.truncate(size);
    Some(data)
}

/// Refuses an .xls file that is not a compound file with a workbook stream, or in which some
/// sheet's cells span more than `max_cells` (rows x columns of the used area).
pub(crate) fn check_xls_bounds(bytes: &[u8], max_cells: u64) -> Result<(), ParseError> {
    let stream = workbook_stream(bytes).ok_or_else(not_xls)?;
    // (min row, max row, min col, max col) of the current substream.
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    let mut at = 0usize;
    let check = |b: Option<(u32, u32, u32, u32)>| -> Result<(), ParseError> {
        if let Some((r0, r1, c0, c1)) = b {
            let cells = u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1);
            if cells > max_cells {
                return Err(invalid(format!(
                    "a sheet spans {cells} cells, more than the {max_cells} allowed for .xls files"
                )));
            }
        }
        Ok(())
    };
    while let (Some(kind), Some(len)) = (u16_at(&stream, at), u16_at(&stream, at + 2)) {
        let len = usize::from(len);
        let Some(data) = stream.get(at + 4..at + 4 + len) else {
            break;
        };
        at += 4 + len;
        let mut cell = |row: u16, col: u16| {
            let (r, c) = (u32::from(row), u32::from(col));
            bounds = Some(match bounds {
                None => (r, r, c, c),
                Some((r0, r1, c0, c1)) => (r0.min(r), r1.max(r), c0.min(c), c1.max(c)),
            });
        };
        match kind {
            // BOF / EOF: a new substream (workbook globals or one sheet).
            0x0809 | 0x000A => {
                check(bounds)?;
                bounds = None;
            }
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x0006 | 0x027E | 0x00FD => {
                if let (Some(r), Some(c)) = (u16_at(data, 0), u16_at(data, 2)) {
                    cell(r, c);
                }
            }
            0x00BD => {
                if let (Some(r), Some(c), Some(last)) = (
                    u16_at(data, 0),
                    u16_at(data, 2),
                    u16_at(data, len.saturating_sub(2)),
                ) {
                    cell(r, c);
                    cell(r, last);
                }
            }
            _ => {}
        }
    }
    check(bounds)
}
