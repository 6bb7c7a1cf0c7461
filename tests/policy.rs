//! Policies and resource accounting (spec §9): every static and dynamic
//! rule with an accepted and a refused case, upstream's `Resources` tests
//! (§19), and the consequences §9.2 spells out.

use std::collections::BTreeSet;
use std::fmt::Debug;

use albatross::model::{
    BlockAddError, BlockDevice, BlockSizeError, BlockSpec, BlockUseError, ExceedsPolicy,
    FailBehaviour, Name, NetSpec, Path, Policy, PolicyError, Resources, StartError,
    UnikernelArguments, UnikernelError, UnikernelUsage, UnknownPolicy, UNLIMITED_UNIKERNELS,
};

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn p(s: &str) -> Path {
    Path::parse(s).unwrap()
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

fn strings(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Upstream's `p1`: 1 unikernel, cpus {0}, 10 MB, block 5, bridges {service}.
fn p1() -> Policy {
    Policy {
        unikernels: 1,
        cpuids: set(&[0]),
        memory: 10,
        block: Some(5),
        bridges: strings(&["service"]),
    }
}

fn policy(
    unikernels: i64,
    cpuids: &[i64],
    memory: i64,
    block: Option<i64>,
    bridges: &[&str],
) -> Policy {
    Policy {
        unikernels,
        cpuids: set(cpuids),
        memory,
        block,
        bridges: strings(bridges),
    }
}

/// Upstream's `u`: cpus {0}, 10 MB, net `service`.
fn u() -> UnikernelUsage {
    UnikernelUsage {
        cpuids: set(&[0]),
        memory: 10,
        bridges: vec!["service".to_owned()],
        blocks: Vec::new(),
    }
}

fn usage(cpuids: &[i64], memory: i64, bridges: &[&str], blocks: &[&str]) -> UnikernelUsage {
    UnikernelUsage {
        cpuids: set(cpuids),
        memory,
        bridges: bridges.iter().map(|s| s.to_string()).collect(),
        blocks: blocks.iter().map(|s| s.to_string()).collect(),
    }
}

/// `r1`: empty resources with `p1` at `alpha`.
fn r1() -> Resources {
    let mut r = Resources::default();
    r.insert_policy(&p("alpha"), p1()).unwrap();
    r
}

/// Runs `op` on `r`, expects exactly `expected` as the error, and checks
/// that nothing changed.
fn refused<T: Debug, E: Debug + PartialEq>(
    r: &mut Resources,
    expected: E,
    op: impl FnOnce(&mut Resources) -> Result<T, E>,
) {
    let before = r.clone();
    let got = op(r);
    match got {
        Ok(value) => panic!("expected {expected:?}, got Ok({value:?})"),
        Err(err) => assert_eq!(err, expected),
    }
    assert_eq!(*r, before, "state changed after a refusal");
}

fn start(r: &mut Resources, name: &str, usage: UnikernelUsage) {
    r.check_start(&n(name), &usage).unwrap();
    r.insert_unikernel(&n(name), usage).unwrap();
}

// ---- upstream's Resources group (§19) -------------------------------------

#[test]
fn upstream_empty_resources_accept_everything() {
    let r = Resources::default();
    assert_eq!(r, Resources::default());
    for name in ["foo", "bar", "foo:bar"] {
        assert_eq!(r.check_start(&n(name), &u()), Ok(()));
    }
    assert_eq!(r.check_block_add(&n("foo:bar"), 10), Ok(10 << 20));
}

#[test]
fn upstream_policy_is_respected_unikernel() {
    let r = r1();
    assert_eq!(r.check_start(&n("alpha:bar"), &u()), Ok(()));
    let cpu1 = UnikernelUsage {
        cpuids: set(&[1]),
        ..u()
    };
    assert_eq!(
        r.check_start(&n("alpha:bar"), &cpu1),
        Err(StartError::CpuidsNotAllowed {
            not_allowed: set(&[1])
        })
    );
    let mem11 = UnikernelUsage { memory: 11, ..u() };
    assert_eq!(
        r.check_start(&n("alpha:bar"), &mem11),
        Err(StartError::MemoryExceeded {
            limit: 10,
            used: 0,
            requested: 11
        })
    );
    let service2 = UnikernelUsage {
        bridges: vec!["service2".to_owned()],
        ..u()
    };
    assert_eq!(
        r.check_start(&n("alpha:bar"), &service2),
        Err(StartError::BridgesNotAllowed {
            not_allowed: vec!["service2".to_owned()]
        })
    );
}

#[test]
fn upstream_policy_is_respected_block() {
    let mut r = r1();
    assert_eq!(r.check_block_add(&n("alpha:bar"), 5), Ok(5 << 20));
    refused(
        &mut r,
        BlockAddError::LimitExceeded {
            limit: 5,
            used: 0,
            requested: 10,
        },
        |r| r.add_block(&n("alpha:bar"), 10),
    );
    let mut r = Resources::default();
    r.insert_policy(
        &p("alpha"),
        Policy {
            block: None,
            ..p1()
        },
    )
    .unwrap();
    refused(&mut r, BlockAddError::NotAllowed, |r| {
        r.add_block(&n("alpha:bar"), 5)
    });
}

#[test]
fn upstream_policy_is_respected_sub() {
    let sub = p("alpha:beta");
    let above = |reason| PolicyError::Above {
        path: p("alpha"),
        reason,
    };
    assert_eq!(r1().insert_policy(&sub, p1()), Ok(()));
    assert_eq!(
        r1().insert_policy(
            &sub,
            Policy {
                block: None,
                ..p1()
            }
        ),
        Ok(())
    );
    let cases = [
        (
            Policy {
                unikernels: 2,
                ..p1()
            },
            ExceedsPolicy::Unikernels {
                limit: 1,
                requested: 2,
            },
        ),
        (
            Policy {
                cpuids: set(&[1]),
                ..p1()
            },
            ExceedsPolicy::Cpuids {
                not_allowed: set(&[1]),
            },
        ),
        (
            Policy {
                cpuids: set(&[0, 1]),
                ..p1()
            },
            ExceedsPolicy::Cpuids {
                not_allowed: set(&[1]),
            },
        ),
        (
            Policy { memory: 11, ..p1() },
            ExceedsPolicy::Memory {
                limit: 10,
                requested: 11,
            },
        ),
        (
            Policy {
                block: Some(10),
                ..p1()
            },
            ExceedsPolicy::Block {
                limit: 5,
                requested: 10,
            },
        ),
        (
            Policy {
                bridges: strings(&["service2"]),
                ..p1()
            },
            ExceedsPolicy::Bridges {
                allowed: strings(&["service"]),
                requested: strings(&["service2"]),
            },
        ),
        (
            Policy {
                bridges: strings(&["service", "service2"]),
                ..p1()
            },
            ExceedsPolicy::Bridges {
                allowed: strings(&["service"]),
                requested: strings(&["service", "service2"]),
            },
        ),
    ];
    for (policy, reason) in cases {
        refused(&mut r1(), above(reason), |r| r.insert_policy(&sub, policy));
    }
}

#[test]
fn upstream_policy_is_respected_super() {
    let root = Path::root();
    let below = |reason| PolicyError::Below {
        path: p("alpha"),
        reason,
    };
    for policy in [
        Policy {
            unikernels: 2,
            ..p1()
        },
        Policy {
            cpuids: set(&[0, 1]),
            ..p1()
        },
        Policy { memory: 11, ..p1() },
        Policy {
            block: Some(5),
            ..p1()
        },
        Policy {
            bridges: strings(&["service", "foo"]),
            ..p1()
        },
    ] {
        assert_eq!(r1().insert_policy(&root, policy), Ok(()));
    }
    let cases = [
        (
            Policy {
                unikernels: 0,
                ..p1()
            },
            ExceedsPolicy::Unikernels {
                limit: 0,
                requested: 1,
            },
        ),
        (
            Policy {
                cpuids: set(&[1]),
                ..p1()
            },
            ExceedsPolicy::Cpuids {
                not_allowed: set(&[0]),
            },
        ),
        (
            Policy { memory: 5, ..p1() },
            ExceedsPolicy::Memory {
                limit: 5,
                requested: 10,
            },
        ),
        (
            Policy {
                block: Some(3),
                ..p1()
            },
            ExceedsPolicy::Block {
                limit: 3,
                requested: 5,
            },
        ),
        (
            Policy {
                block: None,
                ..p1()
            },
            ExceedsPolicy::Block {
                limit: 0,
                requested: 5,
            },
        ),
        (
            Policy {
                bridges: strings(&["foo"]),
                ..p1()
            },
            ExceedsPolicy::Bridges {
                allowed: strings(&["foo"]),
                requested: strings(&["service"]),
            },
        ),
    ];
    for (policy, reason) in cases {
        refused(&mut r1(), below(reason), |r| r.insert_policy(&root, policy));
    }
}

#[test]
fn upstream_policy_can_be_overwritten() {
    let mut r = r1();
    let changed = Policy {
        unikernels: 2,
        ..p1()
    };
    assert_eq!(r.insert_policy(&p("alpha"), changed.clone()), Ok(()));
    assert_eq!(r.policy(&p("alpha")), Some(&changed));
}

#[test]
fn upstream_block_insertion_and_removal() {
    let mut r = Resources::default();
    assert_eq!(r.add_block(&n("foo"), 10), Ok(()));
    refused(&mut r, BlockAddError::Exists, |r| {
        r.add_block(&n("foo"), 10)
    });
    assert_eq!(
        r.remove_block(&n("foo")),
        Ok(BlockDevice {
            size: 10,
            active: false
        })
    );
    assert_eq!(r.add_block(&n("foo"), 10), Ok(()));
    refused(&mut Resources::default(), BlockUseError::NotFound, |r| {
        r.remove_block(&n("foo"))
    });
}

#[test]
fn upstream_policy_removal() {
    refused(
        &mut Resources::default(),
        UnknownPolicy { path: p("foo") },
        |r| r.remove_policy(&p("foo")),
    );
    assert_eq!(
        UnknownPolicy { path: p("foo") }.to_string(),
        "unknown policy"
    );
    let mut r = r1();
    assert_eq!(r.remove_policy(&p("alpha")), Ok(p1()));
    assert_eq!(r.policy(&p("alpha")), None);
}

#[test]
fn upstream_unikernel_insertion_and_removal() {
    let mut r = r1();
    let beta = n("alpha:beta");
    refused(
        &mut r,
        UnikernelError::Unknown { name: beta.clone() },
        |r| r.remove_unikernel(&beta),
    );
    assert_eq!(r.insert_unikernel(&beta, u()), Ok(()));
    assert_eq!(r.check_replace(&beta, &u()), Ok(()));
    // The policy allows one unikernel, so relax it to reach the name check.
    r.insert_policy(
        &p("alpha"),
        Policy {
            unikernels: 2,
            memory: 20,
            ..p1()
        },
    )
    .unwrap();
    assert_eq!(r.check_start(&beta, &u()), Err(StartError::AlreadyExists));
    assert_eq!(
        StartError::AlreadyExists.to_string(),
        "unikernel with same name already exists"
    );
    refused(
        &mut r,
        UnikernelError::AlreadyRunning { name: beta.clone() },
        |r| r.insert_unikernel(&beta, u()),
    );
    assert_eq!(r.remove_unikernel(&beta), Ok(u()));
    assert_eq!(r.unikernel(&beta), None);
    assert_eq!(r.insert_unikernel(&beta, u()), Ok(()));
}

#[test]
fn upstream_unikernel_with_block() {
    let with_block = UnikernelUsage {
        blocks: vec!["block".to_owned()],
        ..u()
    };
    let r = r1();
    assert_eq!(
        r.check_start(&n("alpha:bar"), &with_block),
        Err(StartError::BlockNotFound {
            device: "alpha:block".to_owned()
        })
    );
    let mut r2 = r1();
    r2.add_block(&n("alpha:block"), 5).unwrap();
    assert_eq!(r2.check_start(&n("alpha:bar"), &with_block), Ok(()));
    // Device "b" (BlockSpec name "block", device "b") is missing.
    let device_b = UnikernelUsage {
        blocks: vec!["b".to_owned()],
        ..u()
    };
    assert_eq!(
        r2.check_start(&n("alpha:bar"), &device_b),
        Err(StartError::BlockNotFound {
            device: "alpha:b".to_owned()
        })
    );
    r2.insert_unikernel(&n("alpha:bar"), with_block.clone())
        .unwrap();
    // Upstream accepts any error here; with p1 the count is hit first.
    assert_eq!(
        r2.check_start(&n("alpha:bar2"), &with_block),
        Err(StartError::TooManyUnikernels { limit: 1 })
    );
    // With room in the policy, the device in use is what refuses.
    r2.insert_policy(
        &p("alpha"),
        Policy {
            unikernels: 2,
            memory: 20,
            ..p1()
        },
    )
    .unwrap();
    assert_eq!(
        r2.check_start(&n("alpha:bar2"), &with_block),
        Err(StartError::BlockInUse {
            device: "alpha:block".to_owned()
        })
    );
    refused(&mut r2, BlockUseError::InUse, |r| {
        r.remove_block(&n("alpha:block"))
    });
}

// ---- §9.2 dynamic check, rule by rule --------------------------------------

#[test]
fn dynamic_count_counts_everything_at_or_below_the_path() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(2, &[0], 100, None, &["service"]))
        .unwrap();
    start(&mut r, "a:x", u());
    assert_eq!(r.check_start(&n("a:y"), &u()), Ok(()));
    // A unikernel in a sub-path without its own policy counts for `a`.
    start(&mut r, "a:b:z", u());
    let err = r.check_start(&n("a:y"), &u()).unwrap_err();
    assert_eq!(err, StartError::TooManyUnikernels { limit: 2 });
    assert_eq!(err.to_string(), "maximum amount of unikernels (2) reached");
}

