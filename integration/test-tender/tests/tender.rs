//! The test tender against the measured behaviour of solo5-hvt/solo5-spt
//! (`solo5-tender.md`): command line, image and block checks, console,
//! exit statuses and signals. No root needed; taps are in `net.rs`.

mod support;

use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};

use albatross::solo5::{AbiTarget, DeviceKind};
use support::*;

const TARGETS: [&str; 2] = ["hvt", "spt"];

fn err_usage(target: &str, lines: &[&str]) -> String {
    let mut text: String = lines
        .iter()
        .map(|l| format!("solo5-{target}: {l}\n"))
        .collect();
    text.push_str(usage(target));
    text
}

#[test]
fn version_acts_at_once() {
    let s = Setup::new();
    for target in TARGETS {
        for args in [
            &["--version"][..],
            &["--foo", "--net:x", "--version", "k"],
            &["--version", "--help"],
        ] {
            let out = run(s.command(target, args));
            assert_eq!(out.code(), 0, "{target} {args:?}");
            assert_eq!(
                out.stderr,
                format!("solo5-{target} tender, version {VERSION}\nABI version 2\n")
            );
            assert_eq!(out.stdout, "");
        }
    }
}

#[test]
fn help_prints_usage_and_fails() {
    let s = Setup::new();
    for target in TARGETS {
        let out = run(s.command(target, &["-x", "--help", "--version"]));
        assert_eq!(out.code(), 1);
        assert_eq!(out.stderr, usage(target));
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn missing_kernel() {
    let s = Setup::new();
    for target in TARGETS {
        for args in [&[][..], &["--mem=2"], &["--mem=2", "--"]] {
            let out = run(s.command(target, args));
            assert_eq!(out.code(), 1);
            assert_eq!(out.stderr, err_usage(target, &["Missing KERNEL operand"]));
        }
    }
}

#[test]
fn unknown_options() {
    let s = Setup::new();
    for target in TARGETS {
        let hello = s.hello(target);
        for option in [
            "-v",
            "--foo",
            "--block-sector-size=4096",
            "--mem",
            "--net:service0",
        ] {
            let out = run(s.command(target, &[option, &hello]));
            assert_eq!(out.code(), 1);
            assert_eq!(
                out.stderr,
                err_usage(target, &[&format!("Invalid option: `{option}'")])
            );
        }
    }
    let out = run(s.command("hvt", &["--x-exec-heap", &s.hello("hvt")]));
    assert_eq!(
        out.stderr,
        err_usage("hvt", &["Invalid option: `--x-exec-heap'"])
    );
}

#[test]
fn program_name_picks_the_target() {
    let s = Setup::new();
    let other = s.path().join("tender");
    symlink(TENDER, &other).unwrap();
    let out = run(Command::new(&other));
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr.contains("cannot tell the target"),
        "{}",
        out.stderr
    );
    let versioned = s.path().join("solo5-spt.2");
    symlink(TENDER, &versioned).unwrap();
    let out = run({
        let mut c = Command::new(&versioned);
        c.arg("--version");
        c
    });
    assert_eq!(
        out.stderr,
        format!("solo5-spt.2 tender, version {VERSION}\nABI version 2\n")
    );
}

#[test]
fn exec_heap_on_spt_warns_and_runs() {
    let s = Setup::new();
    let out = run(s.command(
        "spt",
        &["--x-exec-heapfoo", &s.hello("spt"), "--test-exit=0"],
    ));
    assert_eq!(out.code(), 0);
    assert_eq!(
        out.stderr,
        "solo5-spt: WARNING: The use of --x-exec-heap is dangerous and not recommended as it makes the heap \
         and stack executable.\n"
    );
}

#[test]
fn malformed_memory() {
    let s = Setup::new();
    for target in TARGETS {
        let hello = s.hello(target);
        for mem in ["0", "", "abc", "0x10", "17592186044416"] {
            let out = run(s.command(target, &[&format!("--mem={mem}"), &hello]));
            assert_eq!(out.code(), 1, "{mem}");
            assert_eq!(
                out.stderr,
                format!("solo5-{target}: Malformed argument to --mem\n")
            );
        }
    }
}

#[test]
fn hvt_memory_rules() {
    let s = Setup::new();
    let hello = s.hello("hvt");
    let out = run(s.command(
        "hvt",
        &["--mem=5", "--mem=2k", "--mem=5", &hello, "--test-exit=0"],
    ));
    assert_eq!(out.stderr, "solo5-hvt: adjusting memory to 4194304 bytes\n");
    assert_eq!(out.guest_output("hvt", 4), "Solo5: solo5_exit(0) called\n");
    for (mem, bytes) in [("4097", "4296015872"), ("-1", "18446744073708503040")] {
        let out = run(s.command("hvt", &[&format!("--mem={mem}"), &hello]));
        assert_eq!(out.code(), 1);
        assert_eq!(
            out.stderr,
            format!("solo5-hvt: guest memory size {bytes} bytes exceeds the max size 4294967296 bytes\n")
        );
    }
    // Too small for the guest: it aborts before its banner.
    let out = run(s.command("hvt", &["--mem=1", &hello]));
    assert_eq!(out.code(), 255);
    assert_eq!(out.stderr, "solo5-hvt: adjusting memory to 2097152 bytes\n");
    assert_eq!(out.stdout, "Solo5: ABORT: mem.c:54: Not enough memory\n");
}

#[test]
fn spt_memory_rules() {
    let s = Setup::new();
    let hello = s.hello("spt");
    let image = std::fs::read(&hello).unwrap();
    let entry = u64::from_le_bytes(image[24..32].try_into().unwrap());
    let out = run(s.command("spt", &["--mem=1", &hello]));
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        format!(
            "solo5-spt: {hello}: invalid executable: e_entry does not fall within the memory allocation \
             range ({entry} < 1048576 || {entry} >= 1048576)\n"
        )
    );
    let out = run(s.command("spt", &["--mem=3", &hello, "--test-exit=0"]));
    assert_eq!(out.stderr, "");
    assert_eq!(out.guest_output("spt", 3), "Solo5: solo5_exit(0) called\n");
    let out = run(s.command("spt", &["--mem=100000000", &hello]));
    assert_eq!(
        out.stderr,
        "solo5-spt: Error allocating guest memory: Cannot allocate memory\n"
    );
}

