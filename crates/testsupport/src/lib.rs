//! Test harness for redsnap: real `redis-server` processes (plain, password,
//! TLS, 3-node cluster) and `redsnap serve` processes on free loopback ports.
//!
//! Everything here is synchronous (no tokio) so that it can be used from any
//! test, async or not. Every wait is bounded by a timeout and every failure
//! to start carries the tail of the server's log.
//!
//! ```no_run
//! use redsnap_testsupport::{raw_command, RedisServer};
//! let server = RedisServer::start().unwrap();
//! let reply = raw_command(server.port(), &[b"PING"]).unwrap();
//! assert_eq!(reply, b"+PONG\r\n");
//! ```

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub mod dataset;
pub mod external;
pub mod new_types;
pub mod probe;
pub mod wire;
use rand::Rng;

/// How long a server may take to answer its first PING.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read/write timeout used by [`raw_command`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn port_is_bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Claim `port` in the process-wide set; false if it was already handed out.
fn claim(port: u16) -> bool {
    let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    set.insert(port)
}

/// A free TCP port on 127.0.0.1: binds port 0, reads the port the kernel chose
/// and drops the listener. A process-wide set makes sure the same port is
/// never handed out twice by this process.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(l) => match l.local_addr() {
                Ok(a) => a.port(),
                Err(_) => continue,
            },
            Err(_) => continue,
        };
        if claim(port) {
            return port;
        }
    }
    panic!("free_port: could not find a free port after 1000 attempts");
}

/// A free port below 55000 whose cluster bus port (`port + 10000`) is also
/// free. Chosen at random in 20000..45000 (below the usual ephemeral range, so
/// other processes' outgoing connections rarely take it).
pub fn free_cluster_port() -> u16 {
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port: u16 = rng.random_range(20_000..45_000);
        if port_is_bindable(port) && port_is_bindable(port + 10_000) && claim(port) {
            return port;
        }
    }
    panic!("free_cluster_port: no free port pair found");
}

// ---------------------------------------------------------------------------
// Raw RESP
// ---------------------------------------------------------------------------

/// Encode one command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a reply",
        ));
    }
    out.extend_from_slice(&line);
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_len(bytes: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad length in reply"))
}

/// Read one complete RESP2/RESP3 reply, appending its raw bytes to `out`.
fn read_reply<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> io::Result<()> {
    let line = read_line(r, out)?;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty reply line",
        ));
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Ok(()),
        b'$' | b'!' | b'=' => {
            let n = parse_len(rest)?;
            if n < 0 {
                return Ok(());
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf)?;
            out.extend_from_slice(&buf);
            Ok(())
        }
        b'*' | b'~' | b'>' => {
            let n = parse_len(rest)?;
            for _ in 0..n.max(0) {
                read_reply(r, out)?;
            }
            Ok(())
        }
        b'%' | b'|' => {
            let n = parse_len(rest)?;
            for _ in 0..n.max(0) * 2 {
                read_reply(r, out)?;
            }
            Ok(())
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown RESP type byte {:?}", other as char),
        )),
    }
}

/// A plain-TCP RESP connection for tests (not TLS).
pub struct RawConn {
    reader: BufReader<TcpStream>,
}

impl RawConn {
    /// Connect to 127.0.0.1:`port` with [`IO_TIMEOUT`] on connect, read and write.
    pub fn connect(port: u16) -> io::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Send one command and return the raw bytes of its reply.
    pub fn command(&mut self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        self.reader.get_mut().write_all(&encode_command(args))?;
        let mut out = Vec::new();
        read_reply(&mut self.reader, &mut out)?;
        Ok(out)
    }

    /// Send one command; fails if the reply is a RESP error.
    pub fn command_ok(&mut self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        let reply = self.command(args)?;
        if reply.first() == Some(&b'-') {
            return Err(io::Error::other(format!(
                "error reply: {}",
                String::from_utf8_lossy(&reply).trim_end()
            )));
        }
        Ok(reply)
    }
}

/// Send one command to 127.0.0.1:`port` on a fresh connection and return the
/// raw reply bytes (e.g. `b"+PONG\r\n"`). Bounded by [`IO_TIMEOUT`].
pub fn raw_command(port: u16, args: &[&[u8]]) -> io::Result<Vec<u8>> {
    RawConn::connect(port)?.command(args)
}