#[test]
fn dynamic_memory_boundary() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(5, &[0], 30, None, &["service"]))
        .unwrap();
    start(&mut r, "a:x", usage(&[0], 12, &[], &[]));
    start(&mut r, "a:b:x", usage(&[0], 8, &[], &[]));
    assert_eq!(r.check_start(&n("a:y"), &usage(&[0], 10, &[], &[])), Ok(()));
    let err = r
        .check_start(&n("a:y"), &usage(&[0], 11, &[], &[]))
        .unwrap_err();
    assert_eq!(
        err,
        StartError::MemoryExceeded {
            limit: 30,
            used: 20,
            requested: 11
        }
    );
    assert_eq!(
        err.to_string(),
        "maximum allowed memory (30, used 20) would be exceeded (requesting 11)"
    );
}

#[test]
fn dynamic_cpuids_must_be_a_subset() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(5, &[0, 2], 100, None, &[]))
        .unwrap();
    assert_eq!(
        r.check_start(&n("a:x"), &usage(&[0, 2], 1, &[], &[])),
        Ok(())
    );
    let err = r
        .check_start(&n("a:x"), &usage(&[0, 1, 3], 1, &[], &[]))
        .unwrap_err();
    assert_eq!(
        err,
        StartError::CpuidsNotAllowed {
            not_allowed: set(&[1, 3])
        }
    );
    assert_eq!(err.to_string(), "CPUids 1, 3 are not allowed by policy");
}

