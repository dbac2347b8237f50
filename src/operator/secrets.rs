//! Secrets a resource names, read from the resource's own namespace.
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::{KafkaClusterSpec, Secrets, StorageSpec};

/// Names of every Secret `cluster` and `storage` refer to (storage credentials and
/// `storage.encryption`'s key-encryption key or KMS credentials included), sorted, once each.
pub fn referenced(cluster: &KafkaClusterSpec, storage: Option<&StorageSpec>) -> Vec<String> {
    let mut names = Vec::new();
    names.extend(cluster.tls_secret.as_ref().map(|s| s.name.clone()));
    names.extend(cluster.ca_secret.as_ref().map(|s| s.name.clone()));
    names.extend(cluster.sasl_secret.as_ref().map(|s| s.name.clone()));
    if let Some(st) = storage {
        names.extend(
            st.s3
                .as_ref()
                .and_then(|s| s.credentials_secret.as_ref())
                .map(|s| s.name.clone()),
        );
        if let Some(a) = &st.azure {
            names.extend(a.credentials_secret.as_ref().map(|s| s.name.clone()));
            names.extend(a.sas_token_secret.as_ref().map(|s| s.name.clone()));
            names.extend(a.service_principal_secret.as_ref().map(|s| s.name.clone()));
        }
        names.extend(
            st.gcs
                .as_ref()
                .and_then(|g| g.credentials_secret.as_ref())
                .map(|s| s.name.clone()),
        );
        // storage.encryption: the key-encryption key's Secret, or the KMS client's key pair
        if let Some(e) = &st.encryption {
            names.extend(e.key_secret.as_ref().map(|s| s.name.clone()));
            names.extend(
                e.aws_kms
                    .as_ref()
                    .and_then(|k| k.credentials_secret.as_ref())
                    .map(|s| s.name.clone()),
            );
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Reads `names` from `namespace`. A missing Secret is left out: the lookup that needs it then
/// fails with an error naming the Secret and the field.
pub async fn load(
    client: &Client,
    namespace: &str,
    names: &[String],
) -> Result<Secrets, kube::Error> {
    let mut out = Secrets::new();
    load_into(client, namespace, names, &mut out).await?;
    Ok(out)
}

/// Like [`load`], adding to `out`.
pub async fn load_into(
    client: &Client,
    namespace: &str,
    names: &[String],
    out: &mut Secrets,
) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for n in names {
        if let Some(s) = api.get_opt(n).await? {
            let mut data: std::collections::BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            out.insert(None, n, data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_names_every_secret_of_cluster_storage_and_encryption() {
        let yaml = r#"
bootstrapServers: [b:9092]
tlsSecret: {name: tls}
saslSecret: {name: sasl, mechanism: SCRAM-SHA-512}
"#;
        let cluster: KafkaClusterSpec = serde_yaml_ng::from_str(yaml).unwrap();
        let storage: StorageSpec = serde_yaml_ng::from_str(
            r#"
storageType: s3
s3: {bucket: b, region: r, credentialsSecret: {name: s3}}
encryption:
  awsKms: {keyId: k, region: r, credentialsSecret: {name: kms}}
"#,
        )
        .unwrap();
        assert_eq!(
            referenced(&cluster, Some(&storage)),
            ["kms", "s3", "sasl", "tls"]
        );
        let storage: StorageSpec = serde_yaml_ng::from_str(
            "storageType: filesystem\nfilesystem: {path: /x}\nencryption: {keySecret: {name: kek}, activeKeyId: a}\n",
        )
        .unwrap();
        assert_eq!(referenced(&cluster, Some(&storage)), ["kek", "sasl", "tls"]);
    }
}
