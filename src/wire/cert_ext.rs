//! The albatross X.509 extension (§6, §7.1) and the derivation of the
//! name, policies and command from a certificate chain (§15.3).
//!
//! Only the pure logic lives here: signatures, validity periods and key
//! usages are checked by the TLS endpoint before it calls
//! [`chain_to_command`].

use std::fmt;

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Tag, Tagged};
use x509_cert::Certificate;

use super::der::{DecodeError, DecodeResult, Node, Reader};
use super::message::{command_node, read_command};
use super::types::{
    BlockCmd, CertCommand, Command, ConsoleCmd, PolicyCmd, StatsCmd, UnikernelCmd, WIRE_VERSION,
};
use crate::model::{Label, Name, NameError, Path, Policy};

/// The OID of the albatross extension, 1.3.6.1.4.1.49836.42.
pub const ALBATROSS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.49836.42");

/// The OID of the X.520 common name attribute.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Longest certificate path accepted, leaf included (§15.3: fewer than 10).
pub const MAX_CHAIN_LEN: usize = 9;

/// Encodes the extension value: `SEQUENCE { version, command }`.
pub fn encode_cert_command(c: &CertCommand) -> Vec<u8> {
    Node::seq(vec![Node::integer(c.version), command_node(&c.command)]).to_vec()
}

/// Decodes the extension value; a version other than 5 is an error.
pub fn decode_cert_command(bytes: &[u8]) -> DecodeResult<CertCommand> {
    let mut r = Reader::new(bytes);
    let cert = r.sequence("certificate command", |r| {
        let version = r.integer("certificate command version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        Ok(CertCommand {
            version,
            command: read_command(r)?,
        })
    })?;
    r.finish("certificate command")?;
    Ok(cert)
}

/// What a certificate chain asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCommand {
    /// The object of the command: the intermediates' path plus the leaf's
    /// common name, if any.
    pub name: Name,
    /// The policies of the intermediate CAs, outermost first.
    pub policies: Vec<(Path, Policy)>,
    /// The leaf's command.
    pub command: CertCommand,
}

/// Why a certificate chain does not yield a command (§15.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// No certificate at all.
    EmptyChain,
    /// The chain has 10 or more certificates.
    ChainTooLong {
        /// Its length.
        len: usize,
    },
    /// An albatross extension did not decode.
    BadExtension {
        /// Subject of the certificate.
        subject: String,
        /// The decoding error.
        error: DecodeError,
    },
    /// An intermediate CA with a policy has no common name.
    PolicyWithoutName {
        /// Subject of the certificate.
        subject: String,
    },
    /// A common name is not a valid label.
    BadCommonName {
        /// Subject of the certificate.
        subject: String,
        /// Why the label was refused.
        error: NameError,
    },
    /// A common name is not a character string.
    CommonNameNotText {
        /// Subject of the certificate.
        subject: String,
    },
    /// An intermediate CA carries a command other than `policy add`.
    UnexpectedIntermediateCommand {
        /// Subject of the certificate.
        subject: String,
        /// The command found.
        command: &'static str,
    },
    /// The leaf has no albatross extension.
    NoLeafExtension {
        /// Subject of the leaf.
        subject: String,
    },
    /// The leaf has no common name but its command needs a name.
    LeafNeedsName {
        /// The leaf's command.
        command: &'static str,
    },
    /// The leaf carries a command that a certificate may not request.
    UnexpectedCommand {
        /// The command found.
        command: &'static str,
    },
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::EmptyChain => write!(f, "the certificate chain is empty"),
            CertError::ChainTooLong { len } => write!(
                f,
                "certificate chain too long: {len} certificates, at most {MAX_CHAIN_LEN} allowed"
            ),
            CertError::BadExtension { subject, error } => {
                write!(
                    f,
                    "the albatross extension of certificate {subject:?} is invalid: {error}"
                )
            }
            CertError::PolicyWithoutName { subject } => write!(
                f,
                "certificate {subject:?} carries a policy but no common name \
                 (policy add may not have an empty name)"
            ),
            CertError::BadCommonName { subject, error } => {
                write!(
                    f,
                    "common name of certificate {subject:?} is not a valid label: {error}"
                )
            }
            CertError::CommonNameNotText { subject } => {
                write!(
                    f,
                    "common name of certificate {subject:?} is not a character string"
                )
            }
            CertError::UnexpectedIntermediateCommand { subject, command } => write!(
                f,
                "unexpected wire command {command} in intermediate certificate {subject:?} \
                 (only policy add is allowed there)"
            ),
            CertError::NoLeafExtension { subject } => write!(
                f,
                "leaf certificate {subject:?} does not contain an albatross extension"
            ),
            CertError::LeafNeedsName { command } => {
                write!(
                    f,
                    "the leaf certificate has no common name, which {command} needs"
                )
            }
            CertError::UnexpectedCommand { command } => {
                write!(f, "unexpected command {command} in the leaf certificate")
            }
        }
    }
}

