//! The `albatross` multi-call binary: see [`albatross::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    albatross::cli::main()
}
