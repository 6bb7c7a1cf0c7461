//! The channels between the core and its roles.
//!
//! A channel is one `SOCK_SEQPACKET` connection ([`crate::sys::seqpacket`]):
//! a socketpair inherited at fork for a role the daemon starts itself, or
//! a connection to the root-only `<tmpdir>/util/roles.sock` for a role an
//! operator starts alone under its legacy name. Both sides speak the same
//! protocol:
//!
//! - one message per datagram: the protocol version (2 bytes, big-endian)
//!   followed by the message in bincode, at most [`MAX_MESSAGE`] bytes;
//! - open file descriptors ride along as `SCM_RIGHTS`, and each message
//!   says how many it carries ([`Message::fds`]), so a missing or extra
//!   descriptor is a protocol error, never a leak or a mix-up;
//! - each role has its own pair of message types ([`messages`]): the core
//!   decodes what the console role sends as [`messages::FromConsole`], so a
//!   role can only send the kinds of messages its type has;
//! - a message that does not decode, or a wrong version, ends the channel:
//!   the peer is our own binary, so either it is a different version or it
//!   was subverted.
//!
//! bincode is only ever used here, between our own processes (known trap
//! 14); everything from outside is DER.

pub mod messages;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use async_io::Async;

use crate::sys::seqpacket::{self, Received};

/// Version of the channel protocol; both ends must speak the same.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest message in bytes, version prefix included.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The bincode configuration of every message: bounded, so a peer cannot
/// make the decoder allocate more than a message holds.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// A message of the channel protocol.
pub trait Message: bincode::Encode + bincode::Decode<()> {
    /// How many file descriptors travel with this message.
    fn fds(&self) -> usize {
        0
    }
}

/// Why a channel failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum IpcError {
    /// Sending or receiving failed.
    Io(io::Error),
    /// The peer speaks another protocol version.
    Version {
        /// What the peer sent.
        got: u16,
    },
    /// A message did not decode (or encode).
    Codec(String),
    /// A message came with the wrong number of descriptors.
    Fds {
        /// How many the message says it carries.
        expected: usize,
        /// How many arrived.
        got: usize,
    },
    /// The peer closed the channel.
    Closed,
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpcError::Io(e) => write!(f, "channel: {e}"),
            IpcError::Version { got } => write!(
                f,
                "channel: the peer speaks protocol version {got}, this program {PROTOCOL_VERSION} \
                 (run the same albatross binary for the daemon and its roles)"
            ),
            IpcError::Codec(e) => write!(f, "channel: malformed message: {e}"),
            IpcError::Fds { expected, got } => write!(
                f,
                "channel: message with {got} file descriptors where {expected} belong"
            ),
            IpcError::Closed => write!(f, "channel closed by the peer"),
        }
    }
}

impl std::error::Error for IpcError {}

impl From<io::Error> for IpcError {
    fn from(e: io::Error) -> IpcError {
        IpcError::Io(e)
    }
}

