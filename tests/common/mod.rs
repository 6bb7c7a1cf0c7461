//! Helpers shared by the integration tests: reading the vectors under
//! `tests/vectors/`.

#![allow(dead_code)] // Each test crate uses its own subset.

use std::path::PathBuf;

/// The path of vector `name`.
pub fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// The text of vector `name`.
pub fn read_text(name: &str) -> String {
    std::fs::read_to_string(vector_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Decodes one line of hexadecimal.
pub fn unhex(line: &str) -> Vec<u8> {
    let line = line.trim();
    assert!(line.len() % 2 == 0, "odd hex length");
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        .collect()
}

/// The bytes of the hexadecimal vector `name`.
pub fn hex_file(name: &str) -> Vec<u8> {
    unhex(&read_text(name))
}

/// Decodes standard base64 (padding optional, surrounding white space
/// ignored).
pub fn unbase64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The bytes of the base64 vector `name`.
pub fn b64_file(name: &str) -> Vec<u8> {
    unbase64(&read_text(name))
}