/// Like [`raw_command`] but sends `AUTH password` first (when given).
pub fn raw_command_auth(port: u16, password: Option<&str>, args: &[&[u8]]) -> io::Result<Vec<u8>> {
    let mut c = RawConn::connect(port)?;
    if let Some(pw) = password {
        c.command_ok(&[b"AUTH", pw.as_bytes()])?;
    }
    c.command(args)
}

/// The payload of a bulk-string reply (`$n\r\n...\r\n`), or None for other replies.
pub fn bulk_payload(reply: &[u8]) -> Option<Vec<u8>> {
    if reply.first() != Some(&b'$') {
        return None;
    }
    let pos = reply.windows(2).position(|w| w == b"\r\n")?;
    let n: i64 = std::str::from_utf8(&reply[1..pos]).ok()?.parse().ok()?;
    if n < 0 {
        return None;
    }
    let start = pos + 2;
    reply.get(start..start + n as usize).map(|s| s.to_vec())
}

/// The value of an integer reply (`:n\r\n`), or None.
pub fn int_reply(reply: &[u8]) -> Option<i64> {
    if reply.first() != Some(&b':') {
        return None;
    }
    std::str::from_utf8(reply.get(1..reply.len().checked_sub(2)?)?)
        .ok()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

fn tail_of(path: &Path, max_lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            lines[start..].join("\n")
        }
        Err(e) => format!("<could not read {}: {e}>", path.display()),
    }
}

fn send_signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running the kill command")?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed: {status}");
    }
    Ok(())
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = wait_child(child, Duration::from_secs(10));
}

/// Run a command with a timeout; returns (status, stdout, stderr).
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<(ExitStatus, String, String)> {
    let dir = tempfile::tempdir().context("tempdir for command output")?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let status = match wait_child(&mut child, timeout) {
        Some(s) => s,
        None => {
            kill_child(&mut child);
            bail!(
                "{cmd:?} did not finish within {timeout:?}; stdout: {} stderr: {}",
                tail_of(&out_path, 20),
                tail_of(&err_path, 20)
            );
        }
    };
    let out = String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
    Ok((status, out, err))
}

// ---------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------

/// A self-signed CA plus a server certificate (for `127.0.0.1` and
/// `localhost`) and a client certificate signed by it, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Directory holding all files.
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Generate fresh material in `dir` with the `openssl` command-line tool
    /// (EC P-256 keys, valid for 30 days). Each call makes a new CA, so two
    /// calls give two CAs that do not trust each other's certificates.
    pub fn generate(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let p = |n: &str| dir.join(n);
        let files = TlsFiles {
            ca_cert: p("ca.crt"),
            ca_key: p("ca.key"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
            dir: dir.clone(),
        };
        let ca_ext = p("ca.ext");
        fs::write(
            &ca_ext,
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\n",
        )?;
        let server_ext = p("server.ext");
        fs::write(
            &server_ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
             authorityKeyIdentifier=keyid\n",
        )?;
        let client_ext = p("client.ext");
        fs::write(
            &client_ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n",
        )?;

        let openssl = |args: &[&str]| -> Result<()> {
            let mut cmd = Command::new("openssl");
            cmd.args(args).current_dir(&dir);
            let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(30))?;
            if !status.success() {
                bail!("openssl {args:?} failed ({status}): {out}{err}");
            }
            Ok(())
        };
        let serial: u64 = rand::rng().random_range(1..u64::MAX / 2);
        let cn = format!("/CN=redsnap test CA {serial}");
        // CA
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ])?;
        openssl(&[
            "req", "-new", "-key", "ca.key", "-subj", &cn, "-out", "ca.csr",
        ])?;
        openssl(&[
            "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "30", "-sha256",
            "-extfile", "ca.ext", "-out", "ca.crt",
        ])?;
        // Server and client certificates signed by the CA.
        for (name, ext, subj) in [
            ("server", "server.ext", "/CN=localhost"),
            ("client", "client.ext", "/CN=redsnap test client"),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ])?;
            openssl(&["req", "-new", "-key", &key, "-subj", subj, "-out", &csr])?;
            let serial_arg = format!("0x{:x}", rand::rng().random_range(1..u64::MAX / 2));
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial_arg,
                "-days",
                "30",
                "-sha256",
                "-extfile",
                ext,
                "-out",
                &crt,
            ])?;
        }
        // redis-server reads keys; make sure PKCS#8 is not required (SEC1 EC is fine).
        Ok(files)
    }

    /// Read the CA certificate PEM bytes.
    pub fn ca_pem(&self) -> Result<Vec<u8>> {
        fs::read(&self.ca_cert).with_context(|| format!("reading {}", self.ca_cert.display()))
    }
    /// Read the client certificate PEM bytes.
    pub fn client_cert_pem(&self) -> Result<Vec<u8>> {
        fs::read(&self.client_cert).context("reading client cert")
    }
    /// Read the client key PEM bytes.
    pub fn client_key_pem(&self) -> Result<Vec<u8>> {
        fs::read(&self.client_key).context("reading client key")
    }
}

