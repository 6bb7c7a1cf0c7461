//! Policies: the resource limits attached to a path (§9.1), the client-side
//! "usable" check and the "sub-policy is smaller" relation used by the
//! static check of §9.3.

use std::collections::BTreeSet;
use std::fmt;

/// The `unikernels` value meaning "unlimited": OCaml's `max_int` on 64-bit
/// hosts, 2^62−1. Used for the root policy and the console limit at the root.
pub const UNLIMITED_UNIKERNELS: i64 = (1 << 62) - 1;

/// Memory (MB) a policy must exceed to be usable.
pub const MIN_USABLE_MEMORY: i64 = 16;

/// Limits for everything running at or below a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct Policy {
    /// Maximum number of running unikernels.
    pub unikernels: i64,
    /// CPU ids unikernels may be pinned to.
    pub cpuids: BTreeSet<i64>,
    /// Memory in MB for all running unikernels together.
    pub memory: i64,
    /// Block storage in MB; `None` means no block devices at all.
    pub block: Option<i64>,
    /// Host bridges unikernels may attach to.
    pub bridges: BTreeSet<String>,
}

/// Why the client refuses to send a policy (§9.1 "usable" check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnusablePolicy {
    /// `unikernels` is 0 or negative.
    NoUnikernels,
    /// The CPU id set is empty.
    NoCpuids,
    /// Memory is 16 MB or less.
    TooLittleMemory {
        /// The policy's memory in MB.
        memory: i64,
    },
    /// Block storage is negative.
    NegativeBlock {
        /// The policy's block storage in MB.
        block: i64,
    },
}

impl fmt::Display for UnusablePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Upstream's texts, verbatim.
        match self {
            UnusablePolicy::NoUnikernels => f.write_str("Unusable policy with no unikernels"),
            UnusablePolicy::NoCpuids => f.write_str("Unusable policy with no CPUids"),
            UnusablePolicy::TooLittleMemory { memory } => write!(
                f,
                "Unusable policy with memory {memory} MB <= {MIN_USABLE_MEMORY} MB"
            ),
            UnusablePolicy::NegativeBlock { block } => {
                write!(f, "Unusable policy with block {block} MB < 0 MB")
            }
        }
    }
}

impl std::error::Error for UnusablePolicy {}

/// Why a policy is not "smaller than" the policy above it (§9.3). The
/// texts say "policy above" even when the larger policy is the one being
/// inserted (the "below" direction), as upstream does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceedsPolicy {
    /// More unikernels than the policy above allows.
    Unikernels {
        /// The limit above.
        limit: i64,
        /// The value below.
        requested: i64,
    },
    /// More memory than the policy above allows.
    Memory {
        /// The limit above, in MB.
        limit: i64,
        /// The value below, in MB.
        requested: i64,
    },
    /// CPU ids the policy above does not allow.
    Cpuids {
        /// The CPU ids below that are not allowed above.
        not_allowed: BTreeSet<i64>,
    },
    /// Bridges the policy above does not allow.
    Bridges {
        /// The bridges allowed above.
        allowed: BTreeSet<String>,
        /// The bridges below.
        requested: BTreeSet<String>,
    },
    /// More block storage than the policy above allows (absent counts as 0).
    Block {
        /// The limit above, in MB (0 when absent).
        limit: i64,
        /// The value below, in MB (0 when absent).
        requested: i64,
    },
}

impl fmt::Display for ExceedsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExceedsPolicy::Unikernels { limit, requested } => write!(
                f,
                "policy above allows {limit} unikernels, which is fewer than {requested}"
            ),
            ExceedsPolicy::Memory { limit, requested } => write!(
                f,
                "policy above allows {limit} MB memory, which is fewer than {requested} MB"
            ),
            ExceedsPolicy::Cpuids { not_allowed } => {
                write!(
                    f,
                    "policy above does not allow CPUids {}",
                    listing(not_allowed)
                )
            }
            ExceedsPolicy::Bridges { allowed, requested } => write!(
                f,
                "policy above allows bridge(s) {}, which is not a superset of {}",
                listing(allowed),
                listing(requested)
            ),
            ExceedsPolicy::Block { limit, requested } => write!(
                f,
                "policy above allows {limit} MB block storage, which is fewer than {requested} MB"
            ),
        }
    }
}

impl std::error::Error for ExceedsPolicy {}

