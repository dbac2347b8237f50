//! SASL is really used: a proxy in front of the real testenv broker authenticates clients the
//! way a Kafka broker does (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate; the mechanism
//! exchange on rsasl's server side: PLAIN, SCRAM-SHA-256/512 with salted stored keys) and
//! only then forwards the connection. Like a broker, it closes a connection that sends any
//! other request before authenticating. Settings from a `saslSecret` get through; no SASL,
//! a wrong password or another mechanism fail with an error that names the fix.
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use rsasl::prelude::{Mechname, SASLConfig, SASLServer, SessionError};
use rsasl::property::{AuthId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kafka_backup_operator::api::{Document, Secrets, load_and_validate};
use kafka_backup_operator::kafka::conn::Connection;
use kafka_backup_operator::kafka::{ClientConfig, KafkaError, SaslConfig, SaslMechanism};

use crate::support::*;

pub(crate) const USER: &str = "backup-bot";
pub(crate) const PASSWORD: &str = "s3cr3t-Pa55";
const SALT: &[u8] = b"kbo-test-salt";
const ITERATIONS: u32 = 4096;

/// The broker-side credential store: the PLAIN password, and SCRAM stored/server keys
/// (RFC 5802) for SHA-256 and SHA-512, derived once from the password.
struct Users {
    sha256: (Vec<u8>, Vec<u8>),
    sha512: (Vec<u8>, Vec<u8>),
}

fn scram_keys<D>() -> (Vec<u8>, Vec<u8>)
where
    D: Digest
        + sha2::digest::core_api::BlockSizeUser
        + sha2::digest::FixedOutputReset
        + Clone
        + Sync,
{
    let mut salted = sha2::digest::Output::<D>::default();
    hash_password::<D>(PASSWORD.as_bytes(), ITERATIONS, SALT, &mut salted);
    let (client_key, server_key) = derive_keys::<D>(salted.as_slice());
    (D::digest(client_key).to_vec(), server_key.to_vec())
}

struct Accepted;
impl Validation for Accepted {
    type Value = bool;
}

impl SessionCallback for Users {
    fn callback(
        &self,
        session: &SessionData,
        context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        if context.get_ref::<AuthId>() == Some(USER) {
            let (stored, server) = match session.mechanism().mechanism.as_str() {
                "SCRAM-SHA-512" => &self.sha512,
                _ => &self.sha256,
            };
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                ITERATIONS, SALT, stored, server,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let user_ok = context.get_ref::<AuthId>() == Some(USER);
        let ok = if session.mechanism().mechanism.as_str() == "PLAIN" {
            user_ok && context.get_ref::<Password>() == Some(PASSWORD.as_bytes())
        } else {
            user_ok // SCRAM checked the proof against the stored key already
        };
        validate.with::<Accepted, _>(|| Ok(ok))?;
        Ok(())
    }
}

async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let len = s.read_i32().await.ok()?;
    let mut b = vec![0u8; len as usize];
    s.read_exact(&mut b).await.ok()?;
    Some(b.into())
}

async fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    s.write_i32(body.len() as i32).await?;
    s.write_all(body).await
}

/// Encodes a response frame body: header (version per the protocol guide) + message.
fn response<R: Encodable + HeaderVersion>(correlation_id: i32, v: i16, r: &R) -> Bytes {
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut b, R::header_version(v))
        .unwrap();
    r.encode(&mut b, v).unwrap();
    b.freeze()
}

/// One client connection: SASL first, then a byte-for-byte pipe to the broker.
async fn serve(mut client: TcpStream, config: Arc<SASLConfig>) {
    let Ok(mut up) = TcpStream::connect(env().bootstrap).await else {
        return;
    };
    let mut mechanism: Option<String> = None;
    let mut session = None;
    loop {
        let Some(frame) = read_frame(&mut client).await else {
            return;
        };
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let v = i16::from_be_bytes([frame[2], frame[3]]);
        let mut body = frame.clone();
        let Ok(api) = ApiKey::try_from(key) else {
            return;
        };
        let header = RequestHeader::decode(&mut body, api.request_header_version(v)).unwrap();
        let cid = header.correlation_id;
        match api {
            // Answered by the broker behind, plus the two SASL APIs this listener speaks.
            ApiKey::ApiVersions => {
                write_frame(&mut up, &frame).await.unwrap();
                let mut resp = read_frame(&mut up).await.unwrap();
                let _ = ResponseHeader::decode(&mut resp, 0).unwrap();
                let mut r = ApiVersionsResponse::decode(&mut resp, v).unwrap();
                for (k, max) in [(ApiKey::SaslHandshake, 1), (ApiKey::SaslAuthenticate, 2)] {
                    if !r.api_keys.iter().any(|a| a.api_key == k as i16) {
                        r.api_keys.push(
                            ApiVersion::default()
                                .with_api_key(k as i16)
                                .with_min_version(0)
                                .with_max_version(max),
                        );
                    }
                }
                write_frame(&mut client, &response(cid, v, &r))
                    .await
                    .unwrap();
            }
            ApiKey::SaslHandshake => {
                let req = SaslHandshakeRequest::decode(&mut body, v).unwrap();
                let offered = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
                let ok = offered.contains(&req.mechanism.as_str());
                let r = SaslHandshakeResponse::default()
                    .with_error_code(if ok { 0 } else { 33 }) // UNSUPPORTED_SASL_MECHANISM
                    .with_mechanisms(
                        offered
                            .iter()
                            .map(|m| StrBytes::from_static_str(m))
                            .collect(),
                    );
                write_frame(&mut client, &response(cid, v, &r))
                    .await
                    .unwrap();
                if !ok {
                    return;
                }
                mechanism = Some(req.mechanism.to_string());
            }
            ApiKey::SaslAuthenticate if mechanism.is_some() => {
                let req = SaslAuthenticateRequest::decode(&mut body, v).unwrap();
                let s = session.get_or_insert_with(|| {
                    let m = mechanism.clone().unwrap();
                    SASLServer::<Accepted>::new(config.clone())
                        .start_suggested(Mechname::parse(m.as_bytes()).unwrap())
                        .unwrap()
                });
                let mut out = Vec::new();
                let step = s.step(Some(&req.auth_bytes), &mut out);
                let (accepted, failed) = match &step {
                    Ok(state) if state.is_finished() => {
                        let ok = s.validation() == Some(true);
                        (ok, !ok)
                    }
                    Ok(_) => (false, false),
                    Err(_) => (false, true),
                };
                let r = if failed {
                    SaslAuthenticateResponse::default()
                        .with_error_code(58) // SASL_AUTHENTICATION_FAILED
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Authentication failed: Invalid username or password",
                        )))
                } else {
                    SaslAuthenticateResponse::default().with_auth_bytes(out.into())
                };
                write_frame(&mut client, &response(cid, v, &r))
                    .await
                    .unwrap();
                if failed {
                    return;
                }
                if accepted {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    return;
                }
            }
            // Anything else before authentication: a broker closes the connection.
            _ => return,
        }
    }
}

