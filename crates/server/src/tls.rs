//! TLS for client connections (rustls with the ring provider): `tls-port`,
//! `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`, `tls-auth-clients yes|no|optional`.

use crate::config::Config;
use crate::ServerError;
use std::io::BufReader;
use std::sync::Arc;
use tokio_rustls::rustls::{
    self, pki_types::CertificateDer, server::WebPkiClientVerifier, RootCertStore, ServerConfig,
};
use tokio_rustls::TlsAcceptor;

fn read_pem(path: &str, what: &str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path)
        .map_err(|e| ServerError::Config(format!("cannot read {what} '{path}': {e}")))
}

fn certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem = read_pem(path, what)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(&pem[..])).collect();
    let certs =
        certs.map_err(|e| ServerError::Config(format!("{what} '{path}' is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Config(format!(
            "{what} '{path}' holds no certificate"
        )));
    }
    Ok(certs)
}

/// Builds the TLS acceptor, or None when `tls-port` is 0. Refuses contradictory
/// settings with a clear message.
pub(crate) fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, ServerError> {
    if config.int("tls-port") == 0 {
        return Ok(None);
    }
    let cert_file = config.str("tls-cert-file");
    let key_file = config.str("tls-key-file");
    if cert_file.is_empty() || key_file.is_empty() {
        return Err(ServerError::Config(
            "tls-port is set but tls-cert-file and tls-key-file are not both given".into(),
        ));
    }
    let chain = certs(&cert_file, "tls-cert-file")?;
    let key_pem = read_pem(&key_file, "tls-key-file")?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
        .map_err(|e| {
            ServerError::Config(format!("tls-key-file '{key_file}' is not valid PEM: {e}"))
        })?
        .ok_or_else(|| {
            ServerError::Config(format!("tls-key-file '{key_file}' holds no private key"))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Config(format!("TLS setup failed: {e}")))?;
    let auth = config.str("tls-auth-clients");
    let ca_file = config.str("tls-ca-cert-file");
    let builder = if auth == "no" {
        builder.with_no_client_auth()
    } else {
        if ca_file.is_empty() {
            return Err(ServerError::Config(format!(
                "tls-auth-clients is '{auth}' but no tls-ca-cert-file is given to verify client certificates (set tls-ca-cert-file, or tls-auth-clients no)"
            )));
        }
        let mut roots = RootCertStore::empty();
        for c in certs(&ca_file, "tls-ca-cert-file")? {
            roots
                .add(c)
                .map_err(|e| ServerError::Config(format!("tls-ca-cert-file '{ca_file}': {e}")))?;
        }
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let v = if auth == "optional" {
            v.allow_unauthenticated()
        } else {
            v
        };
        let v = v
            .build()
            .map_err(|e| ServerError::Config(format!("client certificate verifier: {e}")))?;
        builder.with_client_cert_verifier(v)
    };
    let sc = builder.with_single_cert(chain, key).map_err(|e| {
        ServerError::Config(format!("tls-cert-file and tls-key-file do not match: {e}"))
    })?;
    Ok(Some(TlsAcceptor::from(Arc::new(sc))))
}