#[test]
fn image_errors_come_before_devices() {
    let s = Setup::new();
    let text = s.path().join("text");
    std::fs::write(&text, "not an image\n").unwrap();
    let text = text.to_string_lossy().into_owned();
    let dir = s.path().to_string_lossy().into_owned();
    let missing = format!("{dir}/missing.hvt");
    let abi3 = s.image("abi3.hvt", AbiTarget::Hvt, 3, &[]);
    let virtio = s.image("hello.virtio", AbiTarget::Virtio, 1, &[]);
    for target in TARGETS {
        let other = s.hello(if target == "hvt" { "spt" } else { "hvt" });
        let cases = [
            (missing.clone(), format!("{missing}: Could not open: No such file or directory")),
            (dir.clone(), format!("{dir}: pread_in_full for elf header while loading note returned 18446744073709551615 < 0")),
            (text.clone(), format!("{text}: invalid executable: invalid or unsupported executable (elf header invalid while loading note)")),
            (other.clone(), format!("{other}: Executable is not for the solo5-{target} target")),
            (virtio.clone(), format!("{virtio}: Executable is not for the solo5-{target} target")),
        ];
        for (image, message) in cases {
            // The bad device option is never looked at.
            let out = run(s.command(target, &["--net:nope=nope", &image]));
            assert_eq!(out.code(), 1);
            assert_eq!(out.stderr, format!("solo5-{target}: {message}\n"));
        }
    }
    let out = run(s.command("hvt", &[&abi3]));
    assert_eq!(
        out.stderr,
        format!("solo5-hvt: {abi3}: Executable requests unsupported ABI version 3\n")
    );
}

