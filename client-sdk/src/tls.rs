//! rustls client configuration for TLS and QUIC: trust by certificate file or by pinned
//! fingerprint. The ring provider is passed explicitly; nothing depends on a process-wide
//! default provider being installed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use parley_protocol::ALPN;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::Trust;
use crate::error::ClientError;

/// A rustls client configuration offering ALPN `parley/1` and trusting what `trust` says.
pub(crate) fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS setup: {e}")))?;
    let mut config = match trust {
        Trust::CertFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| {
                    ClientError::Config(format!("unusable certificate {}: {e}", path.display()))
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
                fingerprint: *fingerprint,
                provider,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT on resumed connections when the server's ticket allows it (see transport.rs).
    config.enable_early_data = true;
    Ok(config)
}

/// The certificates in a PEM file, or the file itself as one DER certificate.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ClientError::Config(format!("cannot read certificate {}: {e}", path.display()))
    })?;
    if bytes.first() == Some(&0x30) {
        // A DER certificate starts with an ASN.1 SEQUENCE tag; PEM starts with text.
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Config(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "no certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// SHA-256 of a certificate's DER encoding.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// Accepts exactly the server certificate whose SHA-256 is pinned; the handshake signatures are
/// still verified with the provider's algorithms, so a peer that merely replays the certificate
/// without its private key is rejected.
struct FingerprintVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for FingerprintVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintVerifier")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .finish()
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Pinning replaces name and chain validation: the user named this exact certificate.
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    struct DevCert {
        der: CertificateDer<'static>,
        pem: String,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    }

    fn dev_cert() -> DevCert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        DevCert {
            der: ck.cert.der().clone(),
            pem: ck.cert.pem(),
            key: rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()).into(),
        }
    }

    /// Runs a TLS handshake over an in-memory pipe and echoes one byte.
    async fn handshake(cert: &DevCert, trust: &Trust, name: &str) -> Result<(), std::io::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
            .unwrap();
        server.alpn_protocols = vec![ALPN.to_vec()];
        let client = client_config(trust).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let server_task = tokio::spawn(async move {
            let mut s = acceptor.accept(b).await?;
            assert_eq!(s.get_ref().1.alpn_protocol(), Some(ALPN));
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await?;
            s.write_all(&byte).await?;
            s.flush().await
        });
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut c = TlsConnector::from(Arc::new(client))
            .connect(name, a)
            .await?;
        c.write_all(b"x").await?;
        c.flush().await?;
        let mut byte = [0u8; 1];
        c.read_exact(&mut byte).await?;
        assert_eq!(&byte, b"x");
        drop(c);
        let _ = server_task.await;
        Ok(())
    }

    #[tokio::test]
    async fn pinned_fingerprint_is_accepted_and_others_rejected() {
        let cert = dev_cert();
        let pin = Trust::Fingerprint(fingerprint(&cert.der));
        handshake(&cert, &pin, "localhost").await.unwrap();
        // The pin stands in for the name check.
        handshake(&cert, &pin, "elsewhere.example").await.unwrap();
        let other = Trust::Fingerprint([0; 32]);
        assert!(handshake(&cert, &other, "localhost").await.is_err());
    }

    #[tokio::test]
    async fn cert_file_pem_and_der_are_trusted_for_their_name() {
        let cert = dev_cert();
        let dir = std::env::temp_dir().join(format!("parley-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("cert.pem");
        let der = dir.join("cert.der");
        std::fs::write(&pem, &cert.pem).unwrap();
        std::fs::write(&der, cert.der.as_ref()).unwrap();
        for path in [&pem, &der] {
            let trust = Trust::CertFile(path.clone());
            handshake(&cert, &trust, "localhost").await.unwrap();
            assert!(handshake(&cert, &trust, "elsewhere.example").await.is_err());
        }
        let other = dev_cert();
        assert!(
            handshake(&other, &Trust::CertFile(pem.clone()), "localhost")
                .await
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_or_empty_cert_file_is_a_config_error() {
        let missing = Trust::CertFile("/nonexistent/parley/cert.pem".into());
        assert!(matches!(
            client_config(&missing),
            Err(ClientError::Config(_))
        ));
        let dir = std::env::temp_dir().join(format!("parley-client-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            client_config(&Trust::CertFile(empty)),
            Err(ClientError::Config(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