#[test]
fn dynamic_bridges_use_bridge_or_netif() {
    let args = |bridges: Vec<NetSpec>| UnikernelArguments {
        fail_behaviour: FailBehaviour::Quit,
        startup: None,
        add_name: true,
        cpuids: vec![0],
        memory: 1,
        blocks: Vec::new(),
        bridges,
        argv: None,
        cpus: 1,
        linux_boot_partition: None,
    };
    let net = |netif: &str, bridge: Option<&str>| NetSpec {
        netif: netif.to_owned(),
        bridge: bridge.map(str::to_owned),
        mac: None,
    };
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(5, &[0], 100, None, &["br0", "service"]))
        .unwrap();
    let ok = UnikernelUsage::of(&args(vec![net("service", None), net("eth1", Some("br0"))]));
    assert_eq!(ok.bridges, ["service", "br0"]);
    assert_eq!(r.check_start(&n("a:x"), &ok), Ok(()));
    let bad = UnikernelUsage::of(&args(vec![
        net("br0", None),
        net("service", Some("other")),
        net("wild", None),
    ]));
    let err = r.check_start(&n("a:x"), &bad).unwrap_err();
    assert_eq!(
        err,
        StartError::BridgesNotAllowed {
            not_allowed: vec!["other".to_owned(), "wild".to_owned()]
        }
    );
    assert_eq!(err.to_string(), "bridges other, wild not allowed by policy");
}