impl std::error::Error for CertError {}

/// A short name of a command for messages.
fn command_kind(c: &Command) -> &'static str {
    match c {
        Command::Console(ConsoleCmd::Add(_)) => "console add",
        Command::Console(ConsoleCmd::Subscribe(_)) => "console subscribe",
        Command::Console(ConsoleCmd::ListInactive) => "console list-inactive",
        Command::Stats(StatsCmd::Add { .. }) => "statistics add",
        Command::Stats(StatsCmd::Remove) => "statistics remove",
        Command::Stats(StatsCmd::Subscribe) => "statistics subscribe",
        Command::Stats(StatsCmd::Initial) => "statistics initial",
        Command::Unikernel(UnikernelCmd::Info(_)) => "unikernel info",
        Command::Unikernel(UnikernelCmd::Create(_)) => "unikernel create",
        Command::Unikernel(UnikernelCmd::ForceCreate(_)) => "unikernel force-create",
        Command::Unikernel(UnikernelCmd::Destroy) => "unikernel destroy",
        Command::Unikernel(UnikernelCmd::Get(_)) => "unikernel get",
        Command::Unikernel(UnikernelCmd::Restart(_)) => "unikernel restart",
        Command::Unikernel(UnikernelCmd::Status) => "unikernel status",
        Command::Policy(PolicyCmd::Info) => "policy info",
        Command::Policy(PolicyCmd::Add(_)) => "policy add",
        Command::Policy(PolicyCmd::Remove) => "policy remove",
        Command::Block(BlockCmd::Info) => "block info",
        Command::Block(BlockCmd::Add(_) | BlockCmd::AddOld { .. }) => "block add",
        Command::Block(BlockCmd::Remove) => "block remove",
        Command::Block(BlockCmd::SetOld { .. } | BlockCmd::Set(_)) => "block set",
        Command::Block(BlockCmd::DumpOld(_) | BlockCmd::Dump(_)) => "block dump",
    }
}

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// The decoded albatross extension of `cert`, if it has one.
fn extension(cert: &Certificate) -> Result<Option<CertCommand>, CertError> {
    let Some(ext) = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ALBATROSS_OID)
    else {
        return Ok(None);
    };
    decode_cert_command(ext.extn_value.as_bytes())
        .map(Some)
        .map_err(|error| CertError::BadExtension {
            subject: subject(cert),
            error,
        })
}

/// The first common name of the subject, as text.
fn common_name(cert: &Certificate) -> Result<Option<String>, CertError> {
    let Some(atv) = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)
    else {
        return Ok(None);
    };
    let text = match atv.value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(atv.value.value()).ok()
        }
        _ => None,
    };
    text.map(|t| Some(t.to_string()))
        .ok_or_else(|| CertError::CommonNameNotText {
            subject: subject(cert),
        })
}

fn label_of(cert: &Certificate, cn: &str) -> Result<Label, CertError> {
    Label::parse(cn).map_err(|error| CertError::BadCommonName {
        subject: subject(cert),
        error,
    })
}