// ---------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------

/// Path of the `redis-server` binary (`REDIS_SERVER_BIN` or `redis-server` on PATH).
fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

fn redis_cli_bin() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_string())
}

/// Builder for [`RedisServer`].
#[derive(Debug, Default, Clone)]
pub struct RedisServerBuilder {
    password: Option<String>,
    tls: Option<TlsFiles>,
    extra_args: Vec<String>,
    port: Option<u16>,
    dir: Option<PathBuf>,
}

impl RedisServerBuilder {
    /// Require this password (`--requirepass`).
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.to_string());
        self
    }
    /// Serve TLS only (`--tls-port P --port 0`), with these certificates.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }
    /// Extra command-line arguments appended after the defaults
    /// (e.g. `&["--maxmemory", "10mb"]`).
    pub fn extra_args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|s| s.to_string()));
        self
    }
    /// Use this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Use this data directory instead of a fresh temporary one.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Start the server and wait until it answers PING.
    pub fn start(self) -> Result<RedisServer> {
        let (tempdir, dir) = match self.dir.clone() {
            Some(d) => {
                fs::create_dir_all(&d)?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("redsnap-redis-")
                    .tempdir()
                    .context("creating temp dir for redis-server")?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let fixed_port = self.port;
        let mut server = RedisServer {
            port: fixed_port.unwrap_or(0),
            password: self.password,
            tls: self.tls,
            extra_args: self.extra_args,
            dir,
            child: None,
            _tempdir: tempdir,
        };
        // Retry with a new port if another process grabbed ours meanwhile.
        let mut last_err = None;
        for _ in 0..5 {
            if fixed_port.is_none() {
                server.port = free_port();
            }
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let addr_in_use = format!("{e:#}").contains("Address already in use");
                    last_err = Some(e);
                    if fixed_port.is_some() || !addr_in_use {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("redis-server failed to start")))
    }
}

/// A real `redis-server` child process on 127.0.0.1, killed on drop.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    tls: Option<TlsFiles>,
    extra_args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
    _tempdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("dir", &self.dir)
            .finish()
    }
}

