//! The state file `<dbdir>/state` (§7.2): one DER value whose CHOICE tag
//! is the layout version. Every layout upstream ever wrote is read; only
//! the current layout `[6]` is written, in canonical trie order.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;

use super::der::{DecodeError, DecodeResult, Node, Reader, SEQUENCE};
use super::layouts::{
    config_node, name_node, old_config_node, policy_node, read_config, read_name, read_policy,
    unknown_alternative, ConfigLayout, EncodeError, OldConfigLayout,
};
use crate::model::{Name, Path, Policy, UnikernelConfig};

/// The layout a state file was read in: its outer CHOICE tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateLayout {
    /// `[0]`: V1 configurations, no policies.
    V1Unikernels,
    /// `[1]`: V0 (1.x) configurations, no policies.
    V0Unikernels,
    /// `[2]`: V2 configurations, no policies.
    V2Unikernels,
    /// `[3]`: V3 configurations, no policies.
    V3Unikernels,
    /// `[4]`: V3 configurations and policies.
    V3AndPolicies,
    /// `[5]`: V4 configurations and policies.
    V4AndPolicies,
    /// `[6]`: current configurations and policies (what is written).
    Current,
}

impl StateLayout {
    /// The CHOICE tag number of this layout.
    pub fn tag(self) -> u8 {
        match self {
            StateLayout::V1Unikernels => 0,
            StateLayout::V0Unikernels => 1,
            StateLayout::V2Unikernels => 2,
            StateLayout::V3Unikernels => 3,
            StateLayout::V3AndPolicies => 4,
            StateLayout::V4AndPolicies => 5,
            StateLayout::Current => 6,
        }
    }

    /// The configuration layout used by this state layout.
    fn config_layout(self) -> ConfigLayout {
        match self {
            StateLayout::V1Unikernels => ConfigLayout::V1,
            StateLayout::V0Unikernels => ConfigLayout::V0,
            StateLayout::V2Unikernels => ConfigLayout::V2,
            StateLayout::V3Unikernels | StateLayout::V3AndPolicies => ConfigLayout::V3,
            StateLayout::V4AndPolicies => ConfigLayout::V4,
            StateLayout::Current => ConfigLayout::Current,
        }
    }
}

impl fmt::Display for StateLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            StateLayout::V1Unikernels => "unikernels in configuration layout V1",
            StateLayout::V0Unikernels => "unikernels in configuration layout V0",
            StateLayout::V2Unikernels => "unikernels in configuration layout V2",
            StateLayout::V3Unikernels => "unikernels in configuration layout V3",
            StateLayout::V3AndPolicies => "unikernels in configuration layout V3 and policies",
            StateLayout::V4AndPolicies => "unikernels in configuration layout V4 and policies",
            StateLayout::Current => "unikernels in the current configuration layout and policies",
        };
        write!(f, "[{}] ({what})", self.tag())
    }
}

/// A decoded state file. Entries are in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    /// The layout the file was written in.
    pub layout: StateLayout,
    /// Unikernel configurations by name.
    pub unikernels: Vec<(Name, UnikernelConfig)>,
    /// Policies by path (empty for layouts `[0]`–`[3]`).
    pub policies: Vec<(Path, Policy)>,
}

/// Decodes a state file. Names that do not parse, unikernel names without
/// a label, duplicate names and the reserved layout `[7]` are errors.
pub fn decode_state(bytes: &[u8]) -> DecodeResult<StateFile> {
    let mut r = Reader::new(bytes);
    let state = r.choice("state file", |n, r| {
        let layout = match n {
            0 => StateLayout::V1Unikernels,
            1 => StateLayout::V0Unikernels,
            2 => StateLayout::V2Unikernels,
            3 => StateLayout::V3Unikernels,
            4 => StateLayout::V3AndPolicies,
            5 => StateLayout::V4AndPolicies,
            6 => StateLayout::Current,
            7 => {
                return Err(DecodeError::Unsupported(
                    "state file layout [7] is reserved and cannot be read".to_string(),
                ))
            }
            _ => return Err(unknown_alternative("state file", n)),
        };
        let (unikernels, policies) = if layout.tag() <= 3 {
            (read_unikernels(r, layout)?, Vec::new())
        } else {
            r.sequence("state file", |r| {
                Ok((read_unikernels(r, layout)?, read_policies(r)?))
            })?
        };
        Ok(StateFile {
            layout,
            unikernels,
            policies,
        })
    })?;
    r.finish("state file")?;
    Ok(state)
}

