//! `kubectl kafkabackup keys list|rewrap|shred -f backup.yaml`: the data keys of an encrypted
//! repository (docs/security.md). `list` reads; `rewrap` rewrites key documents only (key
//! rotation); `shred` destroys one run's data key (crypto-shredding) and asks for `--yes`.
use super::load::{Target, load};
use super::{KeysCommand, OutputFormat};
use crate::kinds::encryption;

fn backup(
    inputs: &super::Inputs,
) -> anyhow::Result<(Box<crate::api::KafkaBackup>, crate::api::Secrets)> {
    let (target, secrets) = load(&inputs.files, inputs.name.as_deref())?;
    let Target::Backup(kb) = target else {
        anyhow::bail!(
            "keys: the files hold no KafkaBackup (give its YAML and its key Secret with -f; --name picks one)"
        );
    };
    Ok((kb, secrets))
}

/// Runs a `keys` subcommand; returns what to print.
pub async fn keys(cmd: &KeysCommand) -> anyhow::Result<String> {
    let now = crate::exec::engine::system_now_ms();
    match cmd {
        KeysCommand::List { inputs, output } => {
            let (kb, secrets) = backup(inputs)?;
            let (op, _) = encryption::open_encrypted(&kb, &secrets, &inputs.pvc_root)?;
            let name = kb.metadata.name.clone().unwrap_or_default();
            let keys = encryption::list_keys(&op, &name).await?;
            Ok(match output {
                OutputFormat::Json => serde_json::to_string_pretty(&keys)? + "\n",
                OutputFormat::Yaml => serde_yaml_ng::to_string(&keys)?,
                OutputFormat::Table => {
                    let mut s = format!("{:<24}  {:<26}  KEY-ENCRYPTION KEY\n", "RUN", "WRAPPED");
                    for k in &keys {
                        let at = jiff::Timestamp::from_millisecond(k.wrapped_at)
                            .map(|t| t.to_string())
                            .unwrap_or_default();
                        s.push_str(&format!("{:<24}  {:<26}  {}\n", k.run_id, at, k.kek));
                    }
                    s
                }
            })
        }
        KeysCommand::Rewrap { inputs } => {
            let (kb, secrets) = backup(inputs)?;
            let (op, keyring) = encryption::open_encrypted(&kb, &secrets, &inputs.pvc_root)?;
            let name = kb.metadata.name.clone().unwrap_or_default();
            let done = encryption::rewrap(&op, &keyring, &name, now).await?;
            let mut s = format!(
                "{} run data keys re-wrapped under {} (segments unchanged)\n",
                done.len(),
                keyring.active()
            );
            for r in done {
                s.push_str(&format!("  {r}\n"));
            }
            Ok(s)
        }
        KeysCommand::Shred { inputs, run, yes } => {
            let (kb, secrets) = backup(inputs)?;
            if !yes {
                anyhow::bail!(
                    "shred destroys run {run}'s data key for good: its records can never be decrypted again, in this run or any later run that lists them. Add --yes to do it"
                );
            }
            let (op, _) = encryption::open_encrypted(&kb, &secrets, &inputs.pvc_root)?;
            let name = kb.metadata.name.clone().unwrap_or_default();
            encryption::shred(&op, &name, run, now).await?;
            Ok(format!(
                "run {run} of backup {name}: data key destroyed; its records are unreadable\n"
            ))
        }
    }
}