#[test]
fn dynamic_usage_of_configuration() {
    let args = UnikernelArguments {
        fail_behaviour: FailBehaviour::Restart(vec![]),
        startup: Some(3),
        add_name: false,
        cpuids: vec![2, 0, 2],
        memory: 64,
        blocks: vec![
            BlockSpec {
                name: "storage".to_owned(),
                device: None,
                sector_size: None,
            },
            BlockSpec {
                name: "other".to_owned(),
                device: Some("disk".to_owned()),
                sector_size: Some(4096),
            },
        ],
        bridges: Vec::new(),
        argv: None,
        cpus: 1,
        linux_boot_partition: None,
    };
    assert_eq!(
        UnikernelUsage::of(&args),
        usage(&[0, 2], 64, &[], &["storage", "disk"])
    );
}

#[test]
fn dynamic_only_the_policy_at_the_path_counts() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(1, &[0], 10, None, &[]))
        .unwrap();
    r.insert_policy(&p("a:b"), policy(1, &[0], 10, None, &[]))
        .unwrap();
    // No policy at `a:c`: unrestricted, even beyond the policy of `a`.
    let big = usage(&[7], 1000, &["anything"], &[]);
    assert_eq!(r.check_start(&n("a:c:x"), &big), Ok(()));
    assert_eq!(r.check_start(&n("x"), &big), Ok(()));
    // The policy of `a:b` applies to `a:b:x`, not the one of `a`.
    assert_eq!(
        r.check_start(&n("a:b:x"), &big),
        Err(StartError::MemoryExceeded {
            limit: 10,
            used: 0,
            requested: 1000
        })
    );
}

#[test]
fn dynamic_sub_paths_are_not_summed_against_ancestors() {
    // §9.2: with `a` (2 unikernels) and `a:b`, `a:c` (2 each), both
    // sub-paths run 2 each.
    let mut r = Resources::default();
    let two = policy(2, &[0], 100, None, &["service"]);
    r.insert_policy(&p("a"), two.clone()).unwrap();
    r.insert_policy(&p("a:b"), two.clone()).unwrap();
    r.insert_policy(&p("a:c"), two.clone()).unwrap();
    for name in ["a:b:1", "a:b:2", "a:c:1", "a:c:2"] {
        start(&mut r, name, u());
    }
    assert_eq!(r.unikernels_below(&p("a")).count(), 4);
    // Inserting a changed policy at `a` fails now.
    refused(
        &mut r,
        PolicyError::UnikernelsRunning {
            limit: 2,
            running: 4,
        },
        |r| {
            r.insert_policy(
                &p("a"),
                Policy {
                    block: Some(0),
                    ..two.clone()
                },
            )
        },
    );
    // The model re-checks identical policies too; the daemon answers "no
    // modification of policy" before calling it (§8.3).
    assert_eq!(r.policy(&p("a")), Some(&two));
    refused(
        &mut r,
        PolicyError::UnikernelsRunning {
            limit: 2,
            running: 4,
        },
        |r| r.insert_policy(&p("a"), two.clone()),
    );
}

#[test]
fn dynamic_check_order_policy_blocks_name() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(1, &[0], 10, Some(10), &["service"]))
        .unwrap();
    r.add_block(&n("a:d"), 1).unwrap();
    start(&mut r, "a:x", usage(&[0], 1, &["service"], &["d"]));
    // Same name, device in use, count reached: the policy is reported.
    let again = usage(&[0], 1, &["service"], &["d"]);
    assert_eq!(
        r.check_start(&n("a:x"), &again),
        Err(StartError::TooManyUnikernels { limit: 1 })
    );
    r.insert_policy(&p("a"), policy(2, &[0], 10, Some(10), &["service"]))
        .unwrap();
    // Policy passes: the block comes before the name.
    let err = r.check_start(&n("a:x"), &again).unwrap_err();
    assert_eq!(
        err,
        StartError::BlockInUse {
            device: "a:d".to_owned()
        }
    );
    assert_eq!(err.to_string(), "block device a:d already in use");
    // Without the block the name is reported.
    assert_eq!(
        r.check_start(&n("a:x"), &usage(&[0], 1, &["service"], &[])),
        Err(StartError::AlreadyExists)
    );
    let err = r
        .check_start(&n("a:y"), &usage(&[0], 1, &[], &["nope"]))
        .unwrap_err();
    assert_eq!(err.to_string(), "block device a:nope not found");
}

