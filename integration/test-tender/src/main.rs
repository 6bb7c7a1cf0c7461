//! `test-tender`: the stand-in for Solo5's `solo5-hvt` and `solo5-spt` in
//! albatross-rs tests. Called through a symlink named like the real tender,
//! it takes the real command line, checks the image and attaches real taps
//! and block files with the real error messages and exit codes, then runs a
//! scripted "guest" chosen by the unikernel arguments. See README.md.

mod cmdline;
mod console;
mod devices;
mod guest;
mod net;
mod personality;
mod signals;
mod tender;

fn main() {
    // Arguments that are not UTF-8 cannot name our test images or taps.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(tender::run(&argv));
}
