//! libpq's `sslmode` / `sslrootcert` / `sslcert` / `sslkey` on rustls
//! (aws-lc-rs, the provider the rest of the binary uses).
//!
//! libpq's modes differ in what they verify, not only in whether TLS is
//! used (that part is tokio-postgres's `SslMode`, set by `database`):
//! - `allow`, `prefer`, `require`: encrypt, verify nothing — unless a root
//!   file is given, which libpq takes as `verify-ca`;
//! - `verify-ca`: the chain must lead to a trusted root, any host name;
//! - `verify-full`: the chain and the host name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::store::database::{RootCerts, SslMode, TlsSettings};

/// The connector every PostgreSQL connection of the store uses (pool and
/// listener); with `sslmode=disable` tokio-postgres never calls it.
pub(crate) fn connector(
    settings: &TlsSettings,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
        client_config(settings)?,
    ))
}

pub(crate) fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match verification(settings) {
        Verify::Nothing => Arc::new(AcceptAnyCertificate(Arc::clone(&provider))),
        Verify::Chain { roots, host } => {
            let roots = Arc::new(load_roots(&roots)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| format!("TLS root certificates: {e}"))?;
            if host {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &settings.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = load_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(cert_path(key))
                .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
    }
}

enum Verify {
    Nothing,
    Chain { roots: RootCerts, host: bool },
}

fn verification(settings: &TlsSettings) -> Verify {
    let given = settings.root_certs.clone();
    match settings.mode {
        SslMode::VerifyFull => Verify::Chain {
            roots: given.unwrap_or(RootCerts::System),
            host: true,
        },
        SslMode::VerifyCa => Verify::Chain {
            roots: given.unwrap_or(RootCerts::System),
            host: false,
        },
        // libpq: "if a root CA file exists, require behaves like verify-ca".
        SslMode::Require => match given {
            Some(roots) => Verify::Chain { roots, host: false },
            None => Verify::Nothing,
        },
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => Verify::Nothing,
    }
}

fn load_roots(roots: &RootCerts) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            for cert in load_certs(path)? {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no system root certificates found: name the server's CA with sslrootcert=PATH"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(cert_path(path))
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// libpq expands `~` in its file settings; operators copy such URLs.
fn cert_path(path: &Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// `prefer`/`require` without roots: encryption against passive readers,
/// no authentication of the server (exactly libpq's promise). The
/// handshake signature is still checked, so the session key belongs to
/// whoever holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: webpki's verdict, except that a certificate for another
/// host name is fine.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn settings(mode: SslMode, roots: Option<RootCerts>) -> TlsSettings {
        TlsSettings {
            mode,
            root_certs: roots,
            client_cert: None,
        }
    }

    #[test]
    fn each_mode_verifies_what_libpq_verifies() {
        let file = || Some(RootCerts::File(PathBuf::from("/ca.pem")));
        for (mode, roots, expect) in [
            (SslMode::Prefer, None, None),
            (SslMode::Allow, file(), None),
            (SslMode::Require, None, None),
            (SslMode::Require, file(), Some(false)),
            (SslMode::VerifyCa, None, Some(false)),
            (SslMode::VerifyFull, None, Some(true)),
            (SslMode::VerifyFull, file(), Some(true)),
        ] {
            let got = match verification(&settings(mode, roots.clone())) {
                Verify::Nothing => None,
                Verify::Chain { host, .. } => Some(host),
            };
            assert_eq!(got, expect, "{mode:?} {roots:?}");
        }
    }

    #[test]
    fn unverified_modes_build_without_any_file() {
        assert!(client_config(&settings(SslMode::Require, None)).is_ok());
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let err = client_config(&settings(
            SslMode::VerifyFull,
            Some(RootCerts::File("/nonexistent/ca.pem".into())),
        ))
        .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_root_file_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["db".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let config = client_config(&settings(SslMode::VerifyCa, Some(RootCerts::File(path))));
        assert!(config.is_ok(), "{:?}", config.err());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err =
            client_config(&settings(SslMode::VerifyCa, Some(RootCerts::File(empty)))).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