#[test]
fn dynamic_block_named_twice_is_in_use() {
    let mut r = Resources::default();
    r.add_block(&n("d"), 1).unwrap();
    let twice = usage(&[0], 1, &[], &["d", "d"]);
    assert_eq!(
        r.check_start(&n("x"), &twice),
        Err(StartError::BlockInUse {
            device: ":d".to_owned()
        })
    );
    refused(
        &mut r,
        UnikernelError::BlockAlreadyInState {
            device: ":d".to_owned(),
            active: true,
        },
        |r| r.insert_unikernel(&n("x"), twice.clone()),
    );
}

#[test]
fn check_does_not_change_anything() {
    let mut r = r1();
    r.add_block(&n("alpha:block"), 5).unwrap();
    let before = r.clone();
    let with_block = UnikernelUsage {
        blocks: vec!["block".to_owned()],
        ..u()
    };
    assert_eq!(r.check_start(&n("alpha:bar"), &with_block), Ok(()));
    assert_eq!(r.check_replace(&n("alpha:bar"), &with_block), Ok(()));
    assert_eq!(r, before);
}

// ---- force-create / restart (§8.2) ------------------------------------------

#[test]
fn replace_checks_as_if_the_old_instance_were_gone() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(1, &[0], 10, Some(10), &["service"]))
        .unwrap();
    r.add_block(&n("a:d"), 5).unwrap();
    let old = usage(&[0], 10, &["service"], &["d"]);
    start(&mut r, "a:x", old.clone());
    let before = r.clone();
    assert_eq!(
        r.check_start(&n("a:x"), &old),
        Err(StartError::TooManyUnikernels { limit: 1 })
    );
    // Count, memory and the device of the old instance are free again.
    assert_eq!(r.check_replace(&n("a:x"), &old), Ok(()));
    assert_eq!(
        r.check_replace(&n("a:x"), &usage(&[0], 11, &["service"], &["d"])),
        Err(StartError::MemoryExceeded {
            limit: 10,
            used: 0,
            requested: 11
        })
    );
    assert_eq!(r, before);
    // Another name still sees the old instance.
    r.insert_policy(&p("a"), policy(2, &[0], 20, Some(10), &["service"]))
        .unwrap();
    assert_eq!(
        r.check_replace(&n("a:y"), &old),
        Err(StartError::BlockInUse {
            device: "a:d".to_owned()
        })
    );
    assert_eq!(
        r.check_replace(&n("a:y"), &usage(&[0], 11, &["service"], &[])),
        Err(StartError::MemoryExceeded {
            limit: 20,
            used: 10,
            requested: 11
        })
    );
    // Not running: same as a plain start.
    assert_eq!(
        r.check_replace(&n("a:y"), &usage(&[0], 10, &["service"], &[])),
        r.check_start(&n("a:y"), &usage(&[0], 10, &["service"], &[]))
    );
}

// ---- §9.3 static check ------------------------------------------------------

#[test]
fn static_root_is_never_above() {
    // QUIRK: the root policy does not bound ordinary policies.
    let mut r = Resources::default();
    r.insert_policy(&Path::root(), policy(1, &[0], 100, Some(10), &["br0"]))
        .unwrap();
    let big = policy(1000, &[0, 1, 2, 3], 1 << 40, Some(1 << 40), &["br0", "br9"]);
    assert_eq!(r.insert_policy(&p("a"), big.clone()), Ok(()));
    // But a later root policy is checked against what is below it.
    refused(
        &mut r,
        PolicyError::Below {
            path: p("a"),
            reason: ExceedsPolicy::Unikernels {
                limit: 1,
                requested: 1000,
            },
        },
        |r| r.insert_policy(&Path::root(), policy(1, &[0], 100, Some(10), &["br0"])),
    );
}

#[test]
fn static_above_nearest_first_skipping_paths_without_policy() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(10, &[0, 1], 100, Some(100), &["br0"]))
        .unwrap();
    // `a:b` has no policy: `a:b:c` is bounded by `a`.
    refused(
        &mut r,
        PolicyError::Above {
            path: p("a"),
            reason: ExceedsPolicy::Memory {
                limit: 100,
                requested: 101,
            },
        },
        |r| r.insert_policy(&p("a:b:c"), policy(1, &[0], 101, None, &[])),
    );
    assert_eq!(
        r.insert_policy(&p("a:b:c"), policy(1, &[0], 100, None, &[])),
        Ok(())
    );
    r.insert_policy(&p("a:b"), policy(5, &[0], 100, Some(50), &["br0"]))
        .unwrap();
    refused(
        &mut r,
        PolicyError::Above {
            path: p("a:b"),
            reason: ExceedsPolicy::Cpuids {
                not_allowed: set(&[1]),
            },
        },
        |r| r.insert_policy(&p("a:b:d"), policy(1, &[1], 100, None, &[])),
    );
}