impl Policy {
    /// The root policy describing the host (§9.1): unlimited unikernels,
    /// CPU ids `0..ncpus`, and the given memory, block storage and bridges.
    pub fn host(
        ncpus: u32,
        memory_mb: i64,
        block_mb: i64,
        bridges: impl IntoIterator<Item = String>,
    ) -> Policy {
        Policy {
            unikernels: UNLIMITED_UNIKERNELS,
            cpuids: (0..i64::from(ncpus)).collect(),
            memory: memory_mb,
            block: Some(block_mb),
            bridges: bridges.into_iter().collect(),
        }
    }

    /// The client-side "usable" check (§9.1), in upstream's order. The
    /// daemon does not run it.
    pub fn check_usable(&self) -> Result<(), UnusablePolicy> {
        if self.unikernels <= 0 {
            Err(UnusablePolicy::NoUnikernels)
        } else if self.cpuids.is_empty() {
            Err(UnusablePolicy::NoCpuids)
        } else if self.memory <= MIN_USABLE_MEMORY {
            Err(UnusablePolicy::TooLittleMemory {
                memory: self.memory,
            })
        } else {
            match self.block {
                Some(block) if block < 0 => Err(UnusablePolicy::NegativeBlock { block }),
                _ => Ok(()),
            }
        }
    }

    /// Whether `self` (the sub-policy) is "smaller than" `above` (§9.3):
    /// unikernels, memory, CPU ids, bridges, block storage, in that order.
    pub fn check_within(&self, above: &Policy) -> Result<(), ExceedsPolicy> {
        if above.unikernels < self.unikernels {
            return Err(ExceedsPolicy::Unikernels {
                limit: above.unikernels,
                requested: self.unikernels,
            });
        }
        if above.memory < self.memory {
            return Err(ExceedsPolicy::Memory {
                limit: above.memory,
                requested: self.memory,
            });
        }
        if !self.cpuids.is_subset(&above.cpuids) {
            return Err(ExceedsPolicy::Cpuids {
                not_allowed: self.cpuids.difference(&above.cpuids).copied().collect(),
            });
        }
        if !self.bridges.is_subset(&above.bridges) {
            return Err(ExceedsPolicy::Bridges {
                allowed: above.bridges.clone(),
                requested: self.bridges.clone(),
            });
        }
        let block_ok = match (above.block, self.block) {
            (_, None) => true,
            (Some(limit), Some(requested)) => limit >= requested,
            (None, Some(_)) => false,
        };
        if !block_ok {
            return Err(ExceedsPolicy::Block {
                limit: above.block.unwrap_or(0),
                requested: self.block.unwrap_or(0),
            });
        }
        Ok(())
    }
}

