//! A replica's socket lent to its full synchronization's thread.
//!
//! Over loopback, a `write(2)` does the TCP send and most of the receiving side's
//! work in the writer's context: a 141 MB RDB file written by the connection task
//! was charged to the tokio workers that answer every other client. So for a plain
//! TCP connection the transfer thread (niced, see `redsnap_persist::background`)
//! writes the file to the socket itself: after `+FULLRESYNC`, the connection is
//! sent a [`Lend`]; it writes out what it has queued, hands over a duplicate of its
//! socket, and writes nothing until the thread drops its [`Lent::back`] (it does
//! not read either: a replica sends nothing before it has its file). The stream
//! produced meanwhile is buffered in the replica's record, as before, and queued
//! once the transfer is over. TLS connections answer with no socket: their file
//! goes through the connection's channel as before.
//!
//! The socket is non-blocking (tokio's; the flag belongs to the open file, shared
//! by the duplicate): the thread waits with poll(2) for room, in steps of
//! [`POLL_STEP`], and gives up after `repl-timeout` without progress or once the
//! connection is gone (its channel closed: killed, or its client left).

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long one poll(2) waits before the thread looks again whether the
/// connection is gone.
const POLL_STEP: Duration = Duration::from_millis(100);

/// A connection's socket when the transfer thread may write to it directly: a
/// plain TCP stream's; None for TLS (the bytes must go through the TLS session,
/// which the connection task owns).
pub(crate) trait PlainFd {
    fn plain_fd(&self) -> Option<BorrowedFd<'_>>;
}

impl PlainFd for tokio::net::TcpStream {
    fn plain_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl<S> PlainFd for tokio_rustls::server::TlsStream<S> {
    fn plain_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// Sent to a replica's connection (`ConnMsg::Lend`) after `+FULLRESYNC`: answer
/// with a [`Lent`] once everything queued before is written.
#[derive(Debug)]
pub(crate) struct Lend(pub(crate) std::sync::mpsc::SyncSender<Lent>);

/// The connection's answer: a duplicate of its socket (None: TLS, use the
/// channel), and the signal it waits for before it writes again (dropped by the
/// thread when done).
#[derive(Debug)]
pub(crate) struct Lent {
    pub fd: Option<OwnedFd>,
    pub back: tokio::sync::oneshot::Sender<()>,
}

/// A lend request and the receiver its answer comes on.
pub(super) fn request() -> (Lend, std::sync::mpsc::Receiver<Lent>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    (Lend(tx), rx)
}

/// The connection's side: `stream`'s socket is lent until the thread is done
/// (returns at once for TLS, whose bytes keep coming through the channel). Err
/// when the client is killed meanwhile (the caller closes the connection; the
/// thread notices the channel closed).
pub(crate) async fn lend<S: PlainFd>(
    stream: &S,
    lend: Lend,
    kill: &tokio::sync::Notify,
) -> io::Result<()> {
    let fd = match stream.plain_fd().map(|fd| fd.try_clone_to_owned()) {
        Some(Ok(fd)) => Some(fd),
        // Out of descriptors: the channel path still works.
        Some(Err(e)) => {
            tracing::debug!("cannot lend the replica's socket: {e}");
            None
        }
        None => None,
    };
    let direct = fd.is_some();
    let (back, back_rx) = tokio::sync::oneshot::channel();
    if lend.0.send(Lent { fd, back }).is_err() || !direct {
        // The transfer is over already, or goes through the channel.
        return Ok(());
    }
    tokio::select! {
        // Sent or dropped: the socket is the connection's again.
        _ = back_rx => Ok(()),
        _ = kill.notified() => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client killed")),
    }
}

/// The thread's side of a lent socket.
pub(super) struct Direct {
    sock: TcpStream,
    /// Held until the transfer ends: dropping it gives the socket back.
    _back: tokio::sync::oneshot::Sender<()>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "replica gone")
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the replica read nothing for repl-timeout seconds",
    )
}

impl Direct {
    pub(super) fn new(fd: OwnedFd, back: tokio::sync::oneshot::Sender<()>) -> Direct {
        Direct {
            sock: TcpStream::from(fd),
            _back: back,
        }
    }

    /// Waits until the socket has room: Ok(false) after `POLL_STEP` without.
    fn wait_room(&self) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid `pollfd` on the stack, count 1; `fd` is owned by
        // `self.sock` and open for the whole call.
        let n = unsafe { libc::poll(&mut p, 1, POLL_STEP.as_millis() as libc::c_int) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        // POLLERR/POLLHUP also end the wait: the next write reports the error.
        Ok(n > 0)
    }

    /// Waits for room after EAGAIN; fails after `timeout` without progress since
    /// `progress`, or once `closed()` says the connection is gone.
    fn wait(
        &self,
        progress: Instant,
        timeout: Duration,
        closed: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        loop {
            if self.wait_room()? {
                return Ok(());
            }
            if closed() {
                return Err(gone());
            }
            if progress.elapsed() > timeout {
                return Err(timed_out());
            }
        }
    }

    /// Writes all of `buf` (nothing once `closed()`: the connection is gone, the
    /// replica must not go on receiving through this duplicate).
    pub(super) fn write_all(
        &mut self,
        mut buf: &[u8],
        timeout: Duration,
        closed: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        if closed() {
            return Err(gone());
        }
        let mut progress = Instant::now();
        while !buf.is_empty() {
            match self.sock.write(buf) {
                Ok(0) => return Err(gone()),
                Ok(n) => {
                    buf = &buf[n..];
                    progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(progress, timeout, closed)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` with sendfile(2) (the kernel
    /// copies from the page cache to the socket).
    pub(super) fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        timeout: Duration,
        closed: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        let end = off
            .checked_add(libc::off_t::try_from(len).map_err(io::Error::other)?)
            .ok_or_else(|| io::Error::other("file offset overflow"))?;
        if closed() {
            return Err(gone());
        }
        let mut progress = Instant::now();
        while off < end {
            let count = (end - off).min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the call (owned by `self.sock`
            // and `file`), `off` is a valid `off_t` the kernel updates.
            let n =
                unsafe { libc::sendfile(self.sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
            if n > 0 {
                progress = Instant::now();
                continue;
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the spooled RDB file is shorter than its length",
                ));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => self.wait(progress, timeout, closed)?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
        Ok(())
    }
}
