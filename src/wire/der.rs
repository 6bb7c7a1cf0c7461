//! The DER profile of upstream's asn1-combinators (§4): a strict reader
//! with upstream's few leniencies, and a writer that computes every length
//! before writing so that large values (images) are copied exactly once.
//!
//! Tag and length octets are parsed by the `der` crate, which enforces
//! definite, minimal lengths; the value rules (integers, booleans, 8-byte
//! counters, GeneralizedTime, SET OF order) are upstream's and live here.

use std::borrow::Cow;
use std::fmt;

use der::{Decode, Reader as _};

use crate::model::time::Timestamp;

/// Tag octet of BOOLEAN.
pub const BOOLEAN: u8 = 0x01;
/// Tag octet of INTEGER.
pub const INTEGER: u8 = 0x02;
/// Tag octet of OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// Tag octet of NULL.
pub const NULL: u8 = 0x05;
/// Tag octet of UTF8String.
pub const UTF8_STRING: u8 = 0x0C;
/// Tag octet of GeneralizedTime.
pub const GENERALIZED_TIME: u8 = 0x18;
/// Tag octet of a SEQUENCE (OF).
pub const SEQUENCE: u8 = 0x30;
/// Tag octet of a SET OF.
pub const SET: u8 = 0x31;

/// Tag octet of the constructed context-specific tag `[n]`.
pub const fn context(n: u8) -> u8 {
    0xA0 | n
}

/// Smallest integer upstream's OCaml `int` holds (−2^62).
pub const OCAML_INT_MIN: i64 = -(1 << 62);
/// Largest integer upstream's OCaml `int` holds (2^62 − 1).
pub const OCAML_INT_MAX: i64 = (1 << 62) - 1;

