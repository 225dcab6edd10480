//! TLS for netmon's HTTP, with rustls and its ring provider (no OpenSSL): the agent and the MCP
//! server serve HTTPS when given a certificate and key, and a gateway asks an `https://` agent
//! checking its certificate against a configured CA or the system's roots. Bearer tokens then
//! never cross the network in the clear. An edge: files.

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// A certificate, key or CA file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {path}: {problem}", path = path.display())]
pub struct TlsError {
    pub path: PathBuf,
    pub problem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's rustls provider, for the HTTP client (reqwest builds its rustls
/// configuration with the process's provider). Installing twice is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |problem: String| TlsError {
        path: path.to_path_buf(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read it ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// Serving TLS with `cert` (PEM, the chain) and `key` (PEM, PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        path: key.to_path_buf(),
        problem: format!("not a PEM private key ({e})"),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e| TlsError {
            path: cert.to_path_buf(),
            problem: format!("the certificate and key do not make a TLS server ({e})"),
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The HTTP client for an agent: plain for `http://`, and for `https://` checking the agent's
/// certificate against `ca` (PEM) when given, else against the system's roots.
pub fn client(ca: Option<&Path>) -> Result<reqwest::Client, TlsError> {
    install_provider();
    let mut b = reqwest::Client::builder();
    if let Some(ca) = ca {
        let roots = certificates(ca)?
            .into_iter()
            .map(|c| reqwest::Certificate::from_der(&c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError {
                path: ca.to_path_buf(),
                problem: format!("not a usable CA certificate ({e})"),
            })?;
        b = b.tls_certs_only(roots);
    }
    b.build().map_err(|e| TlsError {
        path: ca.map(Path::to_path_buf).unwrap_or_default(),
        problem: format!("the HTTP client cannot be built ({e})"),
    })
}