#[test]
fn static_below_in_trie_order() {
    let mut r = Resources::default();
    r.insert_policy(&p("a:c"), policy(5, &[0], 50, None, &[]))
        .unwrap();
    r.insert_policy(&p("a:b"), policy(3, &[0], 80, None, &[]))
        .unwrap();
    r.insert_policy(&p("a:b:x"), policy(3, &[0], 10, None, &[]))
        .unwrap();
    // Both `a:b` and `a:c` exceed; `a:b` comes first.
    refused(
        &mut r,
        PolicyError::Below {
            path: p("a:b"),
            reason: ExceedsPolicy::Memory {
                limit: 40,
                requested: 80,
            },
        },
        |r| r.insert_policy(&p("a"), policy(5, &[0], 40, None, &[])),
    );
    refused(
        &mut r,
        PolicyError::Below {
            path: p("a:c"),
            reason: ExceedsPolicy::Unikernels {
                limit: 4,
                requested: 5,
            },
        },
        |r| r.insert_policy(&p("a"), policy(4, &[0], 80, None, &[])),
    );
    assert_eq!(
        r.insert_policy(&p("a"), policy(5, &[0], 80, None, &[])),
        Ok(())
    );
    // The policy at the path itself is replaced, not compared.
    assert_eq!(
        r.insert_policy(&p("a:b"), policy(3, &[0], 10, None, &[])),
        Ok(())
    );
}

#[test]
fn static_running_cpuids() {
    let mut r = Resources::default();
    start(&mut r, "a:b:x", usage(&[1], 1, &[], &[]));
    refused(
        &mut r,
        PolicyError::CpuidsInUse {
            not_allowed: set(&[1]),
        },
        |r| r.insert_policy(&p("a"), policy(5, &[0], 100, None, &[])),
    );
    assert_eq!(
        PolicyError::CpuidsInUse {
            not_allowed: set(&[1, 3])
        }
        .to_string(),
        "policy does not allow CPUids 1, 3"
    );
    assert_eq!(
        r.insert_policy(&p("a"), policy(5, &[0, 1], 100, None, &[])),
        Ok(())
    );
}

#[test]
fn static_running_bridges() {
    let mut r = Resources::default();
    start(&mut r, "a:x", usage(&[0], 1, &["br0", "br1"], &[]));
    let err = PolicyError::BridgesInUse {
        allowed: strings(&["br0"]),
        used: strings(&["br0", "br1"]),
    };
    assert_eq!(
        err.to_string(),
        "policy allows bridges br0, which is not a superset of br0, br1"
    );
    refused(&mut r, err, |r| {
        r.insert_policy(&p("a"), policy(5, &[0], 100, None, &["br0"]))
    });
    assert_eq!(
        r.insert_policy(&p("a"), policy(5, &[0], 100, None, &["br0", "br1"])),
        Ok(())
    );
}

#[test]
fn static_running_count() {
    let mut r = Resources::default();
    start(&mut r, "a:x", u());
    start(&mut r, "a:b:y", u());
    let err = PolicyError::UnikernelsRunning {
        limit: 1,
        running: 2,
    };
    assert_eq!(
        err.to_string(),
        "unikernel would exceed running unikernel limit set by policy to 1, running 2"
    );
    refused(&mut r, err, |r| {
        r.insert_policy(&p("a"), policy(1, &[0], 100, None, &["service"]))
    });
    assert_eq!(
        r.insert_policy(&p("a"), policy(2, &[0], 100, None, &["service"])),
        Ok(())
    );
}

#[test]
fn static_running_memory() {
    let mut r = Resources::default();
    start(&mut r, "a:x", usage(&[0], 30, &[], &[]));
    start(&mut r, "a:b:y", usage(&[0], 12, &[], &[]));
    let err = PolicyError::MemoryInUse {
        limit: 41,
        used: 42,
    };
    assert_eq!(
        err.to_string(),
        "unikernel would exceed running memory limit set by policy to 41 MB, used 42 MB"
    );
    refused(&mut r, err, |r| {
        r.insert_policy(&p("a"), policy(5, &[0], 41, None, &[]))
    });
    assert_eq!(
        r.insert_policy(&p("a"), policy(5, &[0], 42, None, &[])),
        Ok(())
    );
}

#[test]
fn static_running_block_counts_active_and_inactive() {
    let mut r = Resources::default();
    r.add_block(&n("a:d1"), 3).unwrap();
    r.add_block(&n("a:b:d2"), 2).unwrap();
    start(&mut r, "a:x", usage(&[0], 1, &[], &["d1"]));
    assert_eq!(
        r.block(&n("a:d1")),
        Some(BlockDevice {
            size: 3,
            active: true
        })
    );
    let err = PolicyError::BlockInUse { limit: 4, used: 5 };
    assert_eq!(
        err.to_string(),
        "unikernel would exceed running block storage limit set by policy to 4 MB, used 5 MB"
    );
    refused(&mut r, err, |r| {
        r.insert_policy(&p("a"), policy(5, &[0], 100, Some(4), &[]))
    });
    // Absent block storage counts as 0.
    refused(&mut r, PolicyError::BlockInUse { limit: 0, used: 5 }, |r| {
        r.insert_policy(&p("a"), policy(5, &[0], 100, None, &[]))
    });
    assert_eq!(
        r.insert_policy(&p("a"), policy(5, &[0], 100, Some(5), &[])),
        Ok(())
    );
}

