//! Labels, paths and names (spec §2), with exactly upstream's text forms.
//!
//! A [`Label`] is 1–63 bytes of `[A-Za-z0-9.-]`, not starting with `-`, and
//! is lower-cased when parsed. A [`Path`] is a list of labels (the empty
//! path is the root). A [`Name`] is a path plus an optional label: with a
//! label it names a unikernel or block device, without one an
//! administrative domain.

use std::fmt;

/// Longest label in bytes.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a label, path or name text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// A label was empty (as in `a::b` or a trailing `:`).
    EmptyLabel {
        /// The whole text that was being parsed.
        text: String,
    },
    /// A label was longer than 63 bytes.
    LabelTooLong {
        /// The offending label.
        label: String,
    },
    /// A label contained a byte outside `[A-Za-z0-9.-]`.
    BadCharacter {
        /// The offending label.
        label: String,
    },
    /// A label started with `-`.
    LeadingDash {
        /// The offending label.
        label: String,
    },
    /// The name text was empty.
    EmptyName,
    /// The name has no label where a unikernel or block device is needed.
    NoLabel {
        /// The name text.
        text: String,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::EmptyLabel { text } => {
                write!(
                    f,
                    "invalid name {text:?}: empty label (labels are separated by single ':')"
                )
            }
            NameError::LabelTooLong { label } => write!(
                f,
                "invalid label {label:?}: {} bytes, at most {MAX_LABEL_LEN} allowed",
                label.len()
            ),
            NameError::BadCharacter { label } => write!(
                f,
                "invalid label {label:?}: only letters, digits, '.' and '-' are allowed"
            ),
            NameError::LeadingDash { label } => {
                write!(f, "invalid label {label:?}: must not start with '-'")
            }
            NameError::EmptyName => write!(f, "invalid name: empty"),
            NameError::NoLabel { text } => {
                write!(
                    f,
                    "{text:?} is a path, but a name with a label is needed here"
                )
            }
        }
    }
}

impl std::error::Error for NameError {}

