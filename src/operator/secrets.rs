//! Secrets a resource names, read from the resource's own namespace.
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::Secrets;
pub use crate::api::secrets::referenced;

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
    use crate::api::{KafkaClusterSpec, StorageSpec};

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