#[test]
fn static_shrinking_below_use_is_refused() {
    let mut r = Resources::default();
    let generous = policy(3, &[0, 1], 100, Some(20), &["br0", "br1"]);
    r.insert_policy(&p("a"), generous.clone()).unwrap();
    r.add_block(&n("a:disk"), 10).unwrap();
    start(&mut r, "a:x", usage(&[1], 60, &["br1"], &["disk"]));
    start(&mut r, "a:y", usage(&[0], 30, &["br0"], &[]));
    let shrink = [
        (
            Policy {
                memory: 89,
                ..generous.clone()
            },
            PolicyError::MemoryInUse {
                limit: 89,
                used: 90,
            },
        ),
        (
            Policy {
                unikernels: 1,
                ..generous.clone()
            },
            PolicyError::UnikernelsRunning {
                limit: 1,
                running: 2,
            },
        ),
        (
            Policy {
                cpuids: set(&[0]),
                ..generous.clone()
            },
            PolicyError::CpuidsInUse {
                not_allowed: set(&[1]),
            },
        ),
        (
            Policy {
                bridges: strings(&["br0"]),
                ..generous.clone()
            },
            PolicyError::BridgesInUse {
                allowed: strings(&["br0"]),
                used: strings(&["br0", "br1"]),
            },
        ),
        (
            Policy {
                block: Some(9),
                ..generous.clone()
            },
            PolicyError::BlockInUse { limit: 9, used: 10 },
        ),
    ];
    for (smaller, err) in shrink {
        refused(&mut r, err, |r| r.insert_policy(&p("a"), smaller));
    }
    let exact = policy(2, &[0, 1], 90, Some(10), &["br0", "br1"]);
    assert_eq!(r.insert_policy(&p("a"), exact.clone()), Ok(()));
    assert_eq!(r.policy(&p("a")), Some(&exact));
}

// ---- §9.4 block devices -----------------------------------------------------

#[test]
fn block_add_limit_counts_sub_paths() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(5, &[0], 100, Some(10), &[]))
        .unwrap();
    r.add_block(&n("a:b:d"), 8).unwrap(); // no policy at `a:b`
    let err = BlockAddError::LimitExceeded {
        limit: 10,
        used: 8,
        requested: 3,
    };
    assert_eq!(
        err.to_string(),
        "block device policy limit of 10 MB (used 8 MB) would be exceeded by the request (3 MB)"
    );
    refused(&mut r, err, |r| r.add_block(&n("a:e"), 3));
    assert_eq!(r.add_block(&n("a:e"), 2), Ok(()));
    assert_eq!(
        r.blocks_below(&p("a")),
        vec![(n("b:d"), 8, false), (n(":e"), 2, false)]
    );
}

#[test]
fn block_add_texts_and_sizes() {
    let mut r = Resources::default();
    r.insert_policy(&p("a"), policy(5, &[0], 100, None, &[]))
        .unwrap();
    assert_eq!(
        BlockAddError::NotAllowed.to_string(),
        "no block devices are allowed by policy"
    );
    assert_eq!(
        BlockAddError::Exists.to_string(),
        "block device with same name already exists"
    );
    refused(
        &mut r,
        BlockAddError::Size(BlockSizeError { size: 0 }),
        |r| r.add_block(&n("d"), 0),
    );
    refused(
        &mut r,
        BlockAddError::Size(BlockSizeError { size: -1 }),
        |r| r.add_block(&n("d"), -1),
    );
    let huge = (i64::MAX >> 20) + 1;
    refused(
        &mut r,
        BlockAddError::Size(BlockSizeError { size: huge }),
        |r| r.add_block(&n("d"), huge),
    );
    assert_eq!(
        r.check_block_add(&n("d"), i64::MAX >> 20),
        Ok(((i64::MAX >> 20) as u64) << 20)
    );
    // The existence check comes first, then the policy, then the size.
    r.add_block(&n("d"), 1).unwrap();
    refused(&mut r, BlockAddError::Exists, |r| r.add_block(&n("d"), 0));
    refused(&mut r, BlockAddError::NotAllowed, |r| {
        r.add_block(&n("a:d"), 0)
    });
}

#[test]
fn block_accounting_active_and_inactive() {
    let mut r = Resources::default();
    r.add_block(&n("a:d"), 4).unwrap();
    r.add_block(&n("a:e"), 4).unwrap();
    assert_eq!(
        r.free_block(&n("a:d")),
        Ok(BlockDevice {
            size: 4,
            active: false
        })
    );
    start(&mut r, "a:x", usage(&[0], 1, &[], &["d"]));
    assert_eq!(
        r.blocks_below(&Path::root()),
        vec![(n("a:d"), 4, true), (n("a:e"), 4, false)]
    );
    assert_eq!(r.free_block(&n("a:d")), Err(BlockUseError::InUse));
    assert_eq!(r.free_block(&n("a:nope")), Err(BlockUseError::NotFound));
    assert_eq!(BlockUseError::InUse.to_string(), "is in use");
    assert_eq!(BlockUseError::NotFound.to_string(), "not found");
    // Marking an active device active again is refused.
    refused(
        &mut r,
        UnikernelError::BlockAlreadyInState {
            device: "a:d".to_owned(),
            active: true,
        },
        |r| r.insert_unikernel(&n("a:y"), usage(&[0], 1, &[], &["e", "d"])),
    );
    assert_eq!(
        UnikernelError::BlockAlreadyInState {
            device: "a:d".to_owned(),
            active: true
        }
        .to_string(),
        "block device a:d already in state active"
    );
    refused(
        &mut r,
        UnikernelError::BlockNotFound {
            device: "a:zz".to_owned(),
        },
        |r| r.insert_unikernel(&n("a:y"), usage(&[0], 1, &[], &["zz"])),
    );
    assert_eq!(
        r.remove_unikernel(&n("a:x")),
        Ok(usage(&[0], 1, &[], &["d"]))
    );
    assert_eq!(
        r.block(&n("a:d")),
        Some(BlockDevice {
            size: 4,
            active: false
        })
    );
    assert_eq!(
        r.remove_block(&n("a:d")),
        Ok(BlockDevice {
            size: 4,
            active: false
        })
    );
    assert_eq!(r.blocks_below(&p("a")), vec![(n(":e"), 4, false)]);
}

