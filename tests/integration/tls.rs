//! TLS is really used: a TLS-terminating proxy (rustls, a CA made here) stands in front of the
//! real testenv broker. A connection with the CA from `tlsSecret` talks Kafka through it; one
//! without TLS, or trusting another CA, fails with an error that names the fix.
use std::sync::Arc;

use kafka_backup_operator::api::{Document, Secrets, load_and_validate};
use kafka_backup_operator::kafka::conn::Connection;
use kafka_backup_operator::kafka::{ClientConfig, KafkaError, TlsConfig};
use kafka_protocol::messages::MetadataRequest;

use crate::support::*;

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Starts a proxy on 127.0.0.1 that terminates TLS and forwards to the testenv broker.
async fn tls_proxy(p: &Pki) -> u16 {
    let certs = rustls_pemfile::certs(&mut p.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut p.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = env().bootstrap;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

fn cfg(port: u16, tls: Option<TlsConfig>) -> ClientConfig {
    let mut c = ClientConfig::plaintext(vec![format!("localhost:{port}")]);
    c.tls = tls;
    c.connect_timeout = std::time::Duration::from_secs(5);
    c.request_timeout = std::time::Duration::from_secs(5);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_settings_are_used_and_the_broker_certificate_is_verified() {
    let p = pki();
    let port = tls_proxy(&p).await;
    let addr = format!("localhost:{port}");

    // the CA comes from a Secret through the kafkaCluster block, as a user writes it
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kafka-tls\nstringData:\n  ca.crt: |\n{}\n---\n{}",
        p.ca_pem
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        backup_yaml(
            "tls",
            &["x".into()],
            "storageType: filesystem\n    filesystem:\n      path: /nonexistent",
            ""
        )
        .replace(&env().bootstrap, &addr)
        .replace(
            "  kafkaCluster:\n",
            "  kafkaCluster:\n    securityProtocol: SSL\n    tlsSecret:\n      name: kafka-tls\n"
        )
    );
    let docs = load_and_validate(&yaml, "tls.yaml").unwrap();
    let secrets = Secrets::from_documents(&docs);
    let kb = docs
        .iter()
        .find_map(|d| {
            if let Document::Backup(b) = d {
                Some(b.clone())
            } else {
                None
            }
        })
        .unwrap();
    let resolved =
        kafka_backup_operator::observe::client_config(&kb.spec.kafka_cluster, &secrets).unwrap();
    assert!(
        resolved.tls.as_ref().is_some_and(|t| t.ca_pem.is_some()),
        "securityProtocol SSL turns TLS on with the Secret's CA"
    );

    // through TLS, the real broker answers ApiVersions and Metadata
    let conn = Connection::connect(&addr, &resolved)
        .await
        .expect("TLS connection through the proxy");
    let (meta, _) = conn.call(&MetadataRequest::default(), 12).await.unwrap();
    assert!(
        !meta.brokers.is_empty(),
        "the broker behind the proxy answered over TLS"
    );

    // without TLS the proxy (which only speaks TLS) is not a Kafka broker: the connection fails
    assert!(
        Connection::connect(&addr, &cfg(port, None)).await.is_err(),
        "plaintext must not work against a TLS listener"
    );

    // trusting another CA: the broker certificate is refused, and the error says where to look
    let other = pki();
    let wrong = TlsConfig {
        ca_pem: Some(other.ca_pem.into_bytes()),
        ..Default::default()
    };
    match Connection::connect(&addr, &cfg(port, Some(wrong))).await {
        Err(e @ KafkaError::Tls { .. }) => assert!(e.to_string().contains("tlsSecret"), "{e}"),
        Err(e) => panic!("expected a TLS error, got {e}"),
        Ok(_) => panic!("a certificate from another CA must be refused"),
    }
}