/// Why bytes did not decode. `what` names the value being read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value, or a tag/length was malformed.
    Malformed {
        /// The value being read.
        what: &'static str,
        /// The `der` crate's description.
        detail: String,
    },
    /// The input ended where a value was expected.
    Missing {
        /// The value being read.
        what: &'static str,
    },
    /// A value had another tag than the grammar allows here.
    UnexpectedTag {
        /// The value being read.
        what: &'static str,
        /// The tag octet found.
        found: u8,
    },
    /// Bytes were left over after a complete value.
    Trailing {
        /// The value that had trailing bytes.
        what: &'static str,
    },
    /// An INTEGER was empty, not minimal, or outside −2^62 … 2^62−1.
    BadInteger {
        /// The value being read.
        what: &'static str,
    },
    /// A BOOLEAN or NULL had the wrong content length.
    BadPrimitive {
        /// The value being read.
        what: &'static str,
    },
    /// An 8-byte counter had fewer than 8 bytes.
    ShortInt64 {
        /// The value being read.
        what: &'static str,
        /// The number of bytes found.
        len: usize,
    },
    /// A MAC address was not exactly 6 bytes.
    BadMac {
        /// The number of bytes found.
        len: usize,
    },
    /// A GeneralizedTime did not parse.
    BadTime(String),
    /// A string field was not UTF-8.
    NotUtf8 {
        /// The value being read.
        what: &'static str,
    },
    /// A name did not parse (§2.3).
    BadName(String),
    /// The header's version was not 5.
    UnknownVersion(i64),
    /// A value was well-formed but is not accepted (legacy, reserved,
    /// duplicate).
    Unsupported(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed { what, detail } => {
                write!(f, "malformed DER in {what}: {detail}")
            }
            DecodeError::Missing { what } => write!(f, "{what} is missing"),
            DecodeError::UnexpectedTag { what, found } => {
                write!(f, "unexpected tag 0x{found:02x} for {what}")
            }
            DecodeError::Trailing { what } => write!(f, "trailing bytes after {what}"),
            DecodeError::BadInteger { what } => write!(
                f,
                "invalid INTEGER for {what} (not minimal, empty, or outside -2^62..2^62-1)"
            ),
            DecodeError::BadPrimitive { what } => write!(f, "invalid content length for {what}"),
            DecodeError::ShortInt64 { what, len } => {
                write!(f, "{what}: 64-bit counter has {len} bytes, 8 needed")
            }
            DecodeError::BadMac { len } => write!(f, "MAC address has {len} bytes, 6 needed"),
            DecodeError::BadTime(e) => write!(f, "{e}"),
            DecodeError::NotUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            DecodeError::BadName(e) => write!(f, "{e}"),
            DecodeError::UnknownVersion(v) => {
                write!(
                    f,
                    "unknown version number {v} (only wire version 5 is supported)"
                )
            }
            DecodeError::Unsupported(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over DER bytes. Every read consumes one complete value.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// Whether all bytes are consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag octet of the next value, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> DecodeResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing { what })
        }
    }

    /// Reads one value of any tag: its tag octet and its contents.
    pub fn any(&mut self, what: &'static str) -> DecodeResult<(u8, &'a [u8])> {
        if self.rest.is_empty() {
            return Err(DecodeError::Missing { what });
        }
        let malformed = |e: der::Error| DecodeError::Malformed {
            what,
            detail: e.to_string(),
        };
        let mut r = der::SliceReader::new(self.rest).map_err(malformed)?;
        let header = der::Header::decode(&mut r).map_err(malformed)?;
        let body = r.read_slice(header.length).map_err(malformed)?;
        let used = usize::try_from(r.position()).map_err(malformed)?;
        let tag = self.rest[0];
        self.rest = &self.rest[used..];
        Ok((tag, body))
    }

    /// Reads one value that must carry `tag`; returns its contents.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> DecodeResult<&'a [u8]> {
        match self.peek_tag() {
            Some(found) if found != tag => Err(DecodeError::UnexpectedTag { what, found }),
            _ => Ok(self.any(what)?.1),
        }
    }

    /// Reads a constructed value with `tag` and decodes its contents with
    /// `f`, which must consume them entirely.
    pub fn nested<T>(
        &mut self,
        tag: u8,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        let mut inner = Reader::new(self.expect(tag, what)?);
        let value = f(&mut inner)?;
        inner.finish(what)?;
        Ok(value)
    }

    /// A SEQUENCE whose contents `f` decodes.
    pub fn sequence<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        self.nested(SEQUENCE, what, f)
    }

    /// An EXPLICIT `[n]` around one value that `f` decodes. Also reads
    /// `[n] IMPLICIT SEQUENCE`, whose bytes look the same to `f`'s
    /// contents.
    pub fn explicit<T>(
        &mut self,
        n: u8,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        self.nested(context(n), what, f)
    }

    /// As [`Reader::explicit`] when the next tag is `[n]`, else `None`.
    pub fn optional<T>(
        &mut self,
        n: u8,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<Option<T>> {
        if self.peek_tag() == Some(context(n)) {
            self.explicit(n, what, f).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A CHOICE of EXPLICIT context tags: reads the next value, which must
    /// carry a constructed `[n]`, and gives `n` and a reader over its
    /// contents to `f`, which must consume them entirely.
    pub fn choice<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(u8, &mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        let tag = self.peek_tag().ok_or(DecodeError::Missing { what })?;
        // Constructed context-specific with a single-byte tag number.
        if tag & 0xE0 != 0xA0 || tag & 0x1F == 0x1F {
            return Err(DecodeError::UnexpectedTag { what, found: tag });
        }
        self.nested(tag, what, |inner| f(tag & 0x1F, inner))
    }

    /// Decodes every element of a SEQUENCE OF (or, with `tag` = [`SET`], a
    /// SET OF, whose order is kept as found).
    pub fn list_of<T>(
        &mut self,
        tag: u8,
        what: &'static str,
        mut f: impl FnMut(&mut Reader<'a>) -> DecodeResult<T>,
    ) -> DecodeResult<Vec<T>> {
        self.nested(tag, what, |inner| {
            let mut items = Vec::new();
            while !inner.is_empty() {
                items.push(f(inner)?);
            }
            Ok(items)
        })
    }

    /// An INTEGER in OCaml's `int` range.
    pub fn integer(&mut self, what: &'static str) -> DecodeResult<i64> {
        let body = self.expect(INTEGER, what)?;
        decode_integer(body).ok_or(DecodeError::BadInteger { what })
    }

    /// A BOOLEAN; any non-zero content byte is true (§4.2).
    pub fn boolean(&mut self, what: &'static str) -> DecodeResult<bool> {
        match self.expect(BOOLEAN, what)? {
            [b] => Ok(*b != 0),
            _ => Err(DecodeError::BadPrimitive { what }),
        }
    }

    /// A NULL.
    pub fn null(&mut self, what: &'static str) -> DecodeResult<()> {
        if self.expect(NULL, what)?.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::BadPrimitive { what })
        }
    }

    /// An OCTET STRING's contents.
    pub fn octets(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        self.expect(OCTET_STRING, what)
    }

    /// A UTF8String's raw contents.
    pub fn utf8_bytes(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        self.expect(UTF8_STRING, what)
    }

    /// A UTF8String as a Rust string (invalid UTF-8 is an error).
    pub fn utf8(&mut self, what: &'static str) -> DecodeResult<String> {
        let bytes = self.utf8_bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8 { what })
    }

    /// An `int64` counter: an OCTET STRING of at least 8 bytes, the first
    /// 8 read as big-endian two's complement (§4.3).
    pub fn int64(&mut self, what: &'static str) -> DecodeResult<i64> {
        let body = self.octets(what)?;
        let first: [u8; 8] =
            body.get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or(DecodeError::ShortInt64 {
                    what,
                    len: body.len(),
                })?;
        Ok(i64::from_be_bytes(first))
    }

    /// A 6-byte MAC address in an OCTET STRING.
    pub fn mac(&mut self) -> DecodeResult<[u8; 6]> {
        let body = self.octets("MAC address")?;
        body.try_into()
            .map_err(|_| DecodeError::BadMac { len: body.len() })
    }

    /// A GeneralizedTime (§4.4).
    pub fn time(&mut self, what: &'static str) -> DecodeResult<Timestamp> {
        let body = self.expect(GENERALIZED_TIME, what)?;
        Timestamp::parse_generalized(body).map_err(|e| DecodeError::BadTime(e.to_string()))
    }
}