#[test]
fn devices_must_match_the_manifest() {
    let s = Setup::new();
    for target in TARGETS {
        let t = abi_target(target);
        let hello = s.hello(target);
        let both = s.image(
            &format!("both.{target}"),
            t,
            2,
            &[
                ("service0", DeviceKind::NetBasic),
                ("storage", DeviceKind::BlockBasic),
            ],
        );
        let disk = s.file("disk", 4096);

        let out = run(s.command(target, &["--net:foo=tap0", &hello]));
        assert_eq!(
            out.stderr,
            err_usage(
                target,
                &[
                    "Resource not declared in manifest: 'foo'",
                    "Invalid option: `--net:foo=tap0'"
                ]
            )
        );
        let wrong_type = format!("--block:service0={disk}");
        let out = run(s.command(target, &[&wrong_type, &both]));
        assert_eq!(
            out.stderr,
            err_usage(
                target,
                &[
                    "Resource not declared in manifest: 'service0'",
                    &format!("Invalid option: `{wrong_type}'")
                ]
            )
        );
        let out = run(s.command(target, &["--net-mac:storage=02:00:00:00:00:01", &both]));
        assert!(out.stderr.starts_with(&format!(
            "solo5-{target}: Resource not declared in manifest: 'storage'\n"
        )));

        let out = run(s.command(target, &[&both]));
        assert_eq!(out.code(), 1);
        assert_eq!(
            out.stderr,
            format!(
                "solo5-{target}: Device 'service0' of type NET_BASIC declared but not attached.\n\
                 solo5-{target}: Device 'storage' of type BLOCK_BASIC declared but not attached.\n\
                 solo5-{target}: All declared devices must be attached. See --help for syntax.\n"
            )
        );
        // A MAC alone does not attach the network.
        let out = run(s.command(
            target,
            &[
                "--net-mac:service0=02:00:00:00:00:01",
                &format!("--block:storage={disk}"),
                &both,
            ],
        ));
        assert_eq!(
            out.stderr,
            format!(
                "solo5-{target}: Device 'service0' of type NET_BASIC declared but not attached.\n\
                 solo5-{target}: All declared devices must be attached. See --help for syntax.\n"
            )
        );
    }
}

#[test]
fn block_devices() {
    let s = Setup::new();
    for target in TARGETS {
        let image = s.image(
            &format!("blk.{target}"),
            abi_target(target),
            2,
            &[("storage", DeviceKind::BlockBasic)],
        );
        let run_with = |options: &[&str], guest: &[&str]| {
            let mut args: Vec<&str> = options.to_vec();
            args.push("--");
            args.push(&image);
            args.extend_from_slice(guest);
            run(s.command(target, &args))
        };
        let dir = s.path().to_string_lossy().into_owned();
        let missing = format!("{dir}/missing.img");
        for (path, error) in [
            (&missing, "No such file or directory"),
            (&dir, "Is a directory"),
        ] {
            let out = run_with(&[&format!("--block:storage={path}")], &[]);
            assert_eq!(out.code(), 1);
            assert_eq!(
                out.stderr,
                format!("solo5-{target}: Could not open block device: {path}: {error}\n")
            );
        }
        let odd = s.file("odd.img", 1000);
        let out = run_with(&[&format!("--block:storage={odd}")], &[]);
        assert_eq!(
            out.stderr,
            format!(
                "solo5-{target}: storage: Backing storage size must be block aligned (512 bytes)\n"
            )
        );
        let empty = s.file("empty.img", 0);
        let out = run_with(&[&format!("--block:storage={empty}")], &[]);
        assert_eq!(
            out.stderr,
            format!("solo5-{target}: storage: Backing storage must be at least 1 block (512 bytes) in size\n")
        );
        let small = s.file("small.img", 2048);
        // The sector size may come after the device.
        let out = run_with(
            &[
                &format!("--block:storage={small}"),
                "--block-sector-size:storage=4096",
            ],
            &[],
        );
        assert_eq!(
            out.stderr,
            format!("solo5-{target}: storage: Backing storage size must be block aligned (4096 bytes)\n")
        );
        for bad in ["1000", "65536"] {
            let option = format!("--block-sector-size:storage={bad}");
            let out = run_with(&[&option], &[]);
            assert_eq!(
                out.stderr,
                err_usage(
                    target,
                    &[
                        "Block size must be a multiple of 2 greater than or equal 512",
                        &format!("Invalid option: `{option}'")
                    ]
                )
            );
        }

        // Written by one run, read by the next: the file is the device.
        let disk = s.file(&format!("disk.{target}"), 8192);
        let block = format!("--block:storage={disk}");
        let out = run_with(
            &["--block-sector-size:storage=4096", &block],
            &["--test-block-write=storage:hello\\ disk", "--test-exit=0"],
        );
        assert_eq!(out.code(), 0, "{out:?}");
        let out = run_with(&[&block], &["--test-block-read=storage", "--test-exit=0"]);
        assert_eq!(
            out.guest_output(target, 512),
            "[storage] hello disk\nSolo5: solo5_exit(0) called\n"
        );
        let out = run_with(&[&block], &["--test-block-read=nope"]);
        assert_eq!(out.code(), 255);
        assert_eq!(
            out.guest_output(target, 512),
            "Solo5: ABORT: no block device 'nope'\n"
        );
    }
}