/// Renders a set for a message: items joined by ", ", or "none" when empty
/// (upstream prints nothing at all for an empty set).
pub(crate) fn listing<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let text = items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        "none".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            unikernels: 2,
            cpuids: [0, 1].into(),
            memory: 64,
            block: Some(10),
            bridges: ["service".to_owned()].into(),
        }
    }

    #[test]
    fn usable_accepts_a_normal_policy() {
        assert_eq!(policy().check_usable(), Ok(()));
        assert_eq!(
            Policy {
                block: None,
                ..policy()
            }
            .check_usable(),
            Ok(())
        );
        assert_eq!(
            Policy {
                block: Some(0),
                ..policy()
            }
            .check_usable(),
            Ok(())
        );
        assert_eq!(
            Policy {
                memory: 17,
                ..policy()
            }
            .check_usable(),
            Ok(())
        );
    }

    #[test]
    fn usable_refusals_in_order_with_upstream_texts() {
        let p = Policy {
            unikernels: 0,
            cpuids: BTreeSet::new(),
            memory: 0,
            ..policy()
        };
        assert_eq!(p.check_usable(), Err(UnusablePolicy::NoUnikernels));
        assert_eq!(
            UnusablePolicy::NoUnikernels.to_string(),
            "Unusable policy with no unikernels"
        );
        let p = Policy {
            cpuids: BTreeSet::new(),
            memory: 0,
            ..policy()
        };
        assert_eq!(p.check_usable(), Err(UnusablePolicy::NoCpuids));
        assert_eq!(
            UnusablePolicy::NoCpuids.to_string(),
            "Unusable policy with no CPUids"
        );
        let p = Policy {
            memory: 16,
            block: Some(-1),
            ..policy()
        };
        assert_eq!(
            p.check_usable(),
            Err(UnusablePolicy::TooLittleMemory { memory: 16 })
        );
        assert_eq!(
            UnusablePolicy::TooLittleMemory { memory: 16 }.to_string(),
            "Unusable policy with memory 16 MB <= 16 MB"
        );
        let p = Policy {
            block: Some(-1),
            ..policy()
        };
        assert_eq!(
            p.check_usable(),
            Err(UnusablePolicy::NegativeBlock { block: -1 })
        );
        assert_eq!(
            UnusablePolicy::NegativeBlock { block: -1 }.to_string(),
            "Unusable policy with block -1 MB < 0 MB"
        );
    }

    #[test]
    fn within_accepts_equal_and_smaller() {
        let above = policy();
        assert_eq!(above.check_within(&above), Ok(()));
        let smaller = Policy {
            unikernels: 1,
            cpuids: [1].into(),
            memory: 10,
            block: None,
            bridges: BTreeSet::new(),
        };
        assert_eq!(smaller.check_within(&above), Ok(()));
        let no_block = Policy {
            block: None,
            ..policy()
        };
        assert_eq!(no_block.check_within(&no_block), Ok(()));
    }

    #[test]
    fn within_refusals_in_order_with_texts() {
        let above = policy();
        let all_worse = Policy {
            unikernels: 3,
            cpuids: [0, 2, 3].into(),
            memory: 65,
            block: Some(11),
            bridges: ["other".to_owned()].into(),
        };
        let err = all_worse.check_within(&above).unwrap_err();
        assert_eq!(
            err,
            ExceedsPolicy::Unikernels {
                limit: 2,
                requested: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "policy above allows 2 unikernels, which is fewer than 3"
        );

        let p = Policy {
            unikernels: 2,
            ..all_worse.clone()
        };
        let err = p.check_within(&above).unwrap_err();
        assert_eq!(
            err,
            ExceedsPolicy::Memory {
                limit: 64,
                requested: 65
            }
        );
        assert_eq!(
            err.to_string(),
            "policy above allows 64 MB memory, which is fewer than 65 MB"
        );

        let p = Policy { memory: 64, ..p };
        let err = p.check_within(&above).unwrap_err();
        assert_eq!(
            err,
            ExceedsPolicy::Cpuids {
                not_allowed: [2, 3].into()
            }
        );
        assert_eq!(err.to_string(), "policy above does not allow CPUids 2, 3");

        let p = Policy {
            cpuids: [1].into(),
            ..p
        };
        let err = p.check_within(&above).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy above allows bridge(s) service, which is not a superset of other"
        );

        let p = Policy {
            bridges: BTreeSet::new(),
            ..p
        };
        let err = p.check_within(&above).unwrap_err();
        assert_eq!(
            err,
            ExceedsPolicy::Block {
                limit: 10,
                requested: 11
            }
        );
        assert_eq!(
            err.to_string(),
            "policy above allows 10 MB block storage, which is fewer than 11 MB"
        );

        // An absent block above refuses any block below, printed as 0.
        let above_none = Policy {
            block: None,
            ..policy()
        };
        let err = Policy {
            block: Some(0),
            ..policy()
        }
        .check_within(&above_none)
        .unwrap_err();
        assert_eq!(
            err,
            ExceedsPolicy::Block {
                limit: 0,
                requested: 0
            }
        );
        assert_eq!(
            err.to_string(),
            "policy above allows 0 MB block storage, which is fewer than 0 MB"
        );
    }

    #[test]
    fn empty_sets_render_as_none() {
        let above = Policy {
            bridges: BTreeSet::new(),
            ..policy()
        };
        let err = policy().check_within(&above).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy above allows bridge(s) none, which is not a superset of service"
        );
    }

    #[test]
    fn host_policy() {
        let p = Policy::host(4, 8192, 100_000, ["br0".to_owned(), "br1".to_owned()]);
        assert_eq!(p.unikernels, (1 << 62) - 1);
        assert_eq!(p.cpuids, [0, 1, 2, 3].into());
        assert_eq!(p.memory, 8192);
        assert_eq!(p.block, Some(100_000));
        assert_eq!(p.bridges, ["br0".to_owned(), "br1".to_owned()].into());
        assert!(Policy::host(0, 1, 1, []).cpuids.is_empty());
    }
}
