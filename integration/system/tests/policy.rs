//! Policies (§9): a create or block add over a limit is refused with the
//! spec's message, and nothing else changes.

use albatross::solo5::{AbiTarget, DeviceKind};
use albatross_integration::{require_root, Setup, System};

/// Creates `name` with an image declaring a `service` network if `net` is
/// given; `flags` are further client options.
fn create(
    system: &System,
    name: &str,
    net: Option<&str>,
    flags: &[&str],
) -> albatross_integration::Output {
    let devices: &[(&str, DeviceKind)] = if net.is_some() {
        &[("service", DeviceKind::NetBasic)]
    } else {
        &[]
    };
    let image = system.image(
        &format!("{}.img", name.replace(':', "-")),
        AbiTarget::Spt,
        devices,
    );
    let net = net.map(|bridge| format!("--net=service:{bridge}"));
    let mut args = vec![name, image.to_str().unwrap()];
    args.extend(net.as_deref());
    args.extend_from_slice(flags);
    system.client("create", &args)
}

/// Runs `what`, which must be refused with `message` (exit 117) and leave
/// the system as it was.
fn refused(
    system: &System,
    context: &str,
    message: &str,
    what: impl FnOnce() -> albatross_integration::Output,
) {
    let before = system.observe();
    let out = what();
    assert_eq!(out.code, 117, "{context}: {out:?}");
    assert_eq!(out.stdout, "", "{context}");
    assert!(
        out.stderr.contains(&format!("failure: {message}")),
        "{context}: expected {message:?} in {out:?}"
    );
    system.assert_unchanged(&before, context);
}

#[test]
fn limits_of_a_policy_refuse_creates() {
    require_root!();
    let system = Setup::new()
        .bridge("br0", "10.0.1.1/24")
        .bridge("br1", "10.0.2.1/24")
        .start();
    let out = system.client_ok(
        "add-policy",
        &[
            "tenant",
            "2",
            "--mem=64",
            "--cpu=0",
            "--network=br0",
            "--block=10",
        ],
    );
    assert_eq!(out.stdout, "tenant:: added policy\n");
    let ok = create(&system, "tenant:a", Some("br0"), &["--mem=32"]);
    assert_eq!(ok.code, 0, "{ok:?}");

    refused(
        &system,
        "memory",
        "maximum allowed memory (64, used 32) would be exceeded (requesting 48)",
        || create(&system, "tenant:big", None, &["--mem=48"]),
    );
    refused(&system, "cpu", "CPUids 1 are not allowed by policy", || {
        create(&system, "tenant:cpu", None, &["--mem=16", "--cpu=1"])
    });
    refused(
        &system,
        "bridge",
        "bridges br1 not allowed by policy",
        || create(&system, "tenant:br", Some("br1"), &["--mem=16"]),
    );
    let ok = create(&system, "tenant:b", Some("br0"), &["--mem=16"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    refused(
        &system,
        "count",
        "maximum amount of unikernels (2) reached",
        || create(&system, "tenant:c", None, &["--mem=8"]),
    );
    // The root policy is the host: 2 cpus here (0 and 1).
    refused(
        &system,
        "root cpu",
        "CPUids 7 are not allowed by policy",
        || create(&system, "rooted", None, &["--cpu=7"]),
    );
    // A policy below what runs is refused too (§9.3).
    refused(
        &system,
        "policy below usage",
        "unikernel would exceed running unikernel limit set by policy to 1, running 2",
        || {
            system.client(
                "add-policy",
                &[
                    "tenant",
                    "1",
                    "--mem=64",
                    "--cpu=0",
                    "--network=br0",
                    "--block=10",
                ],
            )
        },
    );
    assert_eq!(system.running(), ["tenant:a", "tenant:b"]);
}

#[test]
fn limits_of_a_policy_refuse_block_devices() {
    require_root!();
    let system = Setup::new().start();
    system.client_ok("add-policy", &["tenant", "2", "--block=10"]);
    system.client_ok("add-policy", &["noblock", "2"]);
    let out = system.client_ok("create-block", &["tenant:disk", "8"]);
    assert_eq!(out.stdout, "tenant:disk: added block device\n");
    refused(
        &system,
        "block limit",
        "block device policy limit of 10 MB (used 8 MB) would be exceeded by the request (4 MB)",
        || system.client("create-block", &["tenant:more", "4"]),
    );
    refused(
        &system,
        "no block storage",
        "no block devices are allowed by policy",
        || system.client("create-block", &["noblock:disk", "1"]),
    );
    refused(
        &system,
        "same name",
        "block device with same name already exists",
        || system.client("create-block", &["tenant:disk", "1"]),
    );
    // Within the limit it works, and fills it.
    system.client_ok("create-block", &["tenant:rest", "2"]);
    let out = system.client_ok("block", &[]);
    assert_eq!(
        out.stdout,
        "tenant:disk: 8 MB, inactive\ntenant:rest: 2 MB, inactive\n"
    );
}
