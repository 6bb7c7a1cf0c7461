//! Unix `SOCK_SEQPACKET` sockets that carry open file descriptors: the
//! transport of the channels between the core and its roles (see
//! [`crate::ipc`]).
//!
//! A seqpacket socket keeps message boundaries (one `sendmsg` is one
//! `recvmsg`), is reliable and ordered, and reports the end of the peer
//! as a zero-length read, like a stream. File descriptors travel as
//! `SCM_RIGHTS` ancillary data, so a role receives an open FIFO or socket
//! instead of a path it would need rights to open.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Most file descriptors one message may carry.
pub const MAX_FDS: usize = 8;

/// A connected pair of seqpacket sockets, both close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A seqpacket socket listening on `path` (an existing file there is
/// replaced), with mode `mode`.
pub fn listen(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))?;
    rustix::net::listen(&fd, 16)?;
    Ok(fd)
}

/// Connects to the seqpacket socket at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// Accepts one connection (close-on-exec) on a listening seqpacket socket.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(listener, SocketFlags::CLOEXEC)?)
}

/// The user id of the process at the other end of a connected socket.
pub fn peer_uid(socket: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(socket)?.uid.as_raw())
}

/// Sends one message with `fds` attached. Fails with `InvalidInput` for
/// more than [`MAX_FDS`] descriptors.
pub fn send(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} file descriptors in one message (at most {MAX_FDS})",
                fds.len()
            ),
        ));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    loop {
        match rustix::net::sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) if n == bytes.len() => return Ok(()),
            // A seqpacket message is sent whole or not at all.
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "message of {} bytes sent as {n}",
                    bytes.len()
                )))
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`recv`] got.
#[derive(Debug)]
pub enum Received {
    /// A message of `len` bytes at the start of the buffer, and the file
    /// descriptors that came with it.
    Message {
        /// Bytes received.
        len: usize,
        /// Descriptors received (close-on-exec).
        fds: Vec<OwnedFd>,
    },
    /// The peer closed its end.
    Closed,
}

/// Receives one message into `buf`. A message larger than `buf`, or one
/// with more than [`MAX_FDS`] descriptors, is an `InvalidData` error (its
/// descriptors are closed); `WouldBlock` comes through for non-blocking
/// sockets.
pub fn recv(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "message larger than {} bytes or with more than {MAX_FDS} descriptors",
                buf.len()
            ),
        ));
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    Ok(Received::Message {
        len: msg.bytes,
        fds,
    })
}

/// Whether `fd` is a seqpacket socket (how a role checks the descriptor it
/// was told is its channel).
pub fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::SEQPACKET)
}

/// Borrows every descriptor of `fds`.
pub fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(AsFd::as_fd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn messages_keep_boundaries_and_carry_descriptors() {
        let (a, b) = pair().unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        send(a.as_fd(), b"one", &[]).unwrap();
        send(a.as_fd(), b"two", &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = [0u8; 16];
        let Received::Message { len, fds } = recv(b.as_fd(), &mut buf).unwrap() else {
            panic!("closed")
        };
        assert_eq!((&buf[..len], fds.len()), (&b"one"[..], 0));
        let Received::Message { len, mut fds } = recv(b.as_fd(), &mut buf).unwrap() else {
            panic!("closed")
        };
        assert_eq!((&buf[..len], fds.len()), (&b"two"[..], 1));
        let mut writer = std::fs::File::from(fds.remove(0));
        writer.write_all(b"through").unwrap();
        drop(writer);
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through");
        drop(a);
        assert!(matches!(
            recv(b.as_fd(), &mut buf).unwrap(),
            Received::Closed
        ));
    }

    #[test]
    fn oversized_messages_are_refused_not_cut() {
        let (a, b) = pair().unwrap();
        send(a.as_fd(), &[7u8; 100], &[]).unwrap();
        let mut small = [0u8; 10];
        let err = recv(b.as_fd(), &mut small).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let too_many: Vec<OwnedFd> = (0..=MAX_FDS).map(|_| pair().unwrap().0).collect();
        let err = send(a.as_fd(), b"x", &borrow_all(&too_many)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
