//! Secrets a resource names, read from the resource's own namespace.
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::{KafkaClusterSpec, Secrets, StorageSpec};

/// Names of every Secret `cluster` and `storage` refer to.
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