impl RedisServer {
    /// Start a plain server (no password, no TLS) on a free port.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder for password / TLS / extra arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The port (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The TLS files, if this is a TLS server.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The data directory (holds `redis.log` too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `redis://[:pw@]127.0.0.1:P` or `rediss://...` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// OS process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(tls) = &self.tls {
            a.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                tls.server_cert.display().to_string(),
                "--tls-key-file".into(),
                tls.server_key.display().to_string(),
                "--tls-ca-cert-file".into(),
                tls.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
        } else {
            a.extend(["--port".into(), self.port.to_string()]);
        }
        a.extend(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ]
            .map(String::from),
        );
        a.push("--dir".into());
        a.push(self.dir.display().to_string());
        if let Some(pw) = &self.password {
            a.push("--requirepass".into());
            a.push(pw.clone());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let log = File::create(self.log_path()).context("creating redis.log")?;
        let log2 = log.try_clone()?;
        let child = Command::new(redis_server_bin())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .context("spawning redis-server (is it installed at /usr/bin/redis-server?)")?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready(STARTUP_TIMEOUT) {
            if let Some(mut c) = self.child.take() {
                kill_child(&mut c);
            }
            return Err(e.context(format!(
                "redis-server on port {} did not become ready; log tail:\n{}",
                self.port,
                tail_of(&self.log_path(), 30)
            )));
        }
        Ok(())
    }

    fn ping_once(&self) -> Result<bool> {
        if let Some(tls) = &self.tls {
            let mut cmd = Command::new(redis_cli_bin());
            cmd.args(["--tls", "--cacert"])
                .arg(&tls.ca_cert)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
            if let Some(pw) = &self.password {
                cmd.args(["--no-auth-warning", "-a", pw]);
            }
            cmd.arg("PING");
            let (status, out, _err) = run_with_timeout(&mut cmd, Duration::from_secs(5))?;
            Ok(status.success() && out.contains("PONG"))
        } else {
            let reply = raw_command_auth(self.port, self.password.as_deref(), &[b"PING"])?;
            Ok(reply == b"+PONG\r\n")
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("redis-server exited early with {status}");
                }
            }
            match self.ping_once() {
                Ok(true) => return Ok(()),
                Ok(false) => last = "PING did not answer PONG".into(),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("timed out after {timeout:?} waiting for PONG (last: {last})")
    }

    /// Kill the process (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Start again on the same port and directory (after [`stop`](Self::stop),
    /// or kills the running process first). Retries for a few seconds if the
    /// port is still held by the kernel.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if Instant::now() >= deadline
                        || !format!("{e:#}").contains("Address already in use")
                    {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Send one command over plain TCP (AUTH first if a password is set).
    /// Not available for TLS servers.
    pub fn command(&self, args: &[&[u8]]) -> Result<Vec<u8>> {
        if self.tls.is_some() {
            bail!("RedisServer::command is plain TCP only; use redis-cli for TLS servers");
        }
        Ok(raw_command_auth(self.port, self.password.as_deref(), args)?)
    }

    /// Run `redis-cli` against this server (TLS and password handled) with
    /// the given arguments; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            cmd.args(["--tls", "--cacert"])
                .arg(&tls.ca_cert)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        if let Some(pw) = &self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        cmd.args(args);
        let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(10))?;
        if !status.success() {
            bail!("redis-cli {args:?} failed ({status}): {out}{err}");
        }
        Ok(out)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// Builder for [`RedisCluster`].
#[derive(Debug, Default, Clone)]
pub struct RedisClusterBuilder {
    password: Option<String>,
    masters: usize,
}

impl RedisClusterBuilder {
    /// Require this password on every node (`--requirepass` + `--masterauth`).
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.to_string());
        self
    }
    /// Number of master nodes (default 3, minimum 3).
    pub fn masters(mut self, n: usize) -> Self {
        self.masters = n;
        self
    }
    /// Start the nodes, create the cluster, wait for `cluster_state:ok`.
    pub fn start(self) -> Result<RedisCluster> {
        RedisCluster::start_with(self.masters.max(3), self.password)
    }
}

/// A Redis Cluster of N (default 3) master nodes without replicas, killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    password: Option<String>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports())
            .finish()
    }
}

impl RedisCluster {
    /// Start a 3-master cluster without password.
    pub fn start() -> Result<Self> {
        Self::start_with(3, None)
    }