/// One validated, lower-cased label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    /// Parses and lower-cases a label (§2.1).
    pub fn parse(text: &str) -> Result<Label, NameError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// As [`Label::parse`], from raw bytes (wire strings are not UTF-8 checked).
    pub fn parse_bytes(text: &[u8]) -> Result<Label, NameError> {
        let shown = || String::from_utf8_lossy(text).into_owned();
        if text.is_empty() {
            return Err(NameError::EmptyLabel {
                text: String::new(),
            });
        }
        if text.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong { label: shown() });
        }
        if !text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        {
            return Err(NameError::BadCharacter { label: shown() });
        }
        if text[0] == b'-' {
            return Err(NameError::LeadingDash { label: shown() });
        }
        // All bytes are ASCII here, so this cannot fail.
        let lowered = text.to_ascii_lowercase();
        Ok(Label(String::from_utf8_lossy(&lowered).into_owned()))
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A list of labels; the empty path is the root (§2.2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Path(Vec<Label>);

impl Path {
    /// The root path.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// Builds a path from labels.
    pub fn from_labels(labels: Vec<Label>) -> Path {
        Path(labels)
    }

    /// Parses the text form: labels joined by `:`, an optional leading `:`
    /// dropped, the empty string being the root. A trailing `:` is an error.
    pub fn parse(text: &str) -> Result<Path, NameError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// As [`Path::parse`], from raw bytes.
    pub fn parse_bytes(text: &[u8]) -> Result<Path, NameError> {
        if text.is_empty() {
            return Ok(Path::root());
        }
        let body = text.strip_prefix(b":").unwrap_or(text);
        body.split(|b| *b == b':')
            .map(|piece| {
                Label::parse_bytes(piece).map_err(|e| match e {
                    NameError::EmptyLabel { .. } => NameError::EmptyLabel {
                        text: String::from_utf8_lossy(text).into_owned(),
                    },
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Path)
    }

    /// The labels, outermost first.
    pub fn labels(&self) -> &[Label] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path with one more label appended.
    pub fn child(&self, label: Label) -> Path {
        let mut labels = self.0.clone();
        labels.push(label);
        Path(labels)
    }

    /// The enclosing path, or `None` at the root.
    pub fn parent(&self) -> Option<Path> {
        let (_, init) = self.0.split_last()?;
        Some(Path(init.to_vec()))
    }

    /// Whether `self` equals `other` or lies below it.
    pub fn is_within(&self, other: &Path) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The labels after `prefix`, if `self` lies within `prefix`.
    pub fn strip_prefix(&self, prefix: &Path) -> Option<Path> {
        self.0
            .strip_prefix(prefix.0.as_slice())
            .map(|rest| Path(rest.to_vec()))
    }

    /// Every strict ancestor, root first.
    pub fn ancestors(&self) -> impl Iterator<Item = Path> + '_ {
        (0..self.0.len()).map(move |n| Path(self.0[..n].to_vec()))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            f.write_str(label.as_str())?;
        }
        Ok(())
    }
}

/// A path with an optional label (§2.2, §2.3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Name {
    path: Path,
    label: Option<Label>,
}

impl Name {
    /// The root name (root path, no label); text `:`.
    pub fn root() -> Name {
        Name::default()
    }

    /// A name denoting a path (no label).
    pub fn of_path(path: Path) -> Name {
        Name { path, label: None }
    }

    /// A name denoting `label` inside `path`.
    pub fn new(path: Path, label: Label) -> Name {
        Name {
            path,
            label: Some(label),
        }
    }

    /// Parses the text form (§2.3).
    pub fn parse(text: &str) -> Result<Name, NameError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// As [`Name::parse`], from raw bytes.
    pub fn parse_bytes(text: &[u8]) -> Result<Name, NameError> {
        match text.split_last() {
            None => Err(NameError::EmptyName),
            Some((b':', init)) => Ok(Name::of_path(Path::parse_bytes(init)?)),
            Some(_) => {
                let mut labels = Path::parse_bytes(text)?.0;
                // A non-empty text not ending in ':' parses to at least one label.
                let label = labels.pop().ok_or(NameError::EmptyName)?;
                Ok(Name {
                    path: Path(labels),
                    label: Some(label),
                })
            }
        }
    }

    /// The path part.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The label, if this names a unikernel or block device.
    pub fn label(&self) -> Option<&Label> {
        self.label.as_ref()
    }

    /// Whether this name denotes a path (has no label).
    pub fn is_path(&self) -> bool {
        self.label.is_none()
    }

    /// The label, or an error naming this name when it is a path.
    pub fn require_label(&self) -> Result<&Label, NameError> {
        self.label.as_ref().ok_or_else(|| NameError::NoLabel {
            text: self.to_string(),
        })
    }

    /// A name with the same path and another label: how a unikernel's
    /// block device is named (§2.4).
    pub fn sibling(&self, label: Label) -> Name {
        Name {
            path: self.path.clone(),
            label: Some(label),
        }
    }

    /// All labels including the name's own label: the key in a trie, whose
    /// lexicographic order is upstream's canonical pre-order (§7.2).
    pub fn trie_key(&self) -> Vec<&Label> {
        self.path.0.iter().chain(self.label.iter()).collect()
    }

    /// Whether this name lies at or below `path`.
    pub fn is_within(&self, path: &Path) -> bool {
        self.path.is_within(path)
    }

    /// This name relative to `prefix` (§2.4, "dropping a prefix"), if it
    /// lies within it.
    pub fn relative_to(&self, prefix: &Path) -> Option<Name> {
        Some(Name {
            path: self.path.strip_prefix(prefix)?,
            label: self.label.clone(),
        })
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.path)?;
        if let Some(label) = &self.label {
            f.write_str(label.as_str())?;
        }
        Ok(())
    }
}

/// The MAC derived for interface `netif` of unikernel `name` when none is
/// configured (§2.6): `00:80:41` and the first three bytes of
/// `MD5(netif || text(name))`.
pub fn derived_mac(netif: &str, name: &Name) -> [u8; 6] {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    hasher.update(netif.as_bytes());
    hasher.update(name.to_string().as_bytes());
    let digest = hasher.finalize();
    [0x00, 0x80, 0x41, digest[0], digest[1], digest[2]]
}

