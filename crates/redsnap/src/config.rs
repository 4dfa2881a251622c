//! Connection configuration: `REDIS_URL`, `REDIS_PASSWORD`,
//! `MEMORY_MAX_RECONNECT_ATTEMPTS`, `MEMORY_DEFAULT_TTL_SECONDS` and TLS files.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::inproc::InProcessConfig;

/// Where the Redis (or redsnap) server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://` or `rediss://`).
    Standalone(String),
    /// A Redis Cluster, given by one or more seed nodes (`redis://h:p` URLs).
    Cluster(Vec<String>),
    /// The redsnap engine in this process (`redsnap://`, `redsnap:///path`): see
    /// [`crate::inproc`].
    InProcess(InProcessConfig),
}

/// TLS material for `rediss://` connections. Without a CA the platform's
/// trust store is used.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// PEM bytes of the CA that signed the server certificate.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// PEM bytes of a client certificate (mutual TLS).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM bytes of the client key (mutual TLS).
    pub client_key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_cert", &self.ca_cert_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish()
    }
}

impl TlsConfig {
    /// Trust this CA (PEM bytes).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert_pem = Some(pem.into());
        self
    }

    /// Present this client certificate and key (PEM bytes).
    pub fn with_client_cert(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client_cert_pem = Some(cert.into());
        self.client_key_pem = Some(key.into());
        self
    }

    pub(crate) fn to_redis(&self) -> redis::TlsCertificates {
        let client_tls = match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                client_cert: c.clone(),
                client_key: k.clone(),
            }),
            _ => None,
        };
        redis::TlsCertificates {
            client_tls,
            root_cert: self.ca_cert_pem.clone(),
        }
    }
}

/// Everything needed to talk to Redis. Build it with [`RedisConfig::new`],
/// [`RedisConfig::cluster`] or [`RedisConfig::from_env`], then adjust fields.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Standalone server or cluster seeds.
    pub topology: Topology,
    /// Password (overrides one in the URL). From `REDIS_PASSWORD`.
    pub password: Option<String>,
    /// Username for ACL users (default user when `None`).
    pub username: Option<String>,
    /// TLS material for `rediss://` URLs.
    pub tls: Option<TlsConfig>,
    /// Timeout of one TCP (+TLS +AUTH) connection attempt. Default 2 s.
    pub connection_timeout: Duration,
    /// Timeout of one command's reply. Default 5 s.
    pub response_timeout: Duration,
    /// Reconnection attempts before an operation fails, with exponential
    /// backoff between `min_backoff` and `max_backoff`. From
    /// `MEMORY_MAX_RECONNECT_ATTEMPTS`, default 10.
    pub max_reconnect_attempts: usize,
    /// First backoff delay. Default 50 ms.
    pub min_backoff: Duration,
    /// Largest backoff delay. Default 500 ms.
    pub max_backoff: Duration,
    /// Upper bound on any single library operation, including waiting for a
    /// (re)connection. Default 30 s.
    pub operation_timeout: Duration,
    /// Default TTL for [`crate::Memory`] values. From
    /// `MEMORY_DEFAULT_TTL_SECONDS`, default 86400.
    pub default_ttl: Duration,
}

/// Default `MEMORY_MAX_RECONNECT_ATTEMPTS`.
pub const DEFAULT_MAX_RECONNECT_ATTEMPTS: usize = 10;
/// Default `MEMORY_DEFAULT_TTL_SECONDS`.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;