fn read_unikernels(
    r: &mut Reader<'_>,
    layout: StateLayout,
) -> DecodeResult<Vec<(Name, UnikernelConfig)>> {
    let mut seen = HashSet::new();
    r.list_of(SEQUENCE, "unikernel table", |r| {
        r.sequence("unikernel entry", |r| {
            let name = read_name(r, "unikernel name in state file")?;
            if name.is_path() {
                return Err(DecodeError::BadName(format!(
                    "unikernel name {name} in state file has no label"
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(DecodeError::Unsupported(format!(
                    "unikernel {name} appears twice in the state file"
                )));
            }
            Ok((name, read_config(r, layout.config_layout())?))
        })
    })
}

fn read_policies(r: &mut Reader<'_>) -> DecodeResult<Vec<(Path, Policy)>> {
    let mut seen = HashSet::new();
    r.list_of(SEQUENCE, "policy table", |r| {
        r.sequence("policy entry", |r| {
            let name = read_name(r, "policy name in state file")?;
            // The trie key is all labels: `a:b` is the same key as `a:b:`.
            let path = match name.label() {
                Some(label) => name.path().child(label.clone()),
                None => name.path().clone(),
            };
            if !seen.insert(path.clone()) {
                return Err(DecodeError::Unsupported(format!(
                    "policy {} appears twice in the state file",
                    Name::of_path(path)
                )));
            }
            Ok((path, read_policy(r)?))
        })
    })
}

/// Encodes a state file in layout `[6]`, entries in canonical trie order
/// (pre-order, children by ascending label), whatever order they are given
/// in.
pub fn encode_state(
    unikernels: &[(Name, UnikernelConfig)],
    policies: &[(Path, Policy)],
) -> Vec<u8> {
    let encoded = encode_tables(unikernels, policies, StateLayout::Current, |_, config| {
        Ok::<_, Infallible>(config_node(config))
    });
    match encoded {
        Ok(bytes) => bytes,
        Err(never) => match never {},
    }
}

/// Encodes a state file in `layout`, for older upstream releases: `[6]`
/// (2.7.0 on), `[5]` (2.6.x) or `[4]` (2.2.0 to 2.5.x), in canonical order.
///
/// The old layouts hold exactly one cpuid per unikernel and neither `cpus`
/// nor a Linux boot partition; a unikernel that needs them is an error
/// rather than silently changed. Layout `[4]` also drops `startup` and
/// `add-name`, which the releases reading it do not know.
pub fn encode_state_layout(
    unikernels: &[(Name, UnikernelConfig)],
    policies: &[(Path, Policy)],
    layout: StateLayout,
) -> Result<Vec<u8>, EncodeError> {
    let old = match layout {
        StateLayout::Current => return Ok(encode_state(unikernels, policies)),
        StateLayout::V4AndPolicies => OldConfigLayout::V4,
        StateLayout::V3AndPolicies => OldConfigLayout::V3,
        _ => return Err(EncodeError::UnwritableStateLayout { layout }),
    };
    encode_tables(unikernels, policies, layout, |name, config| {
        let args = &config.args;
        let cpuid = match args.cpuids.as_slice() {
            [cpuid] => *cpuid,
            cpuids => {
                return Err(EncodeError::OldStateCpuids {
                    name: name.clone(),
                    layout,
                    count: cpuids.len(),
                })
            }
        };
        let lost = if args.cpus != 1 {
            Some("cpus")
        } else if args.linux_boot_partition.is_some() {
            Some("linux-boot-partition")
        } else {
            None
        };
        match lost {
            Some(field) => Err(EncodeError::OldStateField {
                name: name.clone(),
                layout,
                field,
            }),
            None => Ok(old_config_node(config, cpuid, old)),
        }
    })
}

/// The two tries of a state file with policies, sorted into canonical
/// order, each configuration encoded by `config`.
fn encode_tables<'a, E>(
    unikernels: &'a [(Name, UnikernelConfig)],
    policies: &'a [(Path, Policy)],
    layout: StateLayout,
    mut config: impl FnMut(&Name, &'a UnikernelConfig) -> Result<Node<'a>, E>,
) -> Result<Vec<u8>, E> {
    let mut unikernels: Vec<&(Name, UnikernelConfig)> = unikernels.iter().collect();
    unikernels.sort_by(|a, b| a.0.trie_key().cmp(&b.0.trie_key()));
    let mut policies: Vec<&(Path, Policy)> = policies.iter().collect();
    policies.sort_by(|a, b| a.0.labels().cmp(b.0.labels()));
    let unikernels = unikernels
        .into_iter()
        .map(|(name, c)| Ok(Node::seq(vec![name_node(name), config(name, c)?])))
        .collect::<Result<_, E>>()?;
    let policies = policies
        .into_iter()
        .map(|(path, policy)| {
            Node::seq(vec![
                name_node(&Name::of_path(path.clone())),
                policy_node(policy),
            ])
        })
        .collect();
    Ok(Node::explicit(
        layout.tag(),
        Node::seq(vec![Node::seq(unikernels), Node::seq(policies)]),
    )
    .to_vec())
}

/// Encodes one unikernel configuration on its own: exactly the bytes of
/// the value of a unikernel entry in a `[6]` state file.
pub fn encode_config_record(config: &UnikernelConfig) -> Vec<u8> {
    config_node(config).to_vec()
}

/// Decodes what [`encode_config_record`] wrote; trailing bytes are an
/// error.
pub fn decode_config_record(bytes: &[u8]) -> DecodeResult<UnikernelConfig> {
    let mut r = Reader::new(bytes);
    let config = read_config(&mut r, ConfigLayout::Current)?;
    r.finish("unikernel configuration record")?;
    Ok(config)
}

/// Encodes one policy on its own: exactly the bytes of the value of a
/// policy entry in a state file.
pub fn encode_policy_record(policy: &Policy) -> Vec<u8> {
    policy_node(policy).to_vec()
}

/// Decodes what [`encode_policy_record`] wrote; trailing bytes are an
/// error.
pub fn decode_policy_record(bytes: &[u8]) -> DecodeResult<Policy> {
    let mut r = Reader::new(bytes);
    let policy = read_policy(&mut r)?;
    r.finish("policy record")?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockSpec, FailBehaviour, NetSpec, Typ, UnikernelArguments};

    fn entry<'a>(name: &'a str, value: Node<'a>) -> Node<'a> {
        Node::seq(vec![Node::utf8(name), value])
    }

    /// A V0 (1.x) configuration with every optional field.
    fn v0_config<'a>(image_tag: u8) -> Node<'a> {
        Node::seq(vec![
            Node::integer(1),
            Node::integer(64),
            Node::utf8("disk"),
            Node::seq(vec![Node::utf8("service"), Node::utf8("mgmt")]),
            Node::explicit(image_tag, Node::octets(&[7, 7])),
            Node::seq(vec![Node::utf8("--x")]),
        ])
    }

    fn policy<'a>(unikernels: i64) -> Node<'a> {
        Node::seq(vec![
            Node::seq(vec![Node::integer(0)]),
            Node::integer(unikernels),
            Node::integer(512),
            Node::seq(vec![]),
        ])
    }

    fn v4_config<'a>() -> Node<'a> {
        Node::seq(vec![
            Node::explicit(0, Node::null()),
            Node::boolean(false),
            Node::octets(&[]),
            Node::integer(20),
            Node::boolean(false),
            Node::explicit(0, Node::null()),
            Node::integer(3),
            Node::integer(32),
        ])
    }

    #[test]
    fn v0_layout() {
        let bytes = Node::explicit(1, Node::seq(vec![entry("foo.hello", v0_config(2))])).to_vec();
        let state = decode_state(&bytes).unwrap();
        assert_eq!(state.layout, StateLayout::V0Unikernels);
        let (name, config) = &state.unikernels[0];
        assert_eq!(name.to_string(), ":foo.hello");
        assert_eq!(
            config,
            &UnikernelConfig {
                typ: Typ::Solo5,
                compressed: true,
                image: vec![7, 7],
                args: UnikernelArguments {
                    fail_behaviour: FailBehaviour::Quit,
                    startup: None,
                    add_name: true,
                    cpuids: vec![1],
                    memory: 64,
                    blocks: vec![BlockSpec {
                        name: "disk".into(),
                        device: None,
                        sector_size: None
                    }],
                    bridges: vec![
                        NetSpec {
                            netif: "service".into(),
                            bridge: None,
                            mac: None
                        },
                        NetSpec {
                            netif: "mgmt".into(),
                            bridge: None,
                            mac: None
                        },
                    ],
                    argv: Some(vec!["--x".into()]),
                    cpus: 1,
                    linux_boot_partition: None,
                },
            }
        );
        // Image alternatives [0] and [1] are uncompressed; the minimal form
        // has no block, network or arguments.
        for tag in [0, 1] {
            let bytes = Node::explicit(1, Node::seq(vec![entry("a", v0_config(tag))])).to_vec();
            assert!(!decode_state(&bytes).unwrap().unikernels[0].1.compressed);
        }
        let minimal = Node::seq(vec![
            Node::integer(0),
            Node::integer(1),
            Node::explicit(0, Node::octets(&[])),
        ]);
        let bytes = Node::explicit(1, Node::seq(vec![entry("a", minimal)])).to_vec();
        let args = &decode_state(&bytes).unwrap().unikernels[0].1.args;
        assert!(args.blocks.is_empty() && args.bridges.is_empty() && args.argv.is_none());
    }

    #[test]
    fn layouts_with_policies() {
        let bytes = Node::explicit(
            5,
            Node::seq(vec![
                Node::seq(vec![entry("a:b", v4_config())]),
                Node::seq(vec![
                    entry(":", policy(9)),
                    entry("a:", policy(1)),
                    entry("x:y", policy(2)),
                ]),
            ]),
        )
        .to_vec();
        let state = decode_state(&bytes).unwrap();
        assert_eq!(state.layout, StateLayout::V4AndPolicies);
        assert_eq!(
            state.layout.to_string(),
            "[5] (unikernels in configuration layout V4 and policies)"
        );
        let args = &state.unikernels[0].1.args;
        assert_eq!(
            (args.startup, args.add_name, args.cpuids.as_slice()),
            (Some(20), false, &[3][..])
        );
        let paths: Vec<String> = state.policies.iter().map(|(p, _)| p.to_string()).collect();
        // A policy name with a label names the path including it.
        assert_eq!(paths, ["", "a", "x:y"]);
        assert_eq!(state.policies[0].1.unikernels, 9);

        // Writing sorts into canonical order and uses path names.
        let mut policies = state.policies.clone();
        policies.reverse();
        let written = encode_state(&state.unikernels, &policies);
        let reread = decode_state(&written).unwrap();
        assert_eq!(reread.layout, StateLayout::Current);
        assert_eq!(reread.policies, state.policies);
        let text = String::from_utf8_lossy(&written);
        assert!(text.contains("x:y:"), "policy names end with ':'");

        let v3 = Node::explicit(
            4,
            Node::seq(vec![
                Node::seq(vec![]),
                Node::seq(vec![entry(":", policy(1))]),
            ]),
        );
        let state = decode_state(&v3.to_vec()).unwrap();
        assert_eq!((state.layout.tag(), state.policies.len()), (4, 1));
    }

    #[test]
    fn errors() {
        let reserved = Node::explicit(7, Node::null()).to_vec();
        assert!(
            matches!(decode_state(&reserved), Err(DecodeError::Unsupported(m)) if m.contains("[7]"))
        );
        let unknown = Node::explicit(8, Node::null()).to_vec();
        assert!(matches!(
            decode_state(&unknown),
            Err(DecodeError::UnexpectedTag { .. })
        ));
        assert!(decode_state(&[]).is_err());
        assert!(decode_state(&Node::seq(vec![]).to_vec()).is_err());

        let with_unikernels = |names: &[&'static str]| {
            let entries = names.iter().map(|n| entry(n, v4_config())).collect();
            Node::explicit(5, Node::seq(vec![Node::seq(entries), Node::seq(vec![])])).to_vec()
        };
        assert!(decode_state(&with_unikernels(&["a:b", "a:c"])).is_ok());
        for names in [&["a::b"][..], &["-x"], &[""], &["a:b:"], &["a:b", "A:B"]] {
            let result = decode_state(&with_unikernels(names));
            assert!(result.is_err(), "{names:?}: {result:?}");
        }
        let with_policies = |names: &[&'static str]| {
            let entries = names.iter().map(|n| entry(n, policy(1))).collect();
            Node::explicit(6, Node::seq(vec![Node::seq(vec![]), Node::seq(entries)])).to_vec()
        };
        assert!(decode_state(&with_policies(&[":", "a:"])).is_ok());
        for names in [&["a:", "a"][..], &[":", ":"], &["a::"]] {
            assert!(decode_state(&with_policies(names)).is_err(), "{names:?}");
        }
        let mut trailing = with_policies(&[":"]);
        trailing.push(0);
        assert_eq!(
            decode_state(&trailing),
            Err(DecodeError::Trailing { what: "state file" })
        );
    }

    /// A current configuration that uses every field.
    fn full_config(cpuids: Vec<i64>) -> UnikernelConfig {
        UnikernelConfig {
            typ: Typ::Solo5,
            compressed: true,
            image: vec![0x78, 0x9c, 1, 2, 3],
            args: UnikernelArguments {
                fail_behaviour: FailBehaviour::Restart(vec![2, 1]),
                startup: Some(7),
                add_name: false,
                cpuids,
                memory: 64,
                blocks: vec![BlockSpec {
                    name: "data".into(),
                    device: Some("disk".into()),
                    sector_size: Some(4096),
                }],
                bridges: vec![NetSpec {
                    netif: "service".into(),
                    bridge: Some("br0".into()),
                    mac: Some([0, 0x80, 0x41, 1, 2, 3]),
                }],
                argv: Some(vec!["--ipv4=10.0.0.2/24".into()]),
                cpus: 1,
                linux_boot_partition: None,
            },
        }
    }

    fn full_policy() -> Policy {
        Policy {
            unikernels: 3,
            cpuids: [0, 2].into(),
            memory: 1024,
            block: Some(100),
            bridges: ["br0".to_string(), "service".to_string()].into(),
        }
    }

    #[test]
    fn records_are_state_entry_values() {
        let config = full_config(vec![3, 1]);
        let policy = full_policy();
        let record = encode_config_record(&config);
        assert_eq!(decode_config_record(&record).unwrap(), {
            let mut sorted = config.clone();
            sorted.args.fail_behaviour = FailBehaviour::Restart(vec![1, 2]);
            sorted.args.cpuids = vec![1, 3];
            sorted
        });
        let policy_record = encode_policy_record(&policy);
        assert_eq!(decode_policy_record(&policy_record).unwrap(), policy);

        let name = Name::parse("a:web").unwrap();
        let path = Path::parse("a").unwrap();
        let state = encode_state(&[(name.clone(), config)], &[(path, policy)]);
        // The state file is `[6] { { {name, record} }, { {path, record} } }`:
        // its last bytes are the policy record, and the unikernel entry is
        // its name string directly followed by the configuration record.
        assert!(state.ends_with(&policy_record));
        let mut entry = Node::utf8_owned(name.to_string()).to_vec();
        entry.extend_from_slice(&record);
        assert!(state.windows(entry.len()).any(|w| w == entry));

        let mut trailing = record.clone();
        trailing.push(0);
        assert_eq!(
            decode_config_record(&trailing),
            Err(DecodeError::Trailing {
                what: "unikernel configuration record"
            })
        );
        let mut trailing = policy_record.clone();
        trailing.push(0);
        assert_eq!(
            decode_policy_record(&trailing),
            Err(DecodeError::Trailing {
                what: "policy record"
            })
        );
        assert!(decode_config_record(&policy_record).is_err());
        assert!(decode_policy_record(&record).is_err());
        assert!(decode_config_record(&[]).is_err());
    }

    #[test]
    fn old_layouts_are_written_when_nothing_is_lost() {
        let name = Name::parse("a:web").unwrap();
        let unikernels = vec![(name.clone(), full_config(vec![2]))];
        let policies = vec![(Path::root(), full_policy())];

        let v5 = encode_state_layout(&unikernels, &policies, StateLayout::V4AndPolicies).unwrap();
        let read = decode_state(&v5).unwrap();
        assert_eq!(read.layout, StateLayout::V4AndPolicies);
        assert_eq!(read.policies, policies);
        let expected = {
            let mut c = full_config(vec![2]);
            c.args.fail_behaviour = FailBehaviour::Restart(vec![1, 2]);
            c
        };
        assert_eq!(read.unikernels, vec![(name.clone(), expected.clone())]);
        // Reading and writing the old layout again gives the same bytes.
        assert_eq!(
            encode_state_layout(&read.unikernels, &read.policies, StateLayout::V4AndPolicies),
            Ok(v5)
        );

        let v4 = encode_state_layout(&unikernels, &policies, StateLayout::V3AndPolicies).unwrap();
        let read = decode_state(&v4).unwrap();
        assert_eq!(read.layout, StateLayout::V3AndPolicies);
        let mut without = expected;
        without.args.startup = None;
        without.args.add_name = true;
        assert_eq!(read.unikernels, vec![(name.clone(), without)]);
        assert_eq!(
            encode_state_layout(&unikernels, &policies, StateLayout::Current),
            Ok(encode_state(&unikernels, &policies))
        );
    }

    #[test]
    fn old_layouts_refuse_what_they_cannot_hold() {
        let name = Name::parse("a:web").unwrap();
        let encode = |config: UnikernelConfig, layout| {
            encode_state_layout(&[(name.clone(), config)], &[], layout)
        };
        for layout in [StateLayout::V4AndPolicies, StateLayout::V3AndPolicies] {
            for cpuids in [vec![], vec![0, 1]] {
                let count = cpuids.len();
                let err = encode(full_config(cpuids), layout).unwrap_err();
                assert_eq!(
                    err,
                    EncodeError::OldStateCpuids {
                        name: name.clone(),
                        layout,
                        count
                    }
                );
                assert!(err.to_string().contains("holds exactly one"), "{err}");
            }
            let mut config = full_config(vec![0]);
            config.args.cpus = 2;
            let err = encode(config, layout).unwrap_err();
            assert!(err.to_string().contains("sets cpus"), "{err}");
            let mut config = full_config(vec![0]);
            config.args.linux_boot_partition = Some("1".into());
            let err = encode(config, layout).unwrap_err();
            assert!(matches!(
                err,
                EncodeError::OldStateField {
                    field: "linux-boot-partition",
                    ..
                }
            ));
        }
        for layout in [
            StateLayout::V1Unikernels,
            StateLayout::V0Unikernels,
            StateLayout::V2Unikernels,
            StateLayout::V3Unikernels,
        ] {
            let err = encode(full_config(vec![0]), layout).unwrap_err();
            assert_eq!(err, EncodeError::UnwritableStateLayout { layout });
            assert!(err.to_string().contains("cannot be written"), "{err}");
        }
    }
}
