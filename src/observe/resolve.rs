//! Secrets + CR blocks -> resolved client and storage settings.
use std::path::Path;
use std::time::Duration;

use crate::api::{
    KafkaClusterSpec, SaslMechanism as ApiSasl, Secrets, SecurityProtocol, StorageSpec, StorageType,
};
use crate::kafka::{ClientConfig, SaslConfig, SaslMechanism, TlsConfig};
use crate::storage::StorageTarget;

use super::ObserveError;

fn cfg_err(field: &str, message: impl Into<String>) -> ObserveError {
    ObserveError::Config {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The broker circuit breaker of a `circuitBreaker` block; `None` when `enabled: false`.
pub fn breaker_config(cb: &crate::api::CircuitBreaker) -> Option<crate::kafka::BreakerConfig> {
    cb.enabled.then(|| crate::kafka::BreakerConfig {
        failure_threshold: cb.failure_threshold.max(1),
        reset_timeout: Duration::from_secs(cb.reset_timeout_secs),
        success_threshold: cb.success_threshold.max(1),
        op_timeout: Duration::from_millis(cb.operation_timeout_ms.max(1)),
    })
}

/// Builds the Kafka client settings of a `kafkaCluster` block, reading TLS and SASL material
/// from `secrets`. TLS is used exactly when `securityProtocol` is SSL or SASL_SSL, SASL exactly
/// when it is SASL_PLAINTEXT or SASL_SSL.
pub fn client_config(
    spec: &KafkaClusterSpec,
    secrets: &Secrets,
) -> Result<ClientConfig, ObserveError> {
    let mut cfg = ClientConfig::plaintext(spec.bootstrap_servers.clone());
    let c = &spec.connection;
    cfg.connections_per_broker = c.connections_per_broker.max(1) as usize;
    cfg.request_timeout = Duration::from_millis(c.request_timeout_ms);
    cfg.connect_timeout = Duration::from_millis(c.connect_timeout_ms);
    cfg.nodelay = c.tcp_nodelay;
    cfg.keepalive = c.tcp_keepalive.then(|| {
        (
            Duration::from_secs(c.keepalive_time_secs as u64),
            Duration::from_secs(c.keepalive_interval_secs as u64),
        )
    });
    let proto = spec.security_protocol;
    if matches!(proto, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl) {
        let mut tls = TlsConfig::default();
        if let Some(ca) = &spec.ca_secret {
            tls.ca_pem = Some(secrets.get(&ca.name, &ca.ca_key)?);
        }
        if let Some(t) = &spec.tls_secret {
            if tls.ca_pem.is_none() {
                tls.ca_pem = Some(secrets.get(&t.name, &t.ca_key)?);
            }
            if let Some(k) = &t.cert_key {
                tls.cert_pem = Some(secrets.get(&t.name, k)?);
            }
            if let Some(k) = &t.key_key {
                tls.key_pem = Some(secrets.get(&t.name, k)?);
            }
        }
        if tls.ca_pem.is_none() {
            return Err(cfg_err(
                "spec.kafkaCluster.tlsSecret",
                format!(
                    "securityProtocol {} needs a CA: set tlsSecret {{name, caKey}} or caSecret {{name}}",
                    proto.as_str()
                ),
            ));
        }
        cfg.tls = Some(tls);
    }
    if matches!(
        proto,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
    ) {
        let s = spec.sasl_secret.as_ref().ok_or_else(|| {
            cfg_err(
                "spec.kafkaCluster.saslSecret",
                format!(
                    "securityProtocol {} needs saslSecret {{name, mechanism}}",
                    proto.as_str()
                ),
            )
        })?;
        cfg.sasl = Some(SaslConfig {
            mechanism: match s.mechanism {
                ApiSasl::Plain => SaslMechanism::Plain,
                ApiSasl::ScramSha256 => SaslMechanism::ScramSha256,
                ApiSasl::ScramSha512 => SaslMechanism::ScramSha512,
            },
            username: secrets.get_string(&s.name, &s.username_key)?,
            password: secrets.get_string(&s.name, &s.password_key)?,
        });
    }
    Ok(cfg)
}

/// Builds storage settings from a `storage` block. `pvc_root` is where PersistentVolumeClaims
/// are mounted (in the operator pod) or mapped (standalone runs): `<pvc_root>/<claimName>/<subPath>`.
pub fn storage_target(
    spec: &StorageSpec,
    secrets: &Secrets,
    pvc_root: &Path,
    field: &str,
) -> Result<StorageTarget, ObserveError> {
    let missing = |block: &str| {
        cfg_err(
            &format!("{field}.{block}"),
            format!("storageType {} needs a {block} block", spec.storage_type),
        )
    };
    Ok(match spec.storage_type {
        StorageType::Filesystem => {
            let fs = spec
                .filesystem
                .as_ref()
                .ok_or_else(|| missing("filesystem"))?;
            StorageTarget::Fs {
                root: fs.path.clone(),
            }
        }
        StorageType::Pvc => {
            let pvc = spec.pvc.as_ref().ok_or_else(|| missing("pvc"))?;
            let mut root = pvc_root.join(&pvc.claim_name);
            if let Some(sub) = &pvc.sub_path {
                root = root.join(sub.trim_matches('/'));
            }
            StorageTarget::Fs {
                root: root.to_string_lossy().into_owned(),
            }
        }
        StorageType::S3 => {
            let s3 = spec.s3.as_ref().ok_or_else(|| missing("s3"))?;
            if let Some(e) = &s3.endpoint
                && e.starts_with("http://")
                && !s3.allow_http
            {
                return Err(cfg_err(
                    &format!("{field}.s3.allowHttp"),
                    format!("endpoint {e} is plain http: set allowHttp: true or use https://"),
                ));
            }
            let credentials = match &s3.credentials_secret {
                Some(c) => Some((
                    secrets.get_string(&c.name, &c.access_key_id_key)?,
                    secrets.get_string(&c.name, &c.secret_access_key_key)?,
                )),
                None => None,
            };
            StorageTarget::S3 {
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                endpoint: s3.endpoint.clone(),
                prefix: s3.prefix.clone(),
                path_style: s3.path_style,
                credentials,
                object_lock: s3.object_lock.clone(),
            }
        }
        StorageType::Azure => {
            let a = spec.azure.as_ref().ok_or_else(|| missing("azure"))?;
            StorageTarget::Azure {
                container: a.container.clone(),
                account_name: a.account_name.clone(),
                endpoint: a.endpoint.clone(),
                prefix: a.prefix.clone(),
                account_key: match &a.credentials_secret {
                    Some(c) => Some(secrets.get_string(&c.name, &c.account_key_key)?),
                    None => None,
                },
                sas_token: match &a.sas_token_secret {
                    Some(c) => {
                        let token = secrets.get_string(&c.name, &c.sas_token_key)?;
                        crate::storage::azure::check_sas(&token, jiff::Timestamp::now()).map_err(
                            |why| {
                                cfg_err(
                                    &format!("{field}.azure.sasTokenSecret"),
                                    format!(
                                        "the SAS token in key {:?} of Secret {:?} {why}",
                                        c.sas_token_key, c.name
                                    ),
                                )
                            },
                        )?;
                        Some(token)
                    }
                    None => None,
                },
                service_principal: match &a.service_principal_secret {
                    Some(c) => Some((
                        secrets.get_string(&c.name, &c.client_id_key)?,
                        secrets.get_string(&c.name, &c.tenant_id_key)?,
                        secrets.get_string(&c.name, &c.client_secret_key)?,
                    )),
                    None => None,
                },
            }
        }
        StorageType::Gcs => {
            let g = spec.gcs.as_ref().ok_or_else(|| missing("gcs"))?;
            gcs_target(g, secrets, &format!("{field}.gcs"))?
        }
    })
}

/// `storage.gcs` resolved: the endpoint is an http(s) URL (plain http only with `allowHttp`),
/// `allowAnonymous` and `credentialsSecret` exclude each other, and the key in the Secret is a
/// GCS credential document ([`crate::storage::gcs::check_key`]). Errors name the field.
fn gcs_target(
    g: &crate::api::GcsSpec,
    secrets: &Secrets,
    field: &str,
) -> Result<StorageTarget, ObserveError> {
    if let Some(e) = &g.endpoint {
        if !(e.starts_with("https://") || e.starts_with("http://")) {
            return Err(cfg_err(
                &format!("{field}.endpoint"),
                format!(
                    "{e:?} is not a URL: give https://host[:port] (or http:// with allowHttp: true)"
                ),
            ));
        }
        if e.starts_with("http://") && !g.allow_http {
            return Err(cfg_err(
                &format!("{field}.allowHttp"),
                format!("endpoint {e} is plain http: set allowHttp: true or use https://"),
            ));
        }
    }
    if g.allow_anonymous && g.credentials_secret.is_some() {
        return Err(cfg_err(
            &format!("{field}.allowAnonymous"),
            "allowAnonymous sends no credentials, so credentialsSecret would be ignored: remove one of them",
        ));
    }
    let service_account_json = match &g.credentials_secret {
        Some(c) => {
            let json = secrets.get_string(&c.name, &c.service_account_json_key)?;
            crate::storage::gcs::check_key(&json).map_err(|why| {
                cfg_err(
                    &format!("{field}.credentialsSecret"),
                    format!(
                        "key {:?} of Secret {:?} {why}",
                        c.service_account_json_key, c.name
                    ),
                )
            })?;
            Some(json)
        }
        None => None,
    };
    Ok(StorageTarget::Gcs {
        bucket: g.bucket.clone(),
        prefix: g.prefix.clone(),
        endpoint: g.endpoint.clone(),
        anonymous: g.allow_anonymous,
        service_account_json,
    })
}

/// The keyring of a `storage` block's `encryption` (None without one): the Secret's keys
/// (`keySecret`, each 32 bytes, `activeKeyId` among them) or a KMS client (`awsKms`, its
/// credentials from `credentialsSecret`). `field` is the storage block's path, for errors.
pub fn keyring(
    spec: &StorageSpec,
    secrets: &Secrets,
    field: &str,
) -> Result<Option<crate::format::keyring::Keyring>, ObserveError> {
    use crate::format::keyring::Keyring;
    let Some(e) = &spec.encryption else {
        return Ok(None);
    };
    let field = format!("{field}.encryption");
    match (&e.key_secret, &e.active_key_id, &e.aws_kms) {
        (Some(s), Some(active), None) => {
            let data = secrets.data(&s.name)?;
            Ok(Some(Keyring::from_secret(&field, &s.name, active, data)?))
        }
        (None, None, Some(k)) => {
            if let Some(ep) = &k.endpoint
                && ep.starts_with("http://")
                && !k.allow_http
            {
                return Err(cfg_err(
                    &format!("{field}.awsKms.allowHttp"),
                    format!("endpoint {ep} is plain http: set allowHttp: true or use https://"),
                ));
            }
            let credentials = match &k.credentials_secret {
                Some(c) => Some((
                    secrets.get_string(&c.name, &c.access_key_id_key)?,
                    secrets.get_string(&c.name, &c.secret_access_key_key)?,
                )),
                None => None,
            };
            let client = crate::storage::kms::KmsClient::new(crate::storage::kms::KmsSettings {
                key_id: k.key_id.clone(),
                region: k.region.clone(),
                endpoint: k.endpoint.clone(),
                credentials,
            })
            .map_err(|e| cfg_err(&format!("{field}.awsKms"), e.to_string()))?;
            Ok(Some(Keyring::from_kms(client)))
        }
        (Some(_), None, None) => Err(cfg_err(
            &format!("{field}.activeKeyId"),
            "keySecret needs activeKeyId: the key id (a key of the Secret) that encrypts new runs",
        )),
        _ => Err(cfg_err(
            &field,
            "set exactly one of keySecret (with activeKeyId) or awsKms",
        )),
    }
}
