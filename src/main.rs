//! The `albatross` multi-call binary.

fn main() {}