#[test]
fn console_and_exit_codes() {
    let s = Setup::new();
    for target in TARGETS {
        let hello = s.hello(target);
        let out = run(s.command(
            target,
            &[
                &hello,
                "--test-console=Hello,",
                "--test-console=World",
                "--test-exit=7",
            ],
        ));
        assert_eq!(out.code(), 7);
        assert_eq!(out.stderr, "");
        assert_eq!(
            out.guest_output(target, 512),
            "Hello,\nWorld\nSolo5: solo5_exit(7) called\n"
        );
        for (code, status) in [(0, 0), (255, 255), (256, 0), (300, 44), (-1, 255)] {
            let out = run(s.command(
                target,
                &["--mem=64", &hello, &format!("--test-exit={code}")],
            ));
            assert_eq!(out.code(), status, "{code}");
            assert_eq!(
                out.guest_output(target, 64),
                format!("Solo5: solo5_exit({code}) called\n")
            );
        }
        let out = run(s.command(target, &["--", &hello, "--test-lines=3", "--test-exit=0"]));
        assert_eq!(
            out.guest_output(target, 512),
            "line 1 of 3\nline 2 of 3\nline 3 of 3\nSolo5: solo5_exit(0) called\n"
        );
        // --solo5:quiet silences every Solo5 line, even the exit line.
        let out = run(s.command(
            target,
            &[
                &hello,
                "--solo5:quiet",
                "--test-console=only",
                "--test-exit=3",
            ],
        ));
        assert_eq!(out.stdout, "only\n");
        assert_eq!(out.code(), 3);
        // Everything after KERNEL is the guest's, tender options included.
        let out = run(s.command(
            target,
            &[&hello, "--mem=2", "--net:x=y", "--", "--test-exit=0"],
        ));
        assert_eq!(
            out.guest_output(target, 512),
            "test-unikernel: ignoring argument '--mem=2'\ntest-unikernel: ignoring argument '--net:x=y'\n\
             test-unikernel: ignoring argument '--'\nSolo5: solo5_exit(0) called\n"
        );
    }
}

#[test]
fn aborts_and_crashes() {
    let s = Setup::new();
    for target in TARGETS {
        let hello = s.hello(target);
        let out = run(s.command(target, &[&hello, "--test-abort"]));
        assert_eq!(out.code(), 255);
        assert_eq!(
            out.guest_output(target, 512),
            "Solo5: solo5_abort() called\n"
        );
        let out = run(s.command(
            target,
            &[&hello, "--test-abort=Stack\\ corruption\\ detected"],
        ));
        assert_eq!(out.code(), 255);
        assert_eq!(
            out.guest_output(target, 512),
            "Solo5: ABORT: Stack corruption detected\n"
        );
        let out = run(s.command(target, &[&hello, "--test-exit=x"]));
        assert_eq!(out.code(), 64);
    }
    let out = run(s.command("hvt", &[&s.hello("hvt"), "--test-crash"]));
    assert_eq!(out.code(), 255);
    assert!(
        out.stdout
            .ends_with("Solo5: ABORT: cpu_x86_64.c:182: Fatal trap\n"),
        "{}",
        out.stdout
    );
    let out = run(s.command("spt", &[&s.hello("spt"), "--test-crash"]));
    assert_eq!(out.signal(), 11);
    assert_eq!(out.stderr, "");
    let out = run(s.command("spt", &[&s.hello("spt"), "--test-signal=SYS"]));
    assert_eq!(out.signal(), 31);
}