/// Decodes INTEGER contents: non-empty, minimal, within OCaml's `int`.
fn decode_integer(body: &[u8]) -> Option<i64> {
    match body {
        [] => return None,
        [0x00, next, ..] if *next < 0x80 => return None,
        [0xFF, next, ..] if *next >= 0x80 => return None,
        _ if body.len() > 8 => return None,
        _ => {}
    }
    let fill = if body[0] >= 0x80 { 0xFF } else { 0x00 };
    let mut bytes = [fill; 8];
    bytes[8 - body.len()..].copy_from_slice(body);
    let value = i64::from_be_bytes(bytes);
    (OCAML_INT_MIN..=OCAML_INT_MAX)
        .contains(&value)
        .then_some(value)
}

/// A value to be encoded: primitive contents or constructed children.
/// Lengths are computed when a node is built, so writing is one pass.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    /// A primitive value.
    Prim {
        /// Tag octet.
        tag: u8,
        /// Contents.
        body: Cow<'a, [u8]>,
    },
    /// A constructed value.
    Cons {
        /// Tag octet.
        tag: u8,
        /// Length of the contents.
        len: usize,
        /// Children in order.
        children: Vec<Node<'a>>,
    },
    /// A complete encoding made elsewhere (SET OF elements after sorting).
    Raw(Vec<u8>),
}

fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