/// Starts the SASL proxy on 127.0.0.1; returns its port.
pub(crate) async fn sasl_proxy() -> u16 {
    let users = Users {
        sha256: scram_keys::<sha2::Sha256>(),
        sha512: scram_keys::<sha2::Sha512>(),
    };
    let config = SASLConfig::builder()
        .with_defaults()
        .with_callback(users)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, config.clone()));
        }
    });
    port
}

fn cfg(port: u16, sasl: Option<(SaslMechanism, &str)>) -> ClientConfig {
    let mut c = ClientConfig::plaintext(vec![format!("127.0.0.1:{port}")]);
    c.sasl = sasl.map(|(mechanism, password)| SaslConfig {
        mechanism,
        username: USER.into(),
        password: password.into(),
    });
    c.connect_timeout = std::time::Duration::from_secs(5);
    c.request_timeout = std::time::Duration::from_secs(5);
    c
}

async fn metadata_through(addr: &str, c: &ClientConfig) -> Result<usize, KafkaError> {
    let conn = Connection::connect(addr, c).await?;
    let (meta, _) = conn.call(&MetadataRequest::default(), 12).await?;
    Ok(meta.brokers.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_settings_are_used_and_wrong_credentials_are_refused() {
    let port = sasl_proxy().await;
    let addr = format!("127.0.0.1:{port}");

    // the credentials come from a Secret through saslSecret, as a user writes it
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kafka-sasl\nstringData:\n  username: {USER}\n  password: {PASSWORD}\n---\n{}",
            backup_yaml(
                "sasl",
                &["x".into()],
                "storageType: filesystem\n    filesystem:\n      path: /nonexistent",
                ""
            )
            .replace(&env().bootstrap, &addr)
            .replace(
                "  kafkaCluster:\n",
                &format!("  kafkaCluster:\n    securityProtocol: SASL_PLAINTEXT\n    saslSecret:\n      name: kafka-sasl\n      mechanism: {mechanism}\n"),
            )
        );
        let docs = load_and_validate(&yaml, "sasl.yaml").unwrap();
        let secrets = Secrets::from_documents(&docs);
        let kb = docs
            .iter()
            .find_map(|d| match d {
                Document::Backup(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        let resolved =
            kafka_backup_operator::observe::client_config(&kb.spec.kafka_cluster, &secrets)
                .unwrap();
        let brokers = metadata_through(&addr, &resolved)
            .await
            .unwrap_or_else(|e| panic!("{mechanism} through the SASL listener: {e}"));
        assert!(
            brokers > 0,
            "the broker behind the proxy answered ({mechanism})"
        );
        assert!(
            !format!("{resolved:?}").contains(PASSWORD),
            "the password never shows in Debug output"
        );
    }

    // without SASL the listener closes the connection at the first non-SASL request
    assert!(
        metadata_through(&addr, &cfg(port, None)).await.is_err(),
        "no SASL must not get through"
    );

    // a wrong password: refused, and the error says where to look, without the password
    for m in [SaslMechanism::Plain, SaslMechanism::ScramSha256] {
        match metadata_through(&addr, &cfg(port, Some((m, "wrong-password")))).await {
            Err(e @ KafkaError::Sasl { .. }) => {
                let s = e.to_string();
                assert!(
                    s.contains("saslSecret") && s.contains("Invalid username or password"),
                    "{s}"
                );
                assert!(!s.contains("wrong-password"), "{s}");
            }
            Err(e) => panic!("expected a SASL error for {m:?}, got {e}"),
            Ok(_) => panic!("a wrong password must be refused ({m:?})"),
        }
    }
}