    /// A builder (password, number of masters).
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder {
            password: None,
            masters: 3,
        }
    }

    fn start_with(n: usize, password: Option<String>) -> Result<Self> {
        let mut last_err = None;
        for _attempt in 0..3 {
            match Self::try_start(n, password.clone()) {
                Ok(c) => return Ok(c),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("cluster failed to start")))
    }

    fn try_start(n: usize, password: Option<String>) -> Result<Self> {
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let port = free_cluster_port();
            let mut b = RedisServer::builder().port(port).extra_args(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ]);
            if let Some(pw) = &password {
                b = b.password(pw).extra_args(&["--masterauth", pw]);
            }
            nodes.push(b.start()?);
        }
        let cluster = RedisCluster { nodes, password };
        let mut cmd = Command::new(redis_cli_bin());
        cmd.arg("--cluster").arg("create");
        for p in cluster.ports() {
            cmd.arg(format!("127.0.0.1:{p}"));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        if let Some(pw) = &cluster.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(60))?;
        if !status.success() {
            bail!("redis-cli --cluster create failed ({status}):\n{out}\n{err}");
        }
        cluster.wait_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Wait until every node reports `cluster_state:ok`, knows every node and
    /// every slot is assigned.
    pub fn wait_ok(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let n = self.nodes.len();
        loop {
            let mut all_ok = true;
            let mut last = String::new();
            for node in &self.nodes {
                match node.command(&[b"CLUSTER", b"INFO"]) {
                    Ok(reply) => {
                        let text = String::from_utf8_lossy(&reply).into_owned();
                        let ok = text.contains("cluster_state:ok")
                            && text.contains("cluster_slots_ok:16384")
                            && text.contains(&format!("cluster_known_nodes:{n}"));
                        if !ok {
                            all_ok = false;
                            last = text;
                        }
                    }
                    Err(e) => {
                        all_ok = false;
                        last = format!("{e:#}");
                    }
                }
            }
            if all_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("cluster not ok after {timeout:?}; last CLUSTER INFO: {last}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The nodes (all masters).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable access to the nodes (e.g. to stop one).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Ports of all nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port()).collect()
    }

    /// `redis://[:pw@]127.0.0.1:P` for every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The port of the node that serves `key` (asks a node with `EXISTS` and
    /// follows the `MOVED` redirection if any).
    pub fn node_for_key(&self, key: &[u8]) -> Result<u16> {
        let first = self.nodes.first().ok_or_else(|| anyhow!("no nodes"))?;
        for node in &self.nodes {
            let reply = node.command(&[b"EXISTS", key])?;
            if reply.first() == Some(&b':') {
                return Ok(node.port());
            }
            let text = String::from_utf8_lossy(&reply).into_owned();
            if let Some(rest) = text.strip_prefix("-MOVED ") {
                if let Some(addr) = rest.split_whitespace().nth(1) {
                    if let Some(p) = addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
                        return Ok(p);
                    }
                }
            }
        }
        Ok(first.port())
    }
}

// ---------------------------------------------------------------------------
// redsnap serve
// ---------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Path of the redsnap binary: `REDSNAP_BIN`, else `<target>/debug/redsnap`,
/// brought up to date once per test process (`cargo build -p redsnap-cli --bin
/// redsnap`, a no-op when nothing changed), so tests never run a stale server.
pub fn redsnap_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REDSNAP_BIN") {
        let p = PathBuf::from(p);
        if !p.exists() {
            bail!("REDSNAP_BIN={} does not exist", p.display());
        }
        return Ok(p);
    }
    let path = target_dir().join("debug").join("redsnap");
    static BUILD: Once = Once::new();
    static BUILD_ERR: Mutex<Option<String>> = Mutex::new(None);
    {
        BUILD.call_once(|| {
            // cargo's own lock on the target dir serialises concurrent builds
            // from several test processes.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "redsnap-cli", "--bin", "redsnap"])
                .current_dir(workspace_root());
            let res = run_with_timeout(&mut cmd, Duration::from_secs(900));
            let err = match res {
                Ok((s, _, _)) if s.success() => None,
                Ok((s, out, err)) => Some(format!("cargo build failed ({s}):\n{out}\n{err}")),
                Err(e) => Some(format!("{e:#}")),
            };
            *BUILD_ERR.lock().unwrap_or_else(|e| e.into_inner()) = err;
        });
    }
    if let Some(e) = BUILD_ERR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        bail!("building redsnap: {e}");
    }
    if !path.exists() {
        bail!("redsnap binary not found at {}", path.display());
    }
    Ok(path)
}

/// Builder for [`RedsnapServer`].
#[derive(Debug, Default, Clone)]
pub struct RedsnapServerBuilder {
    password: Option<String>,
    extra_args: Vec<String>,
    port: Option<u16>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    bin: Option<PathBuf>,
}

impl RedsnapServerBuilder {
    /// Use this binary instead of [`redsnap_bin`] (e.g. a release build).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }

    /// Require this password (passes `--requirepass PW`; PING readiness uses AUTH).
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.to_string());
        self
    }
    /// Extra arguments after `serve --port P --bind 127.0.0.1 --dir D`.
    pub fn extra_args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|s| s.to_string()));
        self
    }
    /// Use this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Use this data directory (kept after drop) instead of a temporary one.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    /// Set an environment variable for the process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Start `redsnap serve` and wait until it answers PING.
    pub fn start(self) -> Result<RedsnapServer> {
        let bin = match self.bin.clone() {
            Some(b) => b,
            None => redsnap_bin()?,
        };
        let (tempdir, dir) = match self.dir.clone() {
            Some(d) => {
                fs::create_dir_all(&d)?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("redsnap-serve-")
                    .tempdir()
                    .context("creating temp dir for redsnap")?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        // The log lives in its own temporary directory, never inside the
        // data dir, so the server sees only its own files there.
        let logdir_holder = Some(
            tempfile::Builder::new()
                .prefix("redsnap-serve-log-")
                .tempdir()
                .context("creating log temp dir")?,
        );
        let log_path = logdir_holder
            .as_ref()
            .map(|t| t.path().join("redsnap.log"))
            .unwrap_or_else(|| dir.join("redsnap.log"));
        let fixed_port = self.port;
        let mut server = RedsnapServer {
            bin,
            port: fixed_port.unwrap_or(0),
            password: self.password,
            extra_args: self.extra_args,
            env: self.env,
            dir,
            log_path,
            child: None,
            _tempdir: tempdir,
            _logdir: logdir_holder,
        };
        let mut last_err = None;
        for _ in 0..5 {
            if fixed_port.is_none() {
                server.port = free_port();
            }
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let in_use = format!("{e:#}")
                        .to_lowercase()
                        .contains("address already in use")
                        || format!("{e:#}").to_lowercase().contains("addrinuse");
                    last_err = Some(e);
                    if fixed_port.is_some() || !in_use {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("redsnap failed to start")))
    }
}

/// A `redsnap serve` child process on 127.0.0.1, killed on drop.
pub struct RedsnapServer {
    bin: PathBuf,
    port: u16,
    password: Option<String>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    _tempdir: Option<tempfile::TempDir>,
    _logdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RedsnapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedsnapServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish()
    }
}

impl RedsnapServer {
    /// Start with a fresh temporary data dir on a free port.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder (password, dir, port, extra args, env).
    pub fn builder() -> RedsnapServerBuilder {
        RedsnapServerBuilder::default()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:pw@]127.0.0.1:P`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the file that receives the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The captured log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// OS process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "serve".into(),
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
        ];
        if let Some(pw) = &self.password {
            a.push("--requirepass".into());
            a.push(pw.clone());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .context("opening redsnap log")?;
        let log2 = log.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready(STARTUP_TIMEOUT) {
            if let Some(mut c) = self.child.take() {
                kill_child(&mut c);
            }
            return Err(e.context(format!(
                "redsnap on port {} did not become ready; log tail:\n{}",
                self.port,
                tail_of(&self.log_path, 30)
            )));
        }
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("redsnap exited early with {status}");
                }
            }
            match raw_command_auth(self.port, self.password.as_deref(), &[b"PING"]) {
                Ok(r) if r == b"+PONG\r\n" => return Ok(()),
                Ok(r) => last = String::from_utf8_lossy(&r).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("timed out after {timeout:?} waiting for PONG (last: {last})")
    }

    /// Send one command over TCP (AUTH first if a password is set).
    pub fn command(&self, args: &[&[u8]]) -> Result<Vec<u8>> {
        Ok(raw_command_auth(self.port, self.password.as_deref(), args)?)
    }

    /// SIGKILL the process and reap it.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Send SIGTERM (does not wait; see [`wait_exit`](Self::wait_exit)).
    pub fn terminate(&mut self) -> Result<()> {
        self.signal("TERM")
    }

    /// Send a signal by name (`"TERM"`, `"INT"`, `"HUP"`, `"KILL"`...).
    pub fn signal(&mut self, sig: &str) -> Result<()> {
        match &self.child {
            Some(c) => send_signal(c.id(), sig),
            None => bail!("redsnap is not running"),
        }
    }

    /// Wait up to `timeout` for the process to exit; returns its status (and
    /// forgets the process) or None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(status)
    }

    /// Graceful stop: SIGTERM, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        let _ = send_signal(c.id(), "TERM");
        match wait_child(c, Duration::from_secs(10)) {
            Some(s) => {
                self.child = None;
                Some(s)
            }
            None => {
                self.kill_9();
                None
            }
        }
    }

    /// Start again on the same port and dir (stopping gracefully first if running).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let s = format!("{e:#}").to_lowercase();
                    if Instant::now() >= deadline
                        || !(s.contains("address already in use") || s.contains("addrinuse"))
                    {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for RedsnapServer {
    fn drop(&mut self) {
        self.kill_9();
    }
}
