//! Labels, paths and names (spec §2.1–§2.3) against an independent
//! reference written from the spec text, on generated valid and arbitrary
//! inputs; round trips on canonical forms; lower-casing.

use albatross::model::{Label, Name, Path};
use proptest::prelude::*;

/// §2.1: 1–63 bytes of `[A-Za-z0-9.-]`, not starting with `-`; lower-cased.
fn ref_label(text: &[u8]) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text[0] != b'-'
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.');
    ok.then(|| String::from_utf8(text.to_ascii_lowercase()).unwrap())
}

/// §2.2: split on `:`, drop a first empty piece, every other piece a label.
fn ref_path(text: &[u8]) -> Option<Vec<String>> {
    let mut pieces: Vec<&[u8]> = text.split(|b| *b == b':').collect();
    if pieces[0].is_empty() {
        pieces.remove(0);
    }
    pieces.into_iter().map(ref_label).collect()
}

/// §2.3: empty is an error; a trailing `:` makes a path name; otherwise the
/// last label of the path is the name's label.
fn ref_name(text: &[u8]) -> Option<(Vec<String>, Option<String>)> {
    match text.split_last() {
        None => None,
        Some((b':', init)) => Some((ref_path(init)?, None)),
        Some(_) => {
            let mut labels = ref_path(text)?;
            let label = labels.pop()?;
            Some((labels, Some(label)))
        }
    }
}

fn labels_of(path: &Path) -> Vec<String> {
    path.labels()
        .iter()
        .map(|l| l.as_str().to_owned())
        .collect()
}

fn view(name: &Name) -> (Vec<String>, Option<String>) {
    (
        labels_of(name.path()),
        name.label().map(|l| l.as_str().to_owned()),
    )
}

/// Labels, mostly valid, some invalid (dash first, bad bytes, 63/64 bytes).
fn label_like() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9.][a-zA-Z0-9.-]{0,8}",
        1 => "[a-zA-Z0-9.-]{0,3}",
        1 => "[a-z0-9.-]{62,65}",
        1 => "[a-zA-Z0-9 _/@é-]{1,4}",
    ]
}

/// Texts shaped like names and paths: labels joined by `:`, with optional
/// leading and trailing colons, and occasionally doubled ones.
fn name_like() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(label_like(), 0..5),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![3 => Just(":"), 1 => Just("::")],
    )
        .prop_map(|(labels, lead, trail, sep)| {
            let mut text = labels.join(sep);
            if lead {
                text.insert(0, ':');
            }
            if trail {
                text.push(':');
            }
            text
        })
}