fn write_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    if len < 0x80 {
        // Fits in the short form, checked above.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        // At most size_of::<usize>() octets follow.
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

impl<'a> Node<'a> {
    /// Total encoded length, header included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Node::Prim { body, .. } => header_len(body.len()) + body.len(),
            Node::Cons { len, .. } => header_len(*len) + len,
            Node::Raw(bytes) => bytes.len(),
        }
    }

    /// Appends the encoding to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Prim { tag, body } => {
                write_header(*tag, body.len(), out);
                out.extend_from_slice(body);
            }
            Node::Cons { tag, len, children } => {
                write_header(*tag, *len, out);
                for child in children {
                    child.write(out);
                }
            }
            Node::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }

    /// The encoding as a new vector of exactly the right capacity.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// A constructed value with `tag` around `children`.
    pub fn cons(tag: u8, children: Vec<Node<'a>>) -> Node<'a> {
        let len = children.iter().map(Node::encoded_len).sum();
        Node::Cons { tag, len, children }
    }

    /// A SEQUENCE (OF).
    pub fn seq(children: Vec<Node<'a>>) -> Node<'a> {
        Node::cons(SEQUENCE, children)
    }

    /// A SET OF: elements sorted by their complete encodings (§4.1).
    pub fn set_of(children: Vec<Node<'a>>) -> Node<'a> {
        let mut encoded: Vec<Vec<u8>> = children.iter().map(Node::to_vec).collect();
        encoded.sort();
        Node::cons(SET, encoded.into_iter().map(Node::Raw).collect())
    }

    /// EXPLICIT `[n]` around `inner`.
    pub fn explicit(n: u8, inner: Node<'a>) -> Node<'a> {
        Node::cons(context(n), vec![inner])
    }

    /// `[n] IMPLICIT SEQUENCE` with these children.
    pub fn implicit_seq(n: u8, children: Vec<Node<'a>>) -> Node<'a> {
        Node::cons(context(n), children)
    }

    fn prim(tag: u8, body: impl Into<Cow<'a, [u8]>>) -> Node<'a> {
        Node::Prim {
            tag,
            body: body.into(),
        }
    }

    /// A minimal two's-complement INTEGER.
    pub fn integer(value: i64) -> Node<'a> {
        let bytes = value.to_be_bytes();
        let mut start = 0;
        while start < 7
            && ((bytes[start] == 0x00 && bytes[start + 1] < 0x80)
                || (bytes[start] == 0xFF && bytes[start + 1] >= 0x80))
        {
            start += 1;
        }
        Node::prim(INTEGER, bytes[start..].to_vec())
    }

    /// A BOOLEAN (`FF` for true).
    pub fn boolean(value: bool) -> Node<'a> {
        Node::prim(BOOLEAN, vec![if value { 0xFF } else { 0x00 }])
    }

    /// NULL.
    pub fn null() -> Node<'a> {
        Node::prim(NULL, Vec::new())
    }

    /// An OCTET STRING borrowing its contents.
    pub fn octets(bytes: &'a [u8]) -> Node<'a> {
        Node::prim(OCTET_STRING, bytes)
    }

    /// A UTF8String.
    pub fn utf8(text: &'a str) -> Node<'a> {
        Node::prim(UTF8_STRING, text.as_bytes())
    }

    /// A UTF8String from raw bytes.
    pub fn utf8_bytes(bytes: &'a [u8]) -> Node<'a> {
        Node::prim(UTF8_STRING, bytes)
    }

    /// A UTF8String that owns its text.
    pub fn utf8_owned(text: String) -> Node<'a> {
        Node::prim(UTF8_STRING, text.into_bytes())
    }

    /// An `int64` counter: 8-byte big-endian OCTET STRING.
    pub fn int64(value: i64) -> Node<'a> {
        Node::prim(OCTET_STRING, value.to_be_bytes().to_vec())
    }

    /// A GeneralizedTime as upstream writes it.
    pub fn time(t: Timestamp) -> Node<'a> {
        Node::prim(GENERALIZED_TIME, t.to_generalized().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for (v, enc) in [
            (0i64, vec![0x02, 0x01, 0x00]),
            (128, vec![0x02, 0x02, 0x00, 0x80]),
            (-1, vec![0x02, 0x01, 0xFF]),
            (-128, vec![0x02, 0x01, 0x80]),
            (
                OCAML_INT_MAX,
                vec![0x02, 0x08, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ] {
            assert_eq!(Node::integer(v).to_vec(), enc);
            assert_eq!(Reader::new(&enc).integer("x"), Ok(v));
        }
        for bad in [
            &[0x02, 0x00][..],
            &[0x02, 0x02, 0x00, 0x01],
            &[0x02, 0x02, 0xFF, 0x80],
            &[0x02, 0x08, 0x40, 0, 0, 0, 0, 0, 0, 0],
            &[0x02, 0x09, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(Reader::new(bad).integer("x").is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn lengths() {
        let big = vec![7u8; 300];
        let enc = Node::octets(&big).to_vec();
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(Reader::new(&enc).octets("x").unwrap(), &big[..]);
        // Non-minimal and indefinite lengths are refused.
        assert!(Reader::new(&[0x04, 0x81, 0x01, 0x00]).octets("x").is_err());
        assert!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).any("x").is_err());
        assert!(Reader::new(&[0x04, 0x05, 0x00]).any("x").is_err());
    }

    #[test]
    fn booleans_and_sets() {
        assert_eq!(Reader::new(&[0x01, 0x01, 0x01]).boolean("b"), Ok(true));
        assert_eq!(Reader::new(&[0x01, 0x01, 0x00]).boolean("b"), Ok(false));
        assert!(Reader::new(&[0x01, 0x02, 0x00, 0x00]).boolean("b").is_err());
        let set = Node::set_of(vec![Node::integer(256), Node::integer(3), Node::integer(1)]);
        assert_eq!(set.to_vec(), vec![0x31, 0x0A, 2, 1, 1, 2, 1, 3, 2, 2, 1, 0]);
    }

    #[test]
    fn int64_counters() {
        assert_eq!(
            Reader::new(&[0x04, 0x08, 0, 0, 0, 0, 0, 0, 1, 2]).int64("c"),
            Ok(258)
        );
        assert_eq!(
            Reader::new(&[0x04, 0x09, 0, 0, 0, 0, 0, 0, 1, 2, 9]).int64("c"),
            Ok(258)
        );
        assert!(Reader::new(&[0x04, 0x02, 1, 2]).int64("c").is_err());
        assert_eq!(
            Node::int64(-1).to_vec(),
            [&[0x04, 0x08][..], &[0xFF; 8]].concat()
        );
    }
}
