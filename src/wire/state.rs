//! The state file `<dbdir>/state` (§7.2): one DER value whose CHOICE tag
//! is the layout version. Every layout upstream ever wrote is read; only
//! the current layout `[6]` is written, in canonical trie order.

use std::collections::HashSet;
use std::fmt;

use super::der::{DecodeError, DecodeResult, Node, Reader, SEQUENCE};
use super::layouts::{
    config_node, name_node, policy_node, read_config, read_name, read_policy, unknown_alternative,
    ConfigLayout,
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
    let mut unikernels: Vec<&(Name, UnikernelConfig)> = unikernels.iter().collect();
    unikernels.sort_by(|a, b| a.0.trie_key().cmp(&b.0.trie_key()));
    let mut policies: Vec<&(Path, Policy)> = policies.iter().collect();
    policies.sort_by(|a, b| a.0.labels().cmp(b.0.labels()));
    let unikernels = unikernels
        .into_iter()
        .map(|(name, config)| Node::seq(vec![name_node(name), config_node(config)]))
        .collect();
    let policies = policies
        .into_iter()
        .map(|(path, policy)| {
            Node::seq(vec![
                name_node(&Name::of_path(path.clone())),
                policy_node(policy),
            ])
        })
        .collect();
    Node::explicit(
        6,
        Node::seq(vec![Node::seq(unikernels), Node::seq(policies)]),
    )
    .to_vec()
}
