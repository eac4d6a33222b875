//! TLS to the upstream: which certificate authorities are trusted, which protocols are offered,
//! and what a failed handshake tells the client.

use std::{path::Path, sync::Arc};

use rustls::{ClientConfig, RootCertStore, crypto::ring};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::ConfigError;

/// Certificate authorities to trust for an `https` upstream.
#[derive(Clone, Default)]
pub(crate) enum Roots {
    /// The operating system's (on Linux, the PEM bundle `ca-certificates` installs).
    #[default]
    System,
    /// Only these, read from a PEM file.
    Only(Arc<[CertificateDer<'static>]>),
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::Only(certs) => write!(f, "Only({} certificates)", certs.len()),
        }
    }
}

impl Roots {
    /// Every certificate in the PEM file at `path`; an error names the file and says what is
    /// wrong with it.
    pub(crate) fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError(format!("upstream CA file {shown}: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("upstream CA file {shown}: {e}")))?;
        if certs.is_empty() {
            return Err(ConfigError(format!(
                "upstream CA file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        // Each must parse as a trust anchor, or the file is refused now rather than every
        // handshake failing later.
        let mut store = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                ConfigError(format!(
                    "upstream CA file {shown}: certificate {} is not a usable CA: {e}",
                    i + 1
                ))
            })?;
        }
        Ok(Self::Only(certs.into()))
    }

    fn store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        match self {
            Self::Only(certs) => {
                store.add_parsable_certificates(certs.iter().cloned());
            }
            Self::System => {
                let found = rustls_native_certs::load_native_certs();
                for error in &found.errors {
                    tracing::warn!(%error, "reading the system's CA certificates");
                }
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    tracing::warn!(
                        "no system CA certificate found (install ca-certificates, or give \
                         --upstream-ca): every https upstream will fail its handshake"
                    );
                }
            }
        }
        store
    }
}

/// The client's TLS configuration: `roots`, TLS 1.2 and 1.3 with the `ring` provider, and
/// ALPN offering HTTP/2 when `h2` (the connector sets the protocols).
pub(crate) fn client_config(roots: &Roots) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots.store())
        .with_no_client_auth()
}

/// A TLS failure somewhere in `error`'s causes: rustls's own error, which says why the
/// handshake failed (an untrusted issuer, a name the certificate does not cover, no common
/// protocol).
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps (the TLS stream's error, itself an
        // `io::Error` around rustls's): go into it instead.
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_ca_file_that_is_missing_empty_or_not_pem() {
        let dir = std::env::temp_dir();
        let missing = dir.join("tower-edge-proxy-no-such-ca.pem");
        let error = Roots::from_pem_file(&missing).unwrap_err().to_string();
        assert!(error.contains("no-such-ca.pem"), "{error}");

        let path = dir.join(format!("tower-edge-proxy-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = Roots::from_pem_file(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn finds_a_tls_error_inside_an_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As the TLS connector reports it: an I/O error around the stream's I/O error.
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let found = tls_failure(&io).expect("found");
        assert!(found.contains("UnknownIssuer"), "{found}");
        assert!(tls_failure(&std::io::Error::other("plain")).is_none());
    }
}