/// Derives name, policies and command from a verified chain, leaf first
/// (§15.3).
pub fn chain_to_command(chain: &[Certificate]) -> Result<ChainCommand, CertError> {
    let (leaf, intermediates) = chain.split_first().ok_or(CertError::EmptyChain)?;
    if chain.len() > MAX_CHAIN_LEN {
        return Err(CertError::ChainTooLong { len: chain.len() });
    }
    let mut path = Path::root();
    let mut policies = Vec::new();
    for cert in intermediates.iter().rev() {
        match extension(cert)? {
            None => {}
            Some(CertCommand {
                command: Command::Policy(PolicyCmd::Add(policy)),
                ..
            }) => {
                let cn = common_name(cert)?.ok_or_else(|| CertError::PolicyWithoutName {
                    subject: subject(cert),
                })?;
                path = path.child(label_of(cert, &cn)?);
                policies.push((path.clone(), policy));
            }
            Some(other) => {
                return Err(CertError::UnexpectedIntermediateCommand {
                    subject: subject(cert),
                    command: command_kind(&other.command),
                })
            }
        }
    }
    let command = extension(leaf)?.ok_or_else(|| CertError::NoLeafExtension {
        subject: subject(leaf),
    })?;
    let kind = command_kind(&command.command);
    let name = match common_name(leaf)?.as_deref() {
        Some("." | ":") => Name::of_path(path),
        Some(cn) => Name::new(path, label_of(leaf, cn)?),
        None => match &command.command {
            Command::Policy(PolicyCmd::Add(_) | PolicyCmd::Remove) => {
                return Err(CertError::LeafNeedsName { command: kind })
            }
            Command::Block(b) if *b != BlockCmd::Info => {
                return Err(CertError::LeafNeedsName { command: kind })
            }
            _ => Name::of_path(path),
        },
    };
    let allowed = matches!(
        &command.command,
        Command::Console(ConsoleCmd::Subscribe(_) | ConsoleCmd::ListInactive)
            | Command::Stats(StatsCmd::Subscribe)
            | Command::Unikernel(_)
            | Command::Policy(PolicyCmd::Info)
            | Command::Block(_)
    );
    if !allowed {
        return Err(CertError::UnexpectedCommand { command: kind });
    }
    Ok(ChainCommand {
        name,
        policies,
        command,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use x509_cert::der::asn1::OctetString;

    use super::*;

    /// The `arc` chain of the vectors: leaf `foo.bar`, intermediate `arc`.
    fn arc_chain() -> Vec<Certificate> {
        let pem = include_str!("../../tests/vectors/tls_chain_arc_foo.bar.pem");
        Certificate::load_pem_chain(pem.as_bytes()).unwrap()
    }

    /// `cert` with another subject and albatross extension value.
    fn modified(cert: &Certificate, subject: &str, ext: Option<Vec<u8>>) -> Certificate {
        let mut cert = cert.clone();
        cert.tbs_certificate.subject = x509_cert::name::Name::from_str(subject).unwrap();
        let exts = cert.tbs_certificate.extensions.get_or_insert_with(Vec::new);
        exts.retain(|e| e.extn_id != ALBATROSS_OID);
        if let Some(value) = ext {
            exts.push(x509_cert::ext::Extension {
                extn_id: ALBATROSS_OID,
                critical: false,
                extn_value: OctetString::new(value).unwrap(),
            });
        }
        cert
    }

    fn ext(command: Command) -> Option<Vec<u8>> {
        Some(encode_cert_command(&CertCommand {
            version: WIRE_VERSION,
            command,
        }))
    }

    fn leaf_with(subject: &str, command: Command) -> Result<ChainCommand, CertError> {
        let chain = arc_chain();
        chain_to_command(&[modified(&chain[0], subject, ext(command)), chain[1].clone()])
    }

    #[test]
    fn version_must_be_5() {
        let v4 = Node::seq(vec![
            Node::integer(4),
            command_node(&Command::Policy(PolicyCmd::Info)),
        ]);
        assert_eq!(
            decode_cert_command(&v4.to_vec()),
            Err(DecodeError::UnknownVersion(4))
        );
        let mut ok = encode_cert_command(&CertCommand {
            version: 5,
            command: Command::Policy(PolicyCmd::Info),
        });
        assert!(decode_cert_command(&ok).is_ok());
        ok.push(0);
        assert!(matches!(
            decode_cert_command(&ok),
            Err(DecodeError::Trailing { .. })
        ));
    }

    #[test]
    fn leaf_names() {
        let info = Command::Unikernel(UnikernelCmd::Info(crate::wire::types::InfoVersion::Current));
        assert_eq!(
            leaf_with("CN=.", info.clone()).unwrap().name.to_string(),
            "arc:"
        );
        assert_eq!(
            leaf_with("CN=:", info.clone()).unwrap().name.to_string(),
            "arc:"
        );
        assert_eq!(
            leaf_with("CN=Web", info.clone()).unwrap().name.to_string(),
            "arc:web"
        );
        assert_eq!(
            leaf_with("O=x", info.clone()).unwrap().name.to_string(),
            "arc:"
        );
        assert!(matches!(
            leaf_with("CN=a b", info),
            Err(CertError::BadCommonName {
                error: NameError::BadCharacter { .. },
                ..
            })
        ));
        let block_info = leaf_with("O=x", Command::Block(BlockCmd::Info)).unwrap();
        assert_eq!(block_info.name.to_string(), "arc:");
        for cmd in [
            Command::Block(BlockCmd::Add(1)),
            Command::Policy(PolicyCmd::Remove),
        ] {
            assert!(matches!(
                leaf_with("O=x", cmd),
                Err(CertError::LeafNeedsName { .. })
            ));
        }
    }

    #[test]
    fn leaf_commands() {
        for cmd in [
            Command::Console(ConsoleCmd::ListInactive),
            Command::Stats(StatsCmd::Subscribe),
            Command::Unikernel(UnikernelCmd::Destroy),
            Command::Policy(PolicyCmd::Info),
            Command::Block(BlockCmd::Dump(0)),
        ] {
            assert!(leaf_with("CN=x", cmd.clone()).is_ok(), "{cmd:?}");
        }
        for cmd in [
            Command::Console(ConsoleCmd::Add(1)),
            Command::Stats(StatsCmd::Initial),
            Command::Stats(StatsCmd::Remove),
            Command::Policy(PolicyCmd::Remove),
            Command::Policy(PolicyCmd::Add(Policy {
                unikernels: 1,
                cpuids: Default::default(),
                memory: 1,
                block: None,
                bridges: Default::default(),
            })),
        ] {
            let err = leaf_with("CN=x", cmd).unwrap_err();
            assert!(matches!(err, CertError::UnexpectedCommand { .. }), "{err}");
        }
        let chain = arc_chain();
        let bare = modified(&chain[0], "CN=x", None);
        let err = chain_to_command(&[bare, chain[1].clone()]).unwrap_err();
        assert!(matches!(err, CertError::NoLeafExtension { .. }));
        assert!(err.to_string().contains("CN=x"), "{err}");
        let broken = modified(&chain[0], "CN=x", Some(vec![0x30, 0x00]));
        let err = chain_to_command(&[broken, chain[1].clone()]).unwrap_err();
        assert!(matches!(err, CertError::BadExtension { .. }), "{err}");
    }

    #[test]
    fn intermediates() {
        let chain = arc_chain();
        let arc = &chain[1];
        let leaf = &chain[0];
        // A nested intermediate below arc extends the path, CA side first.
        let team = modified(arc, "CN=Team", arc_ext(arc));
        let result = chain_to_command(&[leaf.clone(), team, arc.clone()]).unwrap();
        assert_eq!(result.name.to_string(), "arc:team:foo.bar");
        let paths: Vec<String> = result.policies.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["arc", "arc:team"]);

        let nameless = modified(arc, "O=x", arc_ext(arc));
        let err = chain_to_command(&[leaf.clone(), nameless]).unwrap_err();
        assert!(matches!(err, CertError::PolicyWithoutName { .. }));
        assert!(err
            .to_string()
            .contains("policy add may not have an empty name"));
        let bad = modified(arc, "CN=-x", arc_ext(arc));
        assert!(matches!(
            chain_to_command(&[leaf.clone(), bad]),
            Err(CertError::BadCommonName { .. })
        ));
        let other = modified(arc, "CN=x", ext(Command::Policy(PolicyCmd::Info)));
        let err = chain_to_command(&[leaf.clone(), other]).unwrap_err();
        assert!(matches!(
            err,
            CertError::UnexpectedIntermediateCommand {
                command: "policy info",
                ..
            }
        ));
        assert!(err.to_string().contains("unexpected wire"), "{err}");
        // Without an extension an intermediate is skipped.
        let plain = modified(arc, "CN=x", None);
        assert_eq!(
            chain_to_command(&[leaf.clone(), plain])
                .unwrap()
                .name
                .to_string(),
            ":foo.bar"
        );
    }

    fn arc_ext(arc: &Certificate) -> Option<Vec<u8>> {
        arc.tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ALBATROSS_OID)
            .map(|e| e.extn_value.as_bytes().to_vec())
    }
}