#[test]
fn name_argument_styles() {
    let s = Setup::new();
    let hello = s.hello("spt");
    let out = run(s.command("spt", &[&hello, "--name=web", "--test-exit=0"]));
    assert_eq!(
        out.guest_output("spt", 512),
        "test-unikernel: my name is web\nSolo5: solo5_exit(0) called\n"
    );
    // MirageOS before 4.10: unknown argument, exit 64 (albatross retries without --name).
    let out = run(s.command("spt", &[&hello, "--name=web", "--test-reject-name"]));
    assert_eq!(out.code(), 64);
    // cmdliner: a parse error is 124.
    let out = run(s.command(
        "spt",
        &[
            &hello,
            "--test-cmdliner-name",
            "--name=web",
            "--test-exit=0",
        ],
    ));
    assert_eq!(out.code(), 124);
    let out = run(s.command("spt", &[&hello, "--test-reject-name", "--test-exit=5"]));
    assert_eq!(out.code(), 5);
    // --help: MirageOS exits 63, cmdliner 0.
    assert_eq!(run(s.command("spt", &[&hello, "--help"])).code(), 63);
    assert_eq!(
        run(s.command("spt", &[&hello, "--version", "--test-cmdliner-name"])).code(),
        0
    );
}

#[test]
fn command_line_limit() {
    let s = Setup::new();
    for target in TARGETS {
        let hello = s.hello(target);
        let fits = "x".repeat(8191 - "--test-exit=0 ".len());
        let out = run(s.command(target, &[&hello, "--test-exit=0", &fits]));
        assert_eq!(out.code(), 0);
        let out = run(s.command(target, &[&hello, "--test-exit=0", &format!("{fits}y")]));
        assert_eq!(out.code(), 1);
        assert_eq!(
            out.stderr,
            format!("solo5-{target}: Guest command line too long (max=8191 characters)\n")
        );
    }
}

#[test]
fn stop_signals_per_tender() {
    let s = Setup::new();
    for (target, signal, number) in [
        ("hvt", "TERM", 15),
        ("hvt", "INT", 2),
        ("spt", "TERM", 15),
        ("spt", "INT", 2),
    ] {
        let mut tender =
            Running::start(s.command(target, &[&s.hello(target), "--test-console=ready"]));
        tender.wait_for("ready");
        tender.signal(signal);
        let out = tender.finish();
        if target == "hvt" {
            assert_eq!(out.code(), 1);
            assert_eq!(
                out.stderr,
                format!("solo5-hvt: Exiting on signal {number}\n")
            );
        } else {
            assert_eq!(out.signal(), number);
            assert_eq!(out.stderr, "");
        }
    }
    for target in TARGETS {
        for (signal, number) in [
            ("HUP", 1),
            ("QUIT", 3),
            ("USR1", 10),
            ("PIPE", 13),
            ("KILL", 9),
        ] {
            let mut tender =
                Running::start(s.command(target, &[&s.hello(target), "--test-console=ready"]));
            tender.wait_for("ready");
            tender.signal(signal);
            assert_eq!(tender.finish().signal(), number, "{target} {signal}");
        }
    }
}

#[test]
fn console_reader_gone_kills_with_sigpipe() {
    let s = Setup::new();
    for target in TARGETS {
        let mut child = s
            .command(
                target,
                &[
                    &s.hello(target),
                    "--test-delay-ms=300",
                    "--test-console=late",
                    "--test-exit=0",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(13), "{target}: {status:?}");
    }
}
