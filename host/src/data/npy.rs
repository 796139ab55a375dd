//! The `.npy` header, read before any array is allocated: ndarray-npy sizes its buffer from
//! the header's shape, so a corrupt or hostile 128-byte file claiming a terabyte-sized array
//! would otherwise abort the process on the allocation. The header is checked here against
//! the file's real length first.
//!
//! Format (numpy's `format.py`): magic `\x93NUMPY`, major and minor version bytes, the header
//! length (u16 little-endian in version 1, u32 in versions 2 and 3), then a Python dict
//! literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.

use std::io::Read;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// What an `.npy` header says about the array that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype descriptor, e.g. `<f4`.
    pub descr: String,
    /// Column-major data.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Byte offset of the data (magic, version, length field and header).
    pub data_offset: u64,
}

impl NpyHeader {
    /// Bytes the data must take for elements of `itemsize` bytes; `None` on overflow,
    /// which no real file can have.
    pub fn data_bytes(&self, itemsize: usize) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(itemsize as u64, |acc, &d| acc.checked_mul(d as u64))
    }
}

/// Reads and parses the header of an `.npy` file of `file_len` bytes. The header is never
/// read past the file's length, so a huge length field cannot allocate.
pub fn read_header(r: &mut impl Read, file_len: u64) -> Result<NpyHeader, String> {
    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix)
        .map_err(|_| format!("{file_len} bytes: too short for the .npy magic and version"))?;
    if &prefix[..6] != MAGIC {
        return Err("does not start with the .npy magic \\x93NUMPY".into());
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => return Err(format!("unknown .npy format version {major}.{minor}")),
    };
    let mut len_field = [0u8; 4];
    r.read_exact(&mut len_field[..len_bytes])
        .map_err(|_| "truncated inside the header length".to_string())?;
    let header_len = u32::from_le_bytes(len_field) as u64;
    let data_offset = 8 + len_bytes as u64 + header_len;
    if data_offset > file_len {
        return Err(format!(
            "its header length field says {header_len} bytes but the file is {file_len} bytes"
        ));
    }
    let mut text = Vec::new();
    r.take(header_len)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    if text.len() as u64 != header_len {
        return Err("truncated inside the header".into());
    }
    // Version 1 and 2 headers are latin-1 (in practice ASCII), version 3 UTF-8.
    let text = std::str::from_utf8(&text).map_err(|_| "the header is not text".to_string())?;
    let mut header = parse_dict(text)?;
    header.data_offset = data_offset;
    Ok(header)
}

/// A value of the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

fn parse_dict(text: &str) -> Result<NpyHeader, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k @ ("descr" | "fortran_order" | "shape"), _) => {
                return Err(format!("the header's '{k}' has the wrong type"))
            }
            // numpy ignores nothing, but a reader may: extra keys do not change the data.
            _ => {}
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader {
            descr,
            fortran_order,
            shape,
            data_offset: 0,
        }),
        _ => Err("the header lacks 'descr', 'fortran_order' or 'shape'".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.skip_ws();
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!(
                "cannot parse the header: expected `{}` at byte {}",
                b as char, self.i
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "cannot parse the header: expected a string at byte {}",
                    self.i
                ))
            }
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or("cannot parse the header: an unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            return Ok(Value::Bool(true));
        }
        if rest.starts_with(b"False") {
            self.i += 5;
            return Ok(Value::Bool(false));
        }
        match rest.first() {
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'(') => self.tuple().map(Value::Tuple),
            Some(b'[') => Err("a structured (record) dtype, not a plain array".into()),
            _ => Err(format!(
                "cannot parse the header: unexpected value at byte {}",
                self.i
            )),
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(out);
            }
            // A header is at most the file's length, so the tuple is too.
            out.push(self.dimension()?);
            self.skip_ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }

    fn dimension(&mut self) -> Result<usize, String> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if digits.is_empty() {
            return Err(format!(
                "cannot parse the header: expected a dimension at byte {start}"
            ));
        }
        digits
            .parse::<usize>()
            .map_err(|_| format!("the header's shape has a dimension {digits} beyond 2^64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend([1, 0]);
        v.extend((dict.len() as u16).to_le_bytes());
        v.extend(dict.as_bytes());
        v
    }

    #[test]
    fn parses_what_numpy_writes() {
        let b = header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n");
        let h = read_header(&mut b.as_slice(), b.len() as u64).unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![3, 4]);
        assert_eq!(h.data_offset, b.len() as u64);
        assert_eq!(h.data_bytes(4), Some(48));
        for (dict, shape) in [
            (
                "{'shape': (12,), 'fortran_order': True, 'descr': '>f4'}",
                vec![12],
            ),
            (
                "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": ()}",
                vec![],
            ),
        ] {
            let b = header_bytes(dict);
            let h = read_header(&mut b.as_slice(), b.len() as u64).unwrap();
            assert_eq!(h.shape, shape, "{dict}");
        }
    }

    #[test]
    fn refuses_bad_headers_without_allocating() {
        let huge = header_bytes(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000), }",
        );
        let h = read_header(&mut huge.as_slice(), 128).unwrap();
        assert_eq!(h.data_bytes(4), Some(4_000_000_000_000_000_000));
        let over = header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615), }");
        assert_eq!(
            read_header(&mut over.as_slice(), 999)
                .unwrap()
                .data_bytes(4),
            None
        );
        let beyond = header_bytes(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
        );
        assert!(read_header(&mut beyond.as_slice(), 999)
            .unwrap_err()
            .contains("beyond"));
        // A version-2 length field of 4 GiB in a 20-byte file.
        let mut v2 = MAGIC.to_vec();
        v2.extend([2, 0, 0xff, 0xff, 0xff, 0xff, b'{']);
        let e = read_header(&mut v2.as_slice(), v2.len() as u64).unwrap_err();
        assert!(e.contains("4294967295") && e.contains("13 bytes"), "{e}");
        for bad in [
            b"not npy at all".to_vec(),
            b"\x93NUM".to_vec(),
            header_bytes("{'descr': '<f4'}"),
            header_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}"),
            header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}"),
            header_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}"),
        ] {
            assert!(read_header(&mut bad.as_slice(), bad.len() as u64).is_err());
        }
    }
}
