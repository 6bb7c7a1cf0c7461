//! The hex dump upstream's client prints for `--socket -` (§16.8).

use std::fmt::Write;

/// Bytes per dump line.
const WIDTH: usize = 16;
/// Column where the ASCII part starts (0-based).
const ASCII_COLUMN: usize = 50;

/// `out:`, the dump lines, then one empty line; every line ends in `\n`.
///
/// Each line: `%06x` offset, two spaces, the bytes as `%02x` with a space
/// after every second byte and one more after the 8th and 16th, padded so
/// the ASCII column (printable bytes as is, others `.`) starts at column 50.
pub fn render(data: &[u8]) -> String {
    let mut out = String::from("out:\n");
    for (line_no, line) in data.chunks(WIDTH).enumerate() {
        let start = out.len();
        // Writing to a String cannot fail.
        let _ = write!(out, "{:06x}  ", line_no * WIDTH);
        for (i, byte) in line.iter().enumerate() {
            let _ = write!(out, "{byte:02x}");
            if i % 2 == 1 {
                out.push(' ');
            }
            if i == 7 || i == 15 {
                out.push(' ');
            }
        }
        while out.len() - start < ASCII_COLUMN {
            out.push(' ');
        }
        out.extend(line.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of §16.8 (`info -n hello --socket -`), byte for byte.
    #[test]
    fn upstream_example() {
        let data = [
            0x30, 0x1f, 0x30, 0x15, 0x02, 0x01, 0x05, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x0c, 0x06, 0x3a, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa0, 0x06, 0xa3,
            0x04, 0xb3, 0x02, 0x05, 0x00,
        ];
        let expected = "out:\n\
            000000  301f 3015 0201 0504  0800 0000 0000 0000  0.0.............\n\
            000010  000c 063a 6865 6c6c  6fa0 06a3 04b3 0205  ...:hello.......\n\
            000020  00                                        .\n\
            \n";
        assert_eq!(render(&data), expected);
    }

    #[test]
    fn odd_lengths_keep_the_ascii_column() {
        for n in 1..=WIDTH {
            let text = render(&vec![0x41; n]);
            let line = text.lines().nth(1).unwrap();
            assert_eq!(line.find('A'), Some(ASCII_COLUMN), "{n} bytes: {line:?}");
            assert_eq!(line.len(), ASCII_COLUMN + n);
        }
    }
}