fn encode<M: Message>(msg: &M, fds: usize) -> Result<Vec<u8>, IpcError> {
    if msg.fds() != fds {
        return Err(IpcError::Fds {
            expected: msg.fds(),
            got: fds,
        });
    }
    let mut bytes = PROTOCOL_VERSION.to_be_bytes().to_vec();
    bincode::encode_into_std_write(msg, &mut bytes, config())
        .map_err(|e| IpcError::Codec(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(IpcError::Codec(format!(
            "message of {} bytes exceeds {MAX_MESSAGE}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn decode<M: Message>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(M, Vec<OwnedFd>), IpcError> {
    let (version, body) = match bytes {
        [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
        _ => return Err(IpcError::Codec("message shorter than its version".into())),
    };
    if version != PROTOCOL_VERSION {
        return Err(IpcError::Version { got: version });
    }
    let (msg, used): (M, usize) =
        bincode::decode_from_slice(body, config()).map_err(|e| IpcError::Codec(e.to_string()))?;
    if used != body.len() {
        return Err(IpcError::Codec(format!(
            "{} bytes after the message",
            body.len() - used
        )));
    }
    if msg.fds() != fds.len() {
        return Err(IpcError::Fds {
            expected: msg.fds(),
            got: fds.len(),
        });
    }
    Ok((msg, fds))
}

/// One end of a channel that sends `Tx` and receives `Rx`, used blocking
/// (before the async runtime exists, or from a plain thread).
#[derive(Debug)]
pub struct Channel<Tx, Rx> {
    fd: OwnedFd,
    _types: PhantomData<fn(Tx) -> Rx>,
}

impl<Tx: Message, Rx: Message> Channel<Tx, Rx> {
    /// A channel over a connected seqpacket socket.
    pub fn new(fd: OwnedFd) -> Channel<Tx, Rx> {
        Channel {
            fd,
            _types: PhantomData,
        }
    }

    /// Sends `msg` with `fds` (as many as `msg.fds()` says).
    pub fn send(&self, msg: &Tx, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        let bytes = encode(msg, fds.len())?;
        seqpacket::send(self.fd.as_fd(), &bytes, fds)?;
        Ok(())
    }

    /// Waits for the next message; [`IpcError::Closed`] when the peer is
    /// gone.
    pub fn recv(&self) -> Result<(Rx, Vec<OwnedFd>), IpcError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        match seqpacket::recv(self.fd.as_fd(), &mut buf)? {
            Received::Message { len, fds } => decode(&buf[..len], fds),
            Received::Closed => Err(IpcError::Closed),
        }
    }

    /// The same channel for use on the async runtime.
    pub fn into_async(self) -> io::Result<AsyncChannel<Tx, Rx>> {
        Ok(AsyncChannel {
            fd: Async::new(self.fd)?,
            _types: PhantomData,
        })
    }

    /// The socket, e.g. to keep it from being closed on exec.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Gives the socket back.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// One end of a channel on the async runtime. Sending takes `&self`: each
/// message is one datagram, so tasks sharing a channel never interleave.
#[derive(Debug)]
pub struct AsyncChannel<Tx, Rx> {
    fd: Async<OwnedFd>,
    _types: PhantomData<fn(Tx) -> Rx>,
}

impl<Tx: Message, Rx: Message> AsyncChannel<Tx, Rx> {
    /// Sends `msg` with `fds` (as many as `msg.fds()` says).
    pub async fn send(&self, msg: &Tx, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        let bytes = encode(msg, fds.len())?;
        self.fd
            .write_with(|fd| seqpacket::send(fd.as_fd(), &bytes, fds))
            .await?;
        Ok(())
    }

    /// Waits for the next message; [`IpcError::Closed`] when the peer is
    /// gone.
    pub async fn recv(&self) -> Result<(Rx, Vec<OwnedFd>), IpcError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        match self
            .fd
            .read_with(|fd| seqpacket::recv(fd.as_fd(), &mut buf))
            .await?
        {
            Received::Message { len, fds } => decode(&buf[..len], fds),
            Received::Closed => Err(IpcError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::messages::{FromRole, Hello, RoleKind};
    use super::*;

    #[derive(Debug, PartialEq, bincode::Encode, bincode::Decode)]
    enum Two {
        Plain(String),
        WithFd,
    }

    impl Message for Two {
        fn fds(&self) -> usize {
            usize::from(matches!(self, Two::WithFd))
        }
    }

    fn pair<A: Message, B: Message>() -> (Channel<A, B>, Channel<B, A>) {
        let (a, b) = seqpacket::pair().unwrap();
        (Channel::new(a), Channel::new(b))
    }

    #[test]
    fn typed_messages_and_descriptors() {
        let (a, b) = pair::<Two, Two>();
        a.send(&Two::Plain("hi".into()), &[]).unwrap();
        let (_, w) = std::io::pipe().unwrap();
        a.send(&Two::WithFd, &[w.as_fd()]).unwrap();
        assert_eq!(b.recv().unwrap().0, Two::Plain("hi".into()));
        let (msg, fds) = b.recv().unwrap();
        assert_eq!((msg, fds.len()), (Two::WithFd, 1));
        // The count is checked on both sides.
        assert!(matches!(
            a.send(&Two::WithFd, &[]),
            Err(IpcError::Fds {
                expected: 1,
                got: 0
            })
        ));
        drop(a);
        assert!(matches!(b.recv(), Err(IpcError::Closed)));
    }

    #[test]
    fn wrong_version_and_garbage_end_the_channel() {
        let (a, b) = seqpacket::pair().unwrap();
        let b: Channel<Two, Two> = Channel::new(b);
        seqpacket::send(a.as_fd(), &[0, 9, 0], &[]).unwrap();
        assert!(matches!(b.recv(), Err(IpcError::Version { got: 9 })));
        seqpacket::send(a.as_fd(), &[0, 1, 0xFF, 0xFF, 0xFF], &[]).unwrap();
        assert!(matches!(b.recv(), Err(IpcError::Codec(_))));
        seqpacket::send(a.as_fd(), &[0], &[]).unwrap();
        assert!(matches!(b.recv(), Err(IpcError::Codec(_))));
        // Descriptors the message does not announce are refused (and closed).
        let (_, w) = std::io::pipe().unwrap();
        let bytes = encode(&Two::Plain("x".into()), 0).unwrap();
        seqpacket::send(a.as_fd(), &bytes, &[w.as_fd()]).unwrap();
        assert!(matches!(
            b.recv(),
            Err(IpcError::Fds {
                expected: 0,
                got: 1
            })
        ));
    }

    #[test]
    fn role_envelope_round_trips() {
        let (a, b) = pair::<FromRole<()>, FromRole<()>>();
        a.send(
            &FromRole::Hello(Hello {
                role: RoleKind::Console,
                pid: 7,
            }),
            &[],
        )
        .unwrap();
        assert!(matches!(
            b.recv().unwrap().0,
            FromRole::Hello(Hello {
                role: RoleKind::Console,
                pid: 7
            })
        ));
    }

    #[test]
    fn async_channels() {
        let (a, b) = pair::<Two, Two>();
        let (a, b) = (a.into_async().unwrap(), b.into_async().unwrap());
        smol::block_on(async {
            a.send(&Two::Plain("async".into()), &[]).await.unwrap();
            assert_eq!(b.recv().await.unwrap().0, Two::Plain("async".into()));
        });
    }
}
