//! The plain TCP listening sockets (`port` and `bind`), which CONFIG SET can change
//! at runtime as Redis's `changeListenPort` / `changeBindAddr` do: all or nothing,
//! and without leaving the server unreachable when the new address cannot be bound.
//!
//! A change is two-phase, so that CONFIG SET can still roll it back when another
//! parameter of the same command fails to apply: [`prepare`] stops listening on the
//! addresses that go away (`shutdown(2)` takes a listening socket out of LISTEN at
//! once, so a new socket may bind its address; the old one stays bound and can
//! listen again) and binds the new ones; [`Pending::commit`] starts serving the new
//! sockets and ends the old accept loops; [`Pending::abort`] closes the new ones
//! and lets the old ones listen again.

use crate::config::Config;
use crate::state::Shared;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// One listening socket and the flag that ends its accept loop.
pub(crate) struct Listener {
    pub(crate) sock: Arc<TcpListener>,
    pub(crate) addr: SocketAddr,
    pub(crate) stop: Arc<AtomicBool>,
}

/// The addresses to listen on for `port` and `bind` (`-` marks an address whose
/// failure to bind is tolerated; `*` and `::*` are the wildcards, as in Redis).
pub(crate) fn wanted(port: u16, bind: &str) -> Result<Vec<(SocketAddr, bool)>, String> {
    if port == 0 {
        return Ok(Vec::new());
    }
    bind.split_whitespace()
        .map(|a| {
            let (optional, a) = match a.strip_prefix('-') {
                Some(a) => (true, a),
                None => (false, a),
            };
            let ip = match a {
                "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                "::*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => a
                    .parse::<IpAddr>()
                    .map_err(|_| format!("invalid bind address '{a}'"))?,
            };
            Ok((SocketAddr::new(ip, port), optional))
        })
        .collect()
}

/// Binds one listening socket (SO_REUSEADDR, as tokio's own `bind`; never
/// SO_REUSEPORT: a second server must not share the port).
pub(crate) fn bind_one(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    TcpListener::from_std(sock.into())
}

/// A change of the listening sockets, prepared and not yet in effect.
pub(crate) struct Pending {
    keep: Vec<Listener>,
    new: Vec<Listener>,
    /// Old sockets taken out of LISTEN (their accept loops still run).
    removed: Vec<Listener>,
    backlog: i32,
}

/// Prepares listening as `config` says (see the module comment). The error is the
/// text CONFIG SET reports for `port` (or for `bind` when only it changed).
pub(crate) fn prepare(
    shared: &Shared,
    config: &Config,
    port_changed: bool,
) -> Result<Pending, String> {
    let fail = if port_changed {
        "Unable to listen on this port. Check server logs."
    } else {
        "Failed to bind to specified addresses."
    };
    let port = u16::try_from(config.int("port")).map_err(|_| fail.to_string())?;
    let wanted = wanted(port, &config.str("bind")).map_err(|e| {
        tracing::warn!("CONFIG SET: {e}");
        fail.to_string()
    })?;
    let backlog = config.int("tcp-backlog").clamp(0, i32::MAX as i64) as i32;
    let current = std::mem::take(&mut *shared.listeners.lock());
    let (keep, removed): (Vec<Listener>, Vec<Listener>) = current
        .into_iter()
        .partition(|l| wanted.iter().any(|(a, _)| *a == l.addr));
    for l in &removed {
        let _ = socket2::SockRef::from(&*l.sock).shutdown(std::net::Shutdown::Both);
    }
    let mut pending = Pending {
        keep,
        new: Vec::new(),
        removed,
        backlog,
    };
    for (addr, optional) in wanted {
        if pending.keep.iter().any(|l| l.addr == addr) {
            continue;
        }
        match bind_one(addr, backlog) {
            Ok(sock) => pending.new.push(Listener {
                sock: Arc::new(sock),
                addr,
                stop: Arc::new(AtomicBool::new(false)),
            }),
            Err(e) if optional && e.kind() != std::io::ErrorKind::AddrInUse => {
                tracing::debug!("optional bind {addr} skipped: {e}");
            }
            Err(e) => {
                tracing::warn!("CONFIG SET: could not listen on {addr}: {e}");
                pending.abort(shared);
                return Err(fail.into());
            }
        }
    }
    if port != 0 && pending.keep.is_empty() && pending.new.is_empty() {
        tracing::warn!("CONFIG SET: no address to listen on for port {port}");
        pending.abort(shared);
        return Err(fail.into());
    }
    Ok(pending)
}

impl Pending {
    /// Serves the new sockets and ends the accept loops of the removed ones.
    pub(crate) fn commit(self, shared: &Arc<Shared>) {
        for l in &self.removed {
            l.stop.store(true, Ordering::Release);
        }
        for l in &self.new {
            tracing::info!("Ready to accept connections on {}", l.addr);
            tokio::spawn(crate::accept_loop(
                shared.clone(),
                l.sock.clone(),
                None,
                l.stop.clone(),
            ));
        }
        let mut list = shared.listeners.lock();
        list.extend(self.keep);
        list.extend(self.new);
    }

    /// Closes the new sockets and lets the removed ones listen again.
    pub(crate) fn abort(self, shared: &Shared) {
        for l in &self.removed {
            if let Err(e) = socket2::SockRef::from(&*l.sock).listen(self.backlog) {
                tracing::error!("could not listen again on {}: {e}", l.addr);
            }
        }
        let mut list = shared.listeners.lock();
        list.extend(self.keep);
        list.extend(self.removed);
    }
}
