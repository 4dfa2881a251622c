//! A TCP proxy in front of a server, to partition one client from it while
//! others keep reaching it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways.
    Forward,
    /// Accept connections and never answer (a partition: clients wait for
    /// their timeouts).
    Blackhole,
}

struct Shared {
    mode: Mutex<Mode>,
    conns: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A proxy on a free loopback port forwarding to `127.0.0.1:<target>`.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Start forwarding to `target`.
    pub fn start(target: u16) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Forward),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let acceptor = std::thread::spawn(move || {
            while !sh.stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = client.set_nonblocking(false);
                let mode = *sh.mode.lock().unwrap();
                let mut conns = sh.conns.lock().unwrap();
                match mode {
                    Mode::Blackhole => conns.push(client),
                    Mode::Forward => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                            continue;
                        };
                        conns.push(c2);
                        conns.push(s2);
                        let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) else {
                            continue;
                        };
                        std::thread::spawn(move || pump(client, server));
                        std::thread::spawn(move || pump(s3, c3));
                    }
                }
            }
        });
        Ok(Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switch mode; every open connection is cut.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.set_mode(Mode::Blackhole);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}
