//! HPACK (RFC 7541) for a passive observer: one decoder per direction
//! (the `loona-hpack` crate), bounded. The dynamic table follows the
//! encoder's, so it may be as large as the receiver allowed
//! (SETTINGS_HEADER_TABLE_SIZE), but never larger than [`MAX_TABLE`]: an
//! encoder that goes beyond cannot be followed, and that direction's
//! header blocks are then counted, not decoded. A decoded header list
//! larger than [`MAX_LIST`] (RFC 9113 10.5.1 sizes) is dropped whole (the
//! block is still decoded, to keep the table in step with the encoder).

use loona_hpack::Decoder as Hpack;

/// Our cap on a direction's dynamic table, whatever the peers advertise.
pub const MAX_TABLE: usize = 64 * 1024;
/// Our cap on one decoded header list (name + value + 32 per field).
pub const MAX_LIST: usize = 64 * 1024;
/// Our cap on one compressed header block (HEADERS + CONTINUATION).
pub const MAX_BLOCK: usize = 64 * 1024;
/// Fields kept per header list.
pub const MAX_FIELDS: usize = 128;

/// Why a header block gave no header list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// The decoder failed (malformed block, or a table size beyond the cap):
    /// this direction's table is lost.
    Compression,
    /// The decoded list is over [`MAX_LIST`] (the table stays in step).
    TooLarge,
    /// An earlier failure lost the table: nothing more can be decoded.
    TableLost,
}

pub struct Decoder {
    dec: Hpack<'static>,
    lost: bool,
    /// The dynamic table's allowed size (what it may grow to).
    allowed: usize,
    /// Header bytes decoded so far (RFC 7541 sizes): the table holds no
    /// more than this (charged to the memory budget up to `allowed`).
    seen: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("hpack::Decoder").field("lost", &self.lost).finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        let mut dec = Hpack::new();
        dec.set_max_allowed_table_size(4096);
        Decoder { dec, lost: false, allowed: 4096, seen: 0 }
    }
}

impl Decoder {
    /// The receiver advertised SETTINGS_HEADER_TABLE_SIZE = `size`: the
    /// encoder may now use up to that (our cap applies).
    pub fn allow(&mut self, size: u32) {
        self.allowed = (size as usize).clamp(4096, MAX_TABLE);
        self.dec.set_max_allowed_table_size(self.allowed);
    }

    /// Memory the dynamic table may take now: what was decoded so far, at
    /// most its allowed size, with the decoder's own per-entry storage.
    pub fn table_cost(&self) -> usize {
        if self.lost { 0 } else { self.seen.min(self.allowed) * 3 / 2 }
    }

    /// A block of this direction could not be read: the encoder's table
    /// can no longer be followed.
    pub fn lose(&mut self) {
        self.lost = true;
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Decodes one complete header block into (name, value) pairs, names
    /// lower-case as HTTP/2 requires, values made printable.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, BlockError> {
        if self.lost {
            return Err(BlockError::TableLost);
        }
        let mut fields = Vec::new();
        let mut size = 0usize;
        let mut over = false;
        let r = self.dec.decode_with_cb(block, |n, v| {
            size += n.len() + v.len() + 32;
            if size > MAX_LIST || fields.len() >= MAX_FIELDS {
                over = true;
            }
            if !over {
                fields.push((text(&n), text(&v)));
            }
        });
        self.seen = self.seen.saturating_add(size);
        match r {
            Err(_) => {
                self.lost = true;
                Err(BlockError::Compression)
            }
            Ok(()) if over => Err(BlockError::TooLarge),
            Ok(()) => Ok(fields),
        }
    }
}

/// Header bytes as text: valid UTF-8 kept, anything else escaped (no byte
/// from the wire reaches an output unescaped).
fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => s.to_string(),
        _ => b.iter().flat_map(|&c| std::ascii::escape_default(c)).map(char::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c3_requests_share_the_dynamic_table() {
        // RFC 7541 C.3.1 and C.3.2 (without Huffman coding).
        let mut d = Decoder::default();
        let first = hex("828684410f7777772e6578616d706c652e636f6d");
        let h = d.decode(&first).unwrap();
        assert_eq!(h[3], (":authority".into(), "www.example.com".into()));
        let second = hex("828684be58086e6f2d6361636865");
        let h = d.decode(&second).unwrap();
        assert_eq!(h[3], (":authority".into(), "www.example.com".into()), "from the dynamic table");
        assert_eq!(h[4], ("cache-control".into(), "no-cache".into()));
    }

    #[test]
    fn a_table_size_beyond_what_was_allowed_loses_the_table() {
        let mut d = Decoder::default();
        // Dynamic table size update to 100000 (0x3f e1 8b 06).
        assert_eq!(d.decode(&[0x3f, 0xe1, 0x8b, 0x06, 0x82]), Err(BlockError::Compression));
        assert_eq!(d.decode(&[0x82]), Err(BlockError::TableLost));
        // Allowed, under our cap: fine.
        let mut d = Decoder::default();
        d.allow(60000);
        assert!(d.decode(&[0x3f, 0xc1, 0xd3, 0x03, 0x82]).is_ok());
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut d = Decoder::default();
        for b in [&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], &[0x7f], &[0x40, 0x85], &[0x00, 0x05, b'a']] {
            let _ = d.decode(b);
            d = Decoder::default();
        }
    }

    #[test]
    fn oversized_lists_are_dropped_and_values_escaped() {
        let mut d = Decoder::default();
        // Literal without indexing, new name "x", value of 200 bytes, 400 times.
        let mut block = Vec::new();
        for _ in 0..400 {
            block.extend_from_slice(&[0x00, 0x01, b'x', 0x7f, 200 - 127]);
            block.extend(std::iter::repeat_n(b'v', 200));
        }
        assert_eq!(d.decode(&block), Err(BlockError::TooLarge));
        assert!(!d.is_lost());
        let h = d.decode(&[0x00, 0x01, b'x', 0x02, 0x1b, b'[']).unwrap();
        assert_eq!(h[0].1, "\\x1b[");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