/// Formats a MAC as lowercase `xx:xx:xx:xx:xx:xx`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `xx:xx:xx:xx:xx:xx` (hex digits of either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn text_forms() {
        assert_eq!(name(":"), Name::root());
        assert_eq!(name(":").to_string(), ":");
        assert_eq!(name("a:b:").to_string(), "a:b:");
        assert!(name("a:b:").is_path());
        assert_eq!(name("foo").to_string(), ":foo");
        assert_eq!(name(":foo"), name("foo"));
        assert_eq!(name("a:foo").to_string(), "a:foo");
        assert_eq!(name("a:b:x.y").to_string(), "a:b:x.y");
        assert_eq!(name("foo.hello").path(), &Path::root());
        assert_eq!(name("FOO:Bar").to_string(), "foo:bar");
        for bad in ["", "::", "a::b", "a:b::", "-a", "a:-b", "a b", "a/b"] {
            assert!(Name::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Path::parse(":").is_err());
        assert!(Path::parse("a:").is_err());
        assert_eq!(Path::parse("").unwrap(), Path::root());
        assert_eq!(Path::parse(":a:b").unwrap(), Path::parse("a:b").unwrap());
    }

    #[test]
    fn upstream_name_tests() {
        let n = name("foo:bar:my-unikernel.hello");
        assert_eq!(n.path().to_string(), "foo:bar");
        assert_eq!(n.label().unwrap().as_str(), "my-unikernel.hello");
        assert_eq!(n.path().parent().unwrap().to_string(), "foo");
        let p = Path::parse("a:b:c").unwrap();
        assert_eq!(
            name("a:b:c:d:e:foo").relative_to(&p).unwrap().to_string(),
            "d:e:foo"
        );
        assert_eq!(
            name("a:b:c:foo").relative_to(&p).unwrap().to_string(),
            ":foo"
        );
        let deep = Path::parse("a:b:c:d:e").unwrap();
        assert_eq!(name("a:b:c:d:e:").relative_to(&deep).unwrap(), Name::root());
    }

    #[test]
    fn label_length() {
        assert!(Label::parse(&"a".repeat(63)).is_ok());
        assert!(Label::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn mac_derivation() {
        assert_eq!(
            format_mac(&derived_mac("service", &name(":hello"))),
            "00:80:41:cd:8a:eb"
        );
        assert_eq!(
            parse_mac("00:DE:ad:be:ef:00"),
            Some([0, 0xde, 0xad, 0xbe, 0xef, 0])
        );
        assert_eq!(parse_mac("00:de:ad:be:ef"), None);
        assert_eq!(parse_mac("00:de:ad:be:ef:00:11"), None);
        assert_eq!(parse_mac("0:de:ad:be:ef:00"), None);
    }
}

/// Names and paths cross the channels between our own processes as their
/// text form and are parsed again on arrival: a peer cannot make a value
/// that breaks the label rules.
mod channel_codec {
    use super::{Name, Path};
    use bincode::de::{BorrowDecoder, Decoder};
    use bincode::enc::Encoder;
    use bincode::error::{DecodeError, EncodeError};
    use bincode::{BorrowDecode, Decode, Encode};

    impl Encode for Name {
        fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
            self.to_string().encode(encoder)
        }
    }

    impl<C> Decode<C> for Name {
        fn decode<D: Decoder<Context = C>>(decoder: &mut D) -> Result<Name, DecodeError> {
            let text = String::decode(decoder)?;
            Name::parse(&text).map_err(|e| DecodeError::OtherString(e.to_string()))
        }
    }

    impl<'de, C> BorrowDecode<'de, C> for Name {
        fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(
            decoder: &mut D,
        ) -> Result<Name, DecodeError> {
            Name::decode(decoder)
        }
    }

    impl Encode for Path {
        fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
            self.to_string().encode(encoder)
        }
    }

    impl<C> Decode<C> for Path {
        fn decode<D: Decoder<Context = C>>(decoder: &mut D) -> Result<Path, DecodeError> {
            let text = String::decode(decoder)?;
            Path::parse(&text).map_err(|e| DecodeError::OtherString(e.to_string()))
        }
    }

    impl<'de, C> BorrowDecode<'de, C> for Path {
        fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(
            decoder: &mut D,
        ) -> Result<Path, DecodeError> {
            Path::decode(decoder)
        }
    }
}