impl RedisConfig {
    /// A configuration for `url`. Recognises `redis://`, `rediss://`,
    /// `redis+cluster://h1:p1,h2:p2` (and `rediss+cluster://`), a
    /// comma-separated list of URLs (a cluster), and the in-process backend:
    /// `redsnap://` (in memory) or `redsnap:///path/to/dir` (durable, with
    /// settings as query parameters, see [`InProcessConfig::from_url`]).
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self::with_topology(parse_url(url)?))
    }

    /// A cluster configuration from seed node URLs.
    pub fn cluster<I, S>(nodes: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|s| s.as_ref().to_string()).collect();
        if nodes.is_empty() {
            return Err(Error::Config(
                "a cluster needs at least one node URL".into(),
            ));
        }
        for n in &nodes {
            check_scheme(n)?;
        }
        Ok(Self::with_topology(Topology::Cluster(nodes)))
    }

    /// The in-process backend (see [`crate::inproc`]).
    pub fn in_process(cfg: InProcessConfig) -> Self {
        Self::with_topology(Topology::InProcess(cfg))
    }

    fn with_topology(topology: Topology) -> Self {
        Self {
            topology,
            password: None,
            username: None,
            tls: None,
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            max_reconnect_attempts: DEFAULT_MAX_RECONNECT_ATTEMPTS,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(30),
            default_ttl: Duration::from_secs(DEFAULT_TTL_SECONDS),
        }
    }

    /// Read `REDIS_URL` (default `redis://127.0.0.1:6379`), `REDIS_PASSWORD`,
    /// `MEMORY_MAX_RECONNECT_ATTEMPTS`, `MEMORY_DEFAULT_TTL_SECONDS`, and the
    /// TLS files `REDIS_TLS_CA_CERT`, `REDIS_TLS_CLIENT_CERT`,
    /// `REDIS_TLS_CLIENT_KEY` (paths to PEM files).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let url = get("REDIS_URL")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
        let mut cfg = Self::new(url.trim())?;
        if let Some(pw) = get("REDIS_PASSWORD").filter(|s| !s.is_empty()) {
            cfg.password = Some(pw);
        }
        if let Some(v) = get("MEMORY_MAX_RECONNECT_ATTEMPTS") {
            cfg.max_reconnect_attempts = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "MEMORY_MAX_RECONNECT_ATTEMPTS must be a non-negative integer, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = get("MEMORY_DEFAULT_TTL_SECONDS") {
            let secs: u64 = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "MEMORY_DEFAULT_TTL_SECONDS must be a non-negative integer, got {v:?}"
                ))
            })?;
            cfg.default_ttl = Duration::from_secs(secs);
        }
        let read = |var: &str| -> Result<Option<Vec<u8>>> {
            match get(var).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(path) => std::fs::read(&path)
                    .map(Some)
                    .map_err(|e| Error::Config(format!("{var}={path}: {e}"))),
            }
        };
        let ca = read("REDIS_TLS_CA_CERT")?;
        let cert = read("REDIS_TLS_CLIENT_CERT")?;
        let key = read("REDIS_TLS_CLIENT_KEY")?;
        if ca.is_some() || cert.is_some() || key.is_some() {
            if cert.is_some() != key.is_some() {
                return Err(Error::Config(
                    "REDIS_TLS_CLIENT_CERT and REDIS_TLS_CLIENT_KEY must be set together".into(),
                ));
            }
            cfg.tls = Some(TlsConfig {
                ca_cert_pem: ca,
                client_cert_pem: cert,
                client_key_pem: key,
            });
        }
        Ok(cfg)
    }

    /// Set the password.
    pub fn password(mut self, pw: impl Into<String>) -> Self {
        self.password = Some(pw.into());
        self
    }

    /// Set TLS material.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Set the connection timeout.
    pub fn connection_timeout(mut self, d: Duration) -> Self {
        self.connection_timeout = d;
        self
    }

    /// Set the response timeout.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Set the reconnection attempt bound.
    pub fn max_reconnect_attempts(mut self, n: usize) -> Self {
        self.max_reconnect_attempts = n;
        self
    }

    /// Set the overall per-operation bound.
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Set the default TTL of [`crate::Memory`] values.
    pub fn default_ttl(mut self, d: Duration) -> Self {
        self.default_ttl = d;
        self
    }

    /// Whether this targets a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    /// The target with any password removed, for logs and errors.
    pub fn redacted_target(&self) -> String {
        match &self.topology {
            Topology::Standalone(u) => redact(u),
            Topology::Cluster(nodes) => {
                let v: Vec<String> = nodes.iter().map(|n| redact(n)).collect();
                format!("cluster[{}]", v.join(","))
            }
            Topology::InProcess(c) => c.target(),
        }
    }
}

fn check_scheme(url: &str) -> Result<()> {
    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "unsupported Redis URL {:?}: expected redis://, rediss://, redis+cluster://, rediss+cluster://, redsnap:// (in-process, in memory) or redsnap:///path (in-process, durable)",
            redact(url)
        )))
    }
}

fn parse_url(url: &str) -> Result<Topology> {
    let url = url.trim();
    if url.starts_with("redsnap:") {
        return Ok(Topology::InProcess(InProcessConfig::from_url(url)?));
    }
    for (prefix, scheme) in [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ] {
        if let Some(rest) = url.strip_prefix(prefix) {
            // userinfo applies to every node: redis+cluster://:pw@h1:p1,h2:p2
            let (userinfo, hosts) = match rest.rfind('@') {
                Some(at) => (&rest[..=at], &rest[at + 1..]),
                None => ("", rest),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("{scheme}{userinfo}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(Error::Config(format!("no nodes in {:?}", redact(url))));
            }
            return Ok(Topology::Cluster(nodes));
        }
    }
    if url.contains(',') {
        let nodes: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        for n in &nodes {
            check_scheme(n)?;
        }
        return Ok(Topology::Cluster(nodes));
    }
    check_scheme(url)?;
    Ok(Topology::Standalone(url.to_string()))
}

/// Replace the password in a URL by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], shown, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("redis://h:1").unwrap(),
            Topology::Standalone("redis://h:1".into())
        );
        assert_eq!(
            parse_url("rediss+cluster://:pw@a:1,b:2").unwrap(),
            Topology::Cluster(vec!["rediss://:pw@a:1".into(), "rediss://:pw@b:2".into()])
        );
        assert_eq!(
            parse_url("redis://a:1, redis://b:2").unwrap(),
            Topology::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert!(matches!(parse_url("http://x"), Err(Error::Config(_))));
    }

    #[test]
    fn env_lookup() {
        let cfg = RedisConfig::from_lookup(|k| match k {
            "REDIS_URL" => Some("rediss://h:6380/0".into()),
            "REDIS_PASSWORD" => Some("pw".into()),
            "MEMORY_MAX_RECONNECT_ATTEMPTS" => Some("3".into()),
            "MEMORY_DEFAULT_TTL_SECONDS" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            cfg.topology,
            Topology::Standalone("rediss://h:6380/0".into())
        );
        assert_eq!(cfg.password.as_deref(), Some("pw"));
        assert_eq!(cfg.max_reconnect_attempts, 3);
        assert_eq!(cfg.default_ttl, Duration::from_secs(60));
        let d = RedisConfig::from_lookup(|_| None).unwrap();
        assert_eq!(d.max_reconnect_attempts, 10);
        assert_eq!(d.default_ttl, Duration::from_secs(86_400));
        let bad = RedisConfig::from_lookup(|k| {
            (k == "MEMORY_MAX_RECONNECT_ATTEMPTS").then(|| "x".into())
        });
        assert!(matches!(bad, Err(Error::Config(_))));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