#[test]
fn zvol_escape() {
    let zvol = "/dev/zvol/tank/vm1";
    let mut r = Resources::new(Some(p("bhyve")));
    r.insert_policy(&p("bhyve"), policy(5, &[0], 100, None, &[]))
        .unwrap();
    let vm = usage(&[0], 1, &[], &[zvol]);
    // Exempt from existence, in-use and accounting in the configured path.
    assert_eq!(r.check_start(&n("bhyve:vm"), &vm), Ok(()));
    let before = r.clone();
    r.insert_unikernel(&n("bhyve:vm"), vm.clone()).unwrap();
    assert_eq!(r.blocks_below(&Path::root()), vec![]);
    assert_eq!(r.check_start(&n("bhyve:vm2"), &vm), Ok(()));
    assert_eq!(r.remove_unikernel(&n("bhyve:vm")), Ok(vm.clone()));
    assert_eq!(r, before);
    // Not in other paths, and not for other labels.
    assert_eq!(
        r.check_start(&n("other:vm"), &vm),
        Err(StartError::BlockNotFound {
            device: format!("other:{zvol}")
        })
    );
    assert_eq!(
        r.check_start(&n("bhyve:sub:vm"), &vm),
        Err(StartError::BlockNotFound {
            device: format!("bhyve:sub:{zvol}")
        })
    );
    assert_eq!(
        r.check_start(&n("bhyve:vm"), &usage(&[0], 1, &[], &["/dev/other"])),
        Err(StartError::BlockNotFound {
            device: "bhyve:/dev/other".to_owned()
        })
    );
    // Without the option there is no escape.
    assert_eq!(
        Resources::default().check_start(&n("bhyve:vm"), &vm),
        Err(StartError::BlockNotFound {
            device: format!("bhyve:{zvol}")
        })
    );
}

// ---- queries for the daemon -------------------------------------------------

#[test]
fn console_limit() {
    let r = r1();
    assert_eq!(r.console_limit(&Path::root()), UNLIMITED_UNIKERNELS);
    assert_eq!(UNLIMITED_UNIKERNELS, (1 << 62) - 1);
    assert_eq!(r.console_limit(&p("alpha")), 1);
    assert_eq!(r.console_limit(&p("alpha:beta")), 0);
    assert_eq!(r.console_limit(&p("beta")), 0);
}

#[test]
fn policies_below_are_relative_path_names() {
    let mut r = Resources::default();
    let host = Policy::host(2, 1024, 1000, ["br0".to_owned()]);
    r.insert_policy(&Path::root(), host.clone()).unwrap();
    let small = policy(1, &[0], 10, None, &[]);
    for path in ["beta", "alpha:beta", "alpha"] {
        r.insert_policy(&p(path), small.clone()).unwrap();
    }
    let names = |path: &str| -> Vec<String> {
        r.policies_below(&p(path))
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect()
    };
    assert_eq!(names(""), [":", "alpha:", "alpha:beta:", "beta:"]);
    assert_eq!(names("alpha"), [":", "beta:"]);
    assert_eq!(names("alpha:beta"), [":"]);
    assert_eq!(names("gamma"), Vec::<String>::new());
    assert_eq!(r.policies_below(&Path::root())[0], (Name::root(), host));
    assert!(r
        .policies_below(&p("alpha"))
        .iter()
        .all(|(name, _)| name.is_path()));
}

#[test]
fn unikernels_and_blocks_below() {
    let mut r = Resources::default();
    for name in [
        "foo:hello",
        "bar:hello",
        "bar:my.nice.unikernel",
        "foo:sub:x",
        "top",
    ] {
        start(&mut r, name, u());
    }
    let all: Vec<String> = r
        .unikernels_below(&Path::root())
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        all,
        [
            "bar:hello",
            "bar:my.nice.unikernel",
            "foo:hello",
            "foo:sub:x",
            ":top"
        ]
    );
    let foo: Vec<String> = r
        .unikernels_below(&p("foo"))
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(foo, ["foo:hello", "foo:sub:x"]);
    assert_eq!(r.unikernel(&n("foo:hello")), Some(&u()));
    assert_eq!(r.unikernel(&n("foo:nope")), None);

    r.add_block(&n("foo:sub:d"), 1).unwrap();
    r.add_block(&n("foo:a"), 2).unwrap();
    r.add_block(&n("b"), 3).unwrap();
    assert_eq!(
        r.blocks_below(&Path::root()),
        vec![
            (n(":b"), 3, false),
            (n("foo:a"), 2, false),
            (n("foo:sub:d"), 1, false)
        ]
    );
    assert_eq!(
        r.blocks_below(&p("foo")),
        vec![(n(":a"), 2, false), (n("sub:d"), 1, false)]
    );
    assert_eq!(r.blocks_below(&p("foo:sub")), vec![(n(":d"), 1, false)]);
}
