//! TLS for broker connections (rustls with the ring provider): server verification against
//! the CA from `tlsSecret`/`caSecret`, optional client certificate for mTLS.
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::TlsConfig;
use super::error::{KafkaError, Result};

/// Builds the rustls client configuration. Errors name what is wrong with the PEM material.
pub fn client_config(tls: &TlsConfig, broker: &str) -> Result<rustls::ClientConfig> {
    let err = |reason: String| KafkaError::Tls {
        broker: broker.to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca = tls.ca_pem.as_ref().ok_or_else(|| {
        err("no CA certificate given: set kafkaCluster.tlsSecret.caKey or caSecret".into())
    })?;
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        let cert = cert.map_err(|e| err(format!("CA PEM unreadable: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("CA certificate rejected: {e}")))?;
    }
    if roots.is_empty() {
        return Err(err("the CA PEM holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots);
    match (&tls.cert_pem, &tls.key_pem) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_slice())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| err(format!("client certificate PEM unreadable: {e}")))?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_slice())
                .map_err(|e| err(format!("client key PEM unreadable: {e}")))?
                .ok_or_else(|| err("client key PEM holds no private key".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err(e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(err(
            "mTLS needs both tlsSecret.certKey and tlsSecret.keyKey".into(),
        )),
    }
}

/// Performs the TLS handshake on `tcp`, verifying the broker's name (the host part of `broker`).
pub async fn wrap(tcp: TcpStream, broker: &str, tls: &TlsConfig) -> Result<TlsStream<TcpStream>> {
    let cfg = client_config(tls, broker)?;
    let host = broker.rsplit_once(':').map(|(h, _)| h).unwrap_or(broker);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|e| KafkaError::Tls {
        broker: broker.into(),
        reason: format!("bad server name {host}: {e}"),
    })?;
    TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| KafkaError::Tls {
            broker: broker.into(),
            reason: e.to_string(),
        })
}
