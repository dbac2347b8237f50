//! KafkaBackupValidation's backup-only checks from `run -f`: a good backup passes every check
//! and gets a stored evidence report; a flipped byte and a deleted segment fail the check
//! that sees them, naming the object and the offsets.
use crate::support::*;

fn kbv(name: &str) -> String {
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: {name}\nspec:\n  backupRef:\n    name: vb\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_passes_its_checks_and_damage_fails_them_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vbt");
    gen_load(&topic, 2, 2);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n  segmentMaxBytes: 1048576\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    let f = write_docs(dir.path(), &[&kb, &kbv("v1")]);
    let (ok, out, err) = cli(&["plan", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&m.run_id) && out.contains("2 segments") && out.contains("sha256:"),
        "the plan names the run, what it reads and the manifest checksum: {out}"
    );
    assert!(
        !dir.path().join("vb/validations").exists(),
        "plan writes nothing"
    );
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    for c in [
        "objects",
        "messageCount",
        "offsetRange",
        "consumerGroupOffsets",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    assert!(out.contains("records=2048"), "every record counted: {out}");
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
    assert_eq!(report["result"], "Pass");
    assert_eq!(report["backup"]["runId"], m.run_id.as_str());
    assert!(
        report["backup"]["manifestSha256"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(report["checksum"].as_str().unwrap().starts_with("sha256:"));

    // a flipped byte in a segment's payload
    let seg = &m.topics[0].partitions[0].segments[0];
    let p = dir.path().join(&seg.path);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let f = write_docs(dir.path(), &[&kb, &kbv("v2")]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("error [failed]"), "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("messageCount") && l.contains("Fail")),
        "{out}"
    );
    assert!(
        out.contains(&seg.path) && out.contains("CRC"),
        "names the object: {out}"
    );

    // a deleted segment of the other partition
    let seg1 = &m.topics[0].partitions[1].segments[0];
    std::fs::remove_file(dir.path().join(&seg1.path)).unwrap();
    let f = write_docs(dir.path(), &[&kb, &kbv("v3")]);
    let (ok, out, _) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("objects") && l.contains("Fail")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: missing ({topic}/1 offsets", seg1.path)),
        "names the object, partition and offsets: {out}"
    );
}

/// With `kafkaCluster`, the run is restored into scratch topics and compared record by
/// record, the snapshot's groups are checked at their translated positions, and the scratch
/// topics are gone afterwards; a flipped byte makes the restore refuse the object (nothing
/// corrupted reaches Kafka), the restore check fails naming it, and the scratch topics are
/// deleted all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_check_proves_the_backup_restores_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vrt");
    gen_load(&topic, 2, 1);
    let group = unique("g");
    group_commit(&group, &topic, 40);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n  segmentMaxBytes: 1048576\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    let e = env();
    let with_cluster = |name: &str| {
        format!(
            "{}  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n      consumerGroups: [{group}]\n",
            kbv(name).split("  checks:").next().unwrap(),
            e.bootstrap
        )
    };
    let scratch = |name: &str| {
        let (ok, out, err) = py(&[
            "list-topics",
            "--bootstrap",
            &e.bootstrap,
            "--prefix",
            &format!("kbv-{name}-"),
        ]);
        assert!(ok, "{err}");
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let f = write_docs(dir.path(), &[&kb, &with_cluster("vr1")]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    for c in ["restoreRecords", "restoreConsumerGroupOffsets"] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
    let rr = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restoreRecords")
        .unwrap();
    assert_eq!(rr["figures"]["records"], 1024, "{rr}");
    assert_eq!(
        rr["digests"].as_object().unwrap().len(),
        2,
        "a digest per partition: {rr}"
    );
    let cg = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restoreConsumerGroupOffsets")
        .unwrap();
    assert_eq!(cg["figures"]["positions"], 2, "{cg}");
    assert!(
        scratch("vr1").is_empty(),
        "scratch topics deleted: {:?}",
        scratch("vr1")
    );
    assert!(
        !dir.path().join("vb/restores").exists()
            || std::fs::read_dir(dir.path().join("vb/restores"))
                .unwrap()
                .next()
                .is_none(),
        "the scratch restore's journal and offset map are deleted"
    );

    // a flipped byte: the restore refuses the object, the check fails by name, cleanup runs
    let seg = &m.topics[0].partitions[0].segments[0];
    let p = dir.path().join(&seg.path);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let f = write_docs(dir.path(), &[&kb, &with_cluster("vr2")]);
    let (ok, out, _) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("restoreRecords"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("Fail"), "{out}");
    assert!(
        out.contains("integrity") && out.contains(&seg.path),
        "names the object: {out}"
    );
    assert!(
        scratch("vr2").is_empty(),
        "scratch topics deleted after a failure too"
    );
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// A signed report: `kubectl kafkabackup evidence verify` accepts it with the right public key
/// and refuses it after one changed byte, or with another key.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_report_verifies_and_a_changed_byte_or_another_key_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vbs");
    gen_load(&topic, 1, 1);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "vb").await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: evidence-key\nstringData:\n  private.pem: |\n{}  public.pem: |\n{}",
        indent(&key.serialize_pem()),
        indent(&key.public_key_pem())
    );
    let kbv = "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: vs\nspec:\n  backupRef:\n    name: vb\n  evidence:\n    signing:\n      enabled: true\n      keySecret:\n        name: evidence-key\n";
    let f = write_docs(dir.path(), &[&kb, kbv, &secret]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let report = dir.path().join(
        out.lines()
            .find_map(|l| l.strip_prefix("evidence report: "))
            .unwrap(),
    );
    assert!(
        out.contains("signature: ") && out.contains("ECDSA-P256-SHA256"),
        "{out}"
    );
    let public = dir.path().join("public.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let verify = |report: &std::path::Path, public: &std::path::Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
            .args(["evidence", "verify"])
            .arg(report)
            .arg("--public-key")
            .arg(public)
            .output()
            .unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (ok, text) = verify(&report, &public);
    assert!(ok && text.contains("verified"), "{text}");
    // another key
    let other = dir.path().join("other.pem");
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&other, k2.public_key_pem()).unwrap();
    let (ok, text) = verify(&report, &other);
    assert!(!ok && text.contains("another key"), "{text}");
    // one changed byte (a copy next to the original signature)
    let changed = dir.path().join("changed.json");
    let mut b = std::fs::read(&report).unwrap();
    let i = b.iter().position(|c| *c == b'P').unwrap();
    b[i] = b'F';
    std::fs::write(&changed, &b).unwrap();
    std::fs::copy(
        format!("{}.sig", report.display()),
        format!("{}.sig", changed.display()),
    )
    .unwrap();
    let (ok, text) = verify(&changed, &public);
    assert!(!ok && text.contains("NOT verified"), "{text}");
}