/// Canonical valid names (§2.3 table): lower-case labels, `path:label` or
/// `path:` with the root as `:`/`:label`.
fn canonical_name() -> impl Strategy<Value = String> {
    let label = "[a-z0-9.][a-z0-9.-]{0,10}";
    (
        proptest::collection::vec(label, 0..4),
        proptest::option::of(label),
    )
        .prop_map(|(path, label)| format!("{}:{}", path.join(":"), label.unwrap_or_default()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn label_matches_reference(text in prop_oneof![label_like(), any::<String>()]) {
        let got = Label::parse(&text).ok().map(|l| l.as_str().to_owned());
        prop_assert_eq!(got, ref_label(text.as_bytes()));
    }

    #[test]
    fn label_bytes_match_reference(bytes in proptest::collection::vec(any::<u8>(), 0..70)) {
        let got = Label::parse_bytes(&bytes).ok().map(|l| l.as_str().to_owned());
        prop_assert_eq!(got, ref_label(&bytes));
    }

    #[test]
    fn path_matches_reference(text in prop_oneof![name_like(), any::<String>()]) {
        let got = Path::parse(&text).ok().map(|p| labels_of(&p));
        prop_assert_eq!(got, ref_path(text.as_bytes()));
    }

    #[test]
    fn name_matches_reference(text in prop_oneof![name_like(), any::<String>()]) {
        let got = Name::parse(&text).ok().map(|n| view(&n));
        prop_assert_eq!(got, ref_name(text.as_bytes()));
    }

    #[test]
    fn name_bytes_match_reference(bytes in proptest::collection::vec(
        prop_oneof![Just(b':'), Just(b'a'), Just(b'-'), Just(b'Z'), any::<u8>()], 0..20)) {
        let got = Name::parse_bytes(&bytes).ok().map(|n| view(&n));
        prop_assert_eq!(got, ref_name(&bytes));
    }

    #[test]
    fn canonical_names_round_trip(text in canonical_name()) {
        let name = Name::parse(&text).unwrap();
        prop_assert_eq!(name.to_string(), text.clone());
        prop_assert_eq!(Name::parse(&name.to_string()).unwrap(), name);
    }

    #[test]
    fn any_parsed_name_round_trips(text in name_like()) {
        if let Ok(name) = Name::parse(&text) {
            prop_assert_eq!(Name::parse(&name.to_string()).unwrap(), name);
        }
    }

    #[test]
    fn canonical_paths_round_trip(labels in proptest::collection::vec("[a-z0-9.][a-z0-9.-]{0,10}", 0..4)) {
        let text = labels.join(":");
        let path = Path::parse(&text).unwrap();
        prop_assert_eq!(path.to_string(), text);
        prop_assert_eq!(Path::parse(&path.to_string()).unwrap(), path.clone());
        // A path name `p:` denotes the same path.
        prop_assert_eq!(Name::parse(&format!("{path}:")).unwrap(), Name::of_path(path));
    }

    #[test]
    fn parsing_lower_cases(text in name_like()) {
        let lower = text.to_ascii_lowercase();
        let upper = text.to_ascii_uppercase();
        let parsed = Name::parse(&text);
        prop_assert_eq!(parsed.is_ok(), Name::parse(&upper).is_ok());
        if let Ok(name) = parsed {
            prop_assert_eq!(&name, &Name::parse(&lower).unwrap());
            prop_assert_eq!(&name, &Name::parse(&upper).unwrap());
            let shown = name.to_string();
            prop_assert_eq!(shown.to_ascii_lowercase(), shown);
        }
    }
}

#[test]
fn reference_spot_checks() {
    // The examples of §2.2 and §2.3, through the reference and the parser.
    for (text, path) in [
        ("", Some(vec![])),
        (":a:b", Some(vec!["a", "b"])),
        ("a:b", Some(vec!["a", "b"])),
    ] {
        let expected: Option<Vec<String>> =
            path.map(|p: Vec<&str>| p.into_iter().map(str::to_owned).collect());
        assert_eq!(ref_path(text.as_bytes()), expected);
        assert_eq!(Path::parse(text).ok().map(|p| labels_of(&p)), expected);
    }
    for bad in [":", "a:", "a::b", "::"] {
        assert_eq!(ref_path(bad.as_bytes()), None);
        assert!(Path::parse(bad).is_err());
    }
    assert_eq!(
        view(&Name::parse("foo").unwrap()),
        (vec![], Some("foo".to_owned()))
    );
    assert_eq!(
        view(&Name::parse("foo.hello").unwrap()),
        (vec![], Some("foo.hello".to_owned()))
    );
    assert_eq!(
        view(&Name::parse(".").unwrap()),
        (vec![], Some(".".to_owned()))
    );
    assert!(Name::parse("").is_err());
}

#[test]
fn upstream_path_append() {
    // §19 Name group: appending a label to a path.
    let foo = Label::parse("foo").unwrap();
    assert_eq!(Path::root().child(foo.clone()), Path::parse("foo").unwrap());
    let bar = Label::parse("bar").unwrap();
    let foo_bar = Path::parse("foo").unwrap().child(bar);
    assert_eq!(foo_bar, Path::parse("foo:bar").unwrap());
    let baz = Label::parse("baz").unwrap();
    assert_eq!(foo_bar.child(baz), Path::parse("foo:bar:baz").unwrap());
    // `foo:bar:` is a path name, `foo:bar` a label in `foo`.
    assert_eq!(
        Name::parse("foo:bar:").unwrap(),
        Name::of_path(Path::parse("foo:bar").unwrap())
    );
    assert_eq!(
        Name::parse("foo:bar").unwrap(),
        Name::new(Path::parse("foo").unwrap(), Label::parse("bar").unwrap())
    );
}
