//! The fault campaign (issue 9): kill -9 at random points of backups and restores, a TCP fault
//! proxy between the tool and the broker and between the tool and S3 (latency, resets,
//! stalls, half-open connections, truncated responses, refused connections, S3 500/503
//! SlowDown), and a broker stopped with SIGSTOP and continued with SIGCONT.
//!
//! One invariant after every case: the restored topics equal the source record for record
//! (key, value, headers, timestamp, partition, order; checked with confluent-kafka through
//! testenv/kbo_data.py), so no record was lost, duplicated or changed; a failed attempt's
//! error is printed with its category, and a re-run continues it.
//!
//! Each case prints a `campaign:` line with its counts (kills, faults injected by kind).
//! Kill points come from a seeded RNG; the seed is printed so that a failure can be replayed
//! with `KBO_CAMPAIGN_SEED`.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::*;
use kafka_backup_operator::format::manifest::RunManifest;

/// A testenv/faultproxy.py process; killed on drop.
struct Proxy {
    child: Child,
    /// Where clients connect, `127.0.0.1:port`.
    addr: String,
    ctl: Ctl,
}

/// The control port of a proxy.
#[derive(Clone)]
struct Ctl(String);

impl Proxy {
    fn start(upstream: &str, kafka: bool) -> Proxy {
        let mut cmd = Command::new(env().python);
        cmd.arg(repo_root().join("testenv/faultproxy.py"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(["--upstream", upstream, "--max-secs", "900"]);
        if kafka {
            cmd.arg("--kafka-rewrite");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut ctl) = (None, None);
        while addr.is_none() || ctl.is_none() {
            let l = lines.next().expect("faultproxy printed its ports").unwrap();
            if let Some(a) = l.strip_prefix("LISTENING ") {
                addr = Some(a.trim().to_string());
            } else if let Some(c) = l.strip_prefix("CONTROL ") {
                ctl = Some(c.trim().to_string());
            }
        }
        Proxy {
            child,
            addr: addr.unwrap(),
            ctl: Ctl(ctl.unwrap()),
        }
    }
}

impl Ctl {
    fn http(&self, req: &str) -> String {
        let mut s = std::net::TcpStream::connect(&self.0).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// Switches the fault mode (see faultproxy.py).
    fn mode(&self, json: &str) {
        self.http(&format!(
            "POST /mode HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ));
    }

    /// Faults injected so far, by kind.
    fn faults(&self) -> serde_json::Value {
        let body = self.http("GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let v: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
        v["faults"].clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn faults_total(f: &serde_json::Value) -> u64 {
    f.as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

pub(crate) fn rng() -> (u64, rand::rngs::StdRng) {
    let seed = std::env::var("KBO_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(system_seed);
    (seed, rand::rngs::StdRng::seed_from_u64(seed))
}

fn system_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `kafka-backup-operator run` on `f` with extra environment; (success, stdout, stderr).
fn run_env(f: &Path, envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(["run", "--no-progress", "-f"])
        .arg(f)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `f` until it succeeds, at most `attempts` times; every failed attempt must print its
/// error with a category. Returns (attempts used, the failed attempts' error lines, the last
/// stdout, the stderr of every attempt).
fn run_until_ok(
    f: &Path,
    attempts: u32,
    envs: &[(&str, &str)],
) -> (u32, Vec<String>, String, String) {
    let mut errors = vec![];
    // every attempt's log: a stall may be reported by an attempt that then timed out
    let mut logs = String::new();
    for i in 1..=attempts {
        let (ok, out, err) = run_env(f, envs);
        logs.push_str(&err);
        if ok {
            return (i, errors, out, logs);
        }
        let line = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or_else(|| panic!("a failed attempt prints an error line: {out}{err}"))
            .to_string();
        assert!(
            line.starts_with("error ["),
            "the error names its category: {line}"
        );
        errors.push(line);
    }
    panic!("no success in {attempts} attempts: {errors:#?}");
}

/// Spawns `run -f` `kills` times and kills it with SIGKILL at a random point each time (an
/// attempt that finishes first is not counted as a kill); returns (kills, runs that finished).
pub(crate) fn kill_loop(
    f: &Path,
    kills: u32,
    max_ms: u64,
    rng: &mut rand::rngs::StdRng,
) -> (u32, u32) {
    let (mut killed, mut finished) = (0, 0);
    let mut spawned = 0;
    while killed < kills {
        spawned += 1;
        assert!(
            spawned <= kills * 5,
            "too many runs finished before their kill"
        );
        #[allow(clippy::zombie_processes)] // killed or waited for, and reaped, below
        let mut child = spawn_run(f);
        let at = Duration::from_millis(rng.random_range(30..max_ms));
        let t = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(st.success(), "an attempt that ran to its end failed");
                finished += 1;
                break;
            }
            if t.elapsed() >= at {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    (killed, finished)
}

/// The records of a run's manifest.
fn manifest_records(m: &RunManifest) -> u64 {
    m.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records)
        .sum()
}

fn latest_manifest(repo: &Path) -> RunManifest {
    let runs = repo.join("runs");
    let mut ids: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("manifest.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let last = ids.last().expect("a complete run");
    serde_json::from_slice(&std::fs::read(runs.join(last).join("manifest.json")).unwrap()).unwrap()
}

/// `storage.encryption` of the campaign's encrypted variants (issue 16): a Secret
/// `<backup>-keys` holding one random 32-byte key, `k1`, which the storage block names.
struct Encrypted {
    secret: String,
    /// The Secret document.
    doc: String,
}

impl Encrypted {
    fn new(backup: &str) -> Encrypted {
        let secret = format!("{backup}-keys");
        let doc = crate::encryption::key_secret(&secret, &[("k1", &rand::random::<[u8; 32]>())]);
        Encrypted { secret, doc }
    }

    /// `storage` (a storage block as `backup_yaml` takes it) with `encryption` added.
    fn storage(&self, storage: &str) -> String {
        format!(
            "{storage}\n    encryption:\n      keySecret: {{name: {}}}\n      activeKeyId: k1",
            self.secret
        )
    }
}

/// `docs` without the empty ones (the Secret of a plaintext variant).
fn some<'a>(docs: &[&'a str]) -> Vec<&'a str> {
    docs.iter().copied().filter(|d| !d.is_empty()).collect()
}

/// Every file under `dir` (recursively), as paths relative to `dir`; empty when it is missing.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The key documents of the backup whose repository directory is `backup_dir`
/// (`keys/<run>.json`): (run id, bytes), sorted.
fn key_docs(backup_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let keys = backup_dir.join("keys");
    files_under(&keys)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(keys.join(&f)).unwrap();
            (f.trim_end_matches(".json").to_string(), bytes)
        })
        .collect()
}

/// Spawns `run -f f`, waits until `ready()` holds (polled every 5 ms; at most 60 s), then kills
/// it with SIGKILL at a random point up to `max_ms` later. Returns false when the run finished
/// before its kill (it must have succeeded).
fn kill_once_after(
    f: &Path,
    ready: impl Fn() -> bool,
    max_ms: u64,
    rng: &mut rand::rngs::StdRng,
) -> bool {
    #[allow(clippy::zombie_processes)] // killed or waited for, and reaped, below
    let mut child = spawn_run(f);
    let t = Instant::now();
    let mut armed: Option<(Instant, Duration)> = None;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "an attempt that ran to its end failed");
            return false;
        }
        match armed {
            Some((since, after)) if since.elapsed() >= after => {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
            Some(_) => {}
            None if ready() => {
                armed = Some((
                    Instant::now(),
                    Duration::from_millis(rng.random_range(0..max_ms)),
                ));
            }
            None => {
                if t.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the run did not reach its kill point in 60 s");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The kill -9 backup campaign on backup `name`: `kills` kills at random points of a
/// rate-limited backup (plan, lock, fetch, segment upload, checkpoint, manifest), each resumed
/// by the next run; the final run (without the rate limit that keeps the killed runs short of
/// the end) completes, its manifest counts every record once and the restore equals the
/// source. With `enc`, the repository is encrypted and one more kill comes after the run's
/// key document and first checkpoint exist: the resumed runs unwrap that key document, so
/// the completed run has exactly one, byte for byte the one its first attempt wrote (same
/// wrapped data key, same `wrappedAt`).
async fn kill9_backup_campaign(name: &str, kills: u32, mib: u32, enc: Option<Encrypted>) {
    let (seed, mut rng) = rng();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique(name);
    let produced = gen_load(&topic, 3, mib);
    let spec = "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n";
    let storage = fs_storage(dir.path());
    let storage = enc
        .as_ref()
        .map_or(storage.clone(), |e| e.storage(&storage));
    let secret = enc.as_ref().map_or("", |e| e.doc.as_str());
    let kb = |limit: &str| {
        backup_yaml(
            name,
            std::slice::from_ref(&topic),
            &storage,
            &format!("{spec}{limit}"),
        )
    };
    let limited = kb("  rateLimiting:\n    bytesPerSec: 1000000\n");
    let f = write_docs(dir.path(), &some(&[&limited, secret]));
    let (mut kills, finished) = kill_loop(&f, kills, 1200, &mut rng);
    let backup_dir = dir.path().join(name);
    let first_key = if enc.is_some() {
        let runs = backup_dir.join("runs");
        let ready = || {
            !key_docs(&backup_dir).is_empty()
                && files_under(&runs)
                    .iter()
                    .any(|p| p.contains("/checkpoint/"))
        };
        assert!(
            kill_once_after(&f, ready, 600, &mut rng),
            "the rate-limited run finished before its kill"
        );
        kills += 1;
        let docs = key_docs(&backup_dir);
        assert_eq!(docs.len(), 1, "one key document after the kills: {docs:?}");
        docs.into_iter().next()
    } else {
        None
    };
    let unlimited = kb("");
    let f = write_docs(dir.path(), &some(&[&unlimited, secret]));
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "the run after the kills failed: {out}{err}");
    let m = latest_manifest(&backup_dir);
    assert_eq!(manifest_records(&m), produced, "every record exactly once");
    if let Some((run, bytes)) = &first_key {
        assert!(m.seal.is_some(), "the completed run is encrypted");
        assert_eq!(run, &m.run_id, "the completed run is the killed one");
        let docs = key_docs(&backup_dir);
        assert_eq!(
            docs.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            [m.run_id.as_str()],
            "no second data key"
        );
        assert_eq!(
            String::from_utf8_lossy(&docs[0].1),
            String::from_utf8_lossy(bytes),
            "the resumed runs kept the first attempt's key document (wrapped key, wrappedAt)"
        );
    }
    let kr = restore_yaml(
        &format!("{name}-r"),
        name,
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    restore(
        dir.path(),
        &some(&[&unlimited, &kr, secret]),
        &format!("{name}-r"),
    )
    .await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
    println!(
        "campaign: kill9-backup{} seed={seed} kills={kills} finished-before-kill={finished} records={produced}",
        if enc.is_some() { "-encrypted" } else { "" }
    );
}

/// 20 kills at random points of a backup, each resumed by the next run; exact afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_at_random_points_of_a_backup_twenty_times() {
    kill9_backup_campaign("k9b", 20, 8, None).await;
}

/// The backup campaign on an encrypted repository (issue 16): one kill at a random point,
/// one after the run's key document and checkpoint exist; exact afterwards, with the first
/// attempt's data key.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_an_encrypted_backup_resumes_with_its_first_data_key() {
    kill9_backup_campaign("k9be", 1, 4, Some(Encrypted::new("k9be"))).await;
}

/// The kill -9 restore campaign from backup `name`: `kills` kills at random points of a
/// rate-limited restore (topic creation, journal, produce, offset map), each continued by the
/// next run from its journal; the last run, without the rate limit (a setting that does not
/// change the data), continues the same journal; the target equals the source. With `enc`,
/// the backup is encrypted and the kills come after the restore's journal exists (so the
/// last run continues it); the key document is left as it was (a restore only reads it).
async fn kill9_restore_campaign(name: &str, kills: u32, enc: Option<Encrypted>) {
    let (seed, mut rng) = rng();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique(name);
    let produced = gen_load(&topic, 3, 4);
    let storage = fs_storage(dir.path());
    let storage = enc
        .as_ref()
        .map_or(storage.clone(), |e| e.storage(&storage));
    let secret = enc.as_ref().map_or("", |e| e.doc.as_str());
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &storage,
        "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n",
    );
    backup(dir.path(), &some(&[&kb, secret]), name).await;
    let backup_dir = dir.path().join(name);
    let keys_before = key_docs(&backup_dir);
    assert_eq!(
        keys_before.len(),
        usize::from(enc.is_some()),
        "{keys_before:?}"
    );
    let target = format!("{topic}-r");
    let restore_name = format!("{name}-r");
    let kr = |limit: &str| {
        restore_yaml(
            &restore_name,
            name,
            &format!(
                "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  produceBatchSize: 20\n{limit}"
            ),
        )
    };
    // 100 kB/s: a run killed within 0.8 s writes at most about 180 kB (one second of burst
    // and its share), so 20 of them stay short of the 4 MiB.
    let f = write_docs(
        dir.path(),
        &some(&[
            &kb,
            &kr("  rateLimiting:\n    bytesPerSec: 100000\n"),
            secret,
        ]),
    );
    let (kills, finished) = if enc.is_some() {
        let journal = backup_dir.join(format!("restores/{restore_name}/journal.json"));
        let mut killed = 0;
        for _ in 0..kills {
            killed += u32::from(kill_once_after(&f, || journal.exists(), 800, &mut rng));
        }
        assert_eq!(
            killed, kills,
            "the rate-limited restore finished before its kill"
        );
        (killed, 0)
    } else {
        kill_loop(&f, kills, 800, &mut rng)
    };
    let f = write_docs(dir.path(), &some(&[&kb, &kr(""), secret]));
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "the run after the kills failed: {out}{err}");
    assert!(
        err.contains("resumed=true"),
        "the last run continued the killed runs' journal: {err}"
    );
    assert!(
        out.contains(&format!("{produced} records")),
        "the whole restore is counted: {out}"
    );
    assert_eq!(
        key_docs(&backup_dir),
        keys_before,
        "the key document is unchanged"
    );
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    println!(
        "campaign: kill9-restore{} seed={seed} kills={kills} finished-before-kill={finished} records={produced}",
        if enc.is_some() { "-encrypted" } else { "" }
    );
}

/// 20 kills at random points of a restore, each continued by the next run; exact afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_at_random_points_of_a_restore_twenty_times() {
    kill9_restore_campaign("k9r", 20, None).await;
}

/// The restore campaign from an encrypted backup (issue 16): one kill at a random point after
/// the journal exists; the next run continues it, and the target equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_a_restore_of_an_encrypted_backup_continues_exactly() {
    kill9_restore_campaign("k9re", 1, Some(Encrypted::new("k9re"))).await;
}

/// One phase of a proxy campaign: a fault mode set before a run (count-limited, so that the
/// proxy passes again after it), optionally switched on `delay_ms` into the run instead.
struct Phase {
    name: &'static str,
    mode: &'static str,
    delay_ms: u64,
}

/// Runs `f` under `phase` until it succeeds (at most `attempts` runs); returns the attempts
/// and the failed attempts' error lines.
fn run_phase(
    proxy: &Proxy,
    phase: &Phase,
    f: &Path,
    attempts: u32,
    envs: &[(&str, &str)],
) -> (u32, Vec<String>, String) {
    let before = faults_total(&proxy.ctl.faults());
    let driver = if phase.delay_ms == 0 {
        proxy.ctl.mode(phase.mode);
        None
    } else {
        let (ctl, mode, ms) = (proxy.ctl.clone(), phase.mode, phase.delay_ms);
        Some(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            ctl.mode(mode);
        }))
    };
    let (n, errors, out, err) = run_until_ok(f, attempts, envs);
    if let Some(d) = driver {
        d.join().unwrap();
    }
    proxy.ctl.mode(r#"{"mode": "pass"}"#);
    let injected = faults_total(&proxy.ctl.faults()) - before;
    assert!(
        injected > 0,
        "phase {}: the proxy injected no fault ({}):\n{out}{err}",
        phase.name,
        phase.mode
    );
    (n, errors, err)
}

/// Broker traffic through a TCP fault proxy. Two backups of one topic, one under connection
/// resets and one under a half-open connection, then restores from them under truncated
/// responses, refused connections, latency and a stall. Failed attempts print their
/// category and are re-run; every restored topic equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn broker_faults_through_a_tcp_proxy() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fpk");
    // 8 partitions of 512 KiB, one at a time at 2 MB/s: traffic all along the run
    let produced = gen_load(&topic, 8, 4);
    let proxy = Proxy::start(&e.bootstrap, true);
    let via = |doc: String| {
        doc.replace(&e.bootstrap, &proxy.addr).replace(
            "    bootstrapServers:",
            "    connection:\n      requestTimeoutMs: 2000\n    bootstrapServers:",
        )
    };
    let tuning = "  circuitBreaker:\n    failureThreshold: 3\n    resetTimeoutSecs: 1\n    operationTimeoutMs: 4000\n  rateLimiting:\n    bytesPerSec: 2000000\n    maxConcurrentPartitions: 2\n";
    let kb = |name: &str| {
        via(backup_yaml(
            name,
            std::slice::from_ref(&topic),
            &fs_storage(dir.path()),
            &format!(
                "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n{tuning}"
            ),
        ))
    };
    let backups = [
        (
            kb("fpk-a"),
            Phase {
                name: "backup: connection resets",
                mode: r#"{"mode": "reset", "after_bytes": 300000, "count": 3}"#,
                delay_ms: 0,
            },
        ),
        (
            kb("fpk-b"),
            Phase {
                name: "backup: half-open connection",
                mode: r#"{"mode": "halfopen", "count": 1}"#,
                delay_ms: 600,
            },
        ),
    ];
    let mut report = vec![];
    for (doc, phase) in &backups {
        let f = write_docs(dir.path(), &[doc]);
        let (n, errors, _) = run_phase(&proxy, phase, &f, 6, &[]);
        let name = doc
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .unwrap();
        let m = latest_manifest(&dir.path().join(name));
        assert_eq!(
            manifest_records(&m),
            produced,
            "{}: every record once",
            phase.name
        );
        report.push(format!("{}: attempts={n} errors={errors:?}", phase.name));
    }
    let restores = [
        (
            "fpk-a",
            "-t",
            Phase {
                name: "restore: truncated responses",
                mode: r#"{"mode": "truncate", "after_bytes": 100, "count": 3}"#,
                delay_ms: 500,
            },
        ),
        (
            "fpk-b",
            "-f",
            Phase {
                name: "restore: refused connections",
                mode: r#"{"mode": "refuse", "count": 3}"#,
                delay_ms: 0,
            },
        ),
        (
            "fpk-a",
            "-l",
            Phase {
                name: "restore: 15 ms latency",
                mode: r#"{"mode": "latency", "ms": 15}"#,
                delay_ms: 0,
            },
        ),
        (
            "fpk-b",
            "-s",
            Phase {
                name: "restore: a 2 s stall",
                mode: r#"{"mode": "stall", "secs": 2}"#,
                delay_ms: 700,
            },
        ),
    ];
    let stall_env = [("KBO_STALL_WARNING_SECS", "1")];
    for (backup, suffix, phase) in &restores {
        let target = format!("{topic}{suffix}");
        let kr = via(restore_yaml(
            &format!("{backup}{suffix}"),
            backup,
            &format!(
                "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  produceBatchSize: 100\n{}",
                tuning.replace("bytesPerSec: 2000000", "bytesPerSec: 1000000")
            ),
        ));
        let f = write_docs(dir.path(), &[&kb(backup), &kr]);
        let (n, errors, err) = run_phase(&proxy, phase, &f, 8, &stall_env);
        if phase.mode.contains("stall") {
            assert!(
                err.contains("no progress for") || err.contains("has not answered"),
                "{}: reported while it lasts: {err}",
                phase.name
            );
        }
        assert_same(
            std::slice::from_ref(&topic),
            std::slice::from_ref(&target),
            &[],
        );
        report.push(format!("{}: attempts={n} errors={errors:?}", phase.name));
    }
    let faults = proxy.ctl.faults();
    println!(
        "campaign: broker-proxy records={produced} faults={} by-kind={faults}\n  {}",
        faults_total(&faults),
        report.join("\n  ")
    );
}

/// S3 traffic through the proxy: a backup under 503 SlowDown answers, then restores under
/// 500 InternalError answers, connection resets, latency, and a stall longer than the
/// stall-warning time (reported while it lasts). Every restored topic equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn s3_errors_and_stalls_through_a_proxy() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fps");
    let produced = gen_load(&topic, 2, 6);
    let proxy = Proxy::start(e.s3_endpoint.trim_start_matches("http://"), false);
    let prefix = unique("fps");
    let storage =
        s3_storage(&prefix, "fps-s3").replace(&e.s3_endpoint, &format!("http://{}", proxy.addr));
    let kb = backup_yaml(
        "fps",
        std::slice::from_ref(&topic),
        &storage,
        "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n",
    );
    let secret = s3_secret("fps-s3", false);
    let stall_env = [("KBO_STALL_WARNING_SECS", "1")];
    let mut report = vec![];
    let f = write_docs(dir.path(), &[&kb, &secret]);
    let phase = Phase {
        name: "backup: 503 SlowDown on every 2nd request",
        mode: r#"{"mode": "http_error", "status": 503, "every": 2, "count": 6}"#,
        delay_ms: 0,
    };
    let (n, errors, _) = run_phase(&proxy, &phase, &f, 6, &stall_env);
    report.push(format!("{}: attempts={n} errors={errors:?}", phase.name));
    let restores = [
        (
            "-e",
            Phase {
                name: "restore: 500 InternalError on every 3rd request",
                mode: r#"{"mode": "http_error", "status": 500, "every": 3, "count": 5}"#,
                delay_ms: 0,
            },
        ),
        (
            "-r",
            Phase {
                name: "restore: connection resets",
                mode: r#"{"mode": "reset", "after_bytes": 100000, "count": 3}"#,
                delay_ms: 0,
            },
        ),
        (
            "-l",
            Phase {
                name: "restore: 30 ms latency",
                mode: r#"{"mode": "latency", "ms": 30}"#,
                delay_ms: 0,
            },
        ),
        (
            "-s",
            Phase {
                name: "restore: a 4 s stall",
                mode: r#"{"mode": "stall", "secs": 4}"#,
                delay_ms: 800,
            },
        ),
    ];
    for (suffix, phase) in &restores {
        let target = format!("{topic}{suffix}");
        let kr = restore_yaml(
            &format!("fps{suffix}"),
            "fps",
            &format!(
                "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  rateLimiting:\n    bytesPerSec: 2000000\n"
            ),
        );
        let f = write_docs(dir.path(), &[&kb, &kr, &secret]);
        let (n, errors, err) = run_phase(&proxy, phase, &f, 8, &stall_env);
        if phase.mode.contains("stall") {
            assert!(
                err.contains("no progress for"),
                "{}: reported while it lasts: {err}",
                phase.name
            );
        }
        assert_same(
            std::slice::from_ref(&topic),
            std::slice::from_ref(&target),
            &[],
        );
        report.push(format!("{}: attempts={n} errors={errors:?}", phase.name));
    }
    let faults = proxy.ctl.faults();
    println!(
        "campaign: s3-proxy records={produced} faults={} by-kind={faults}\n  {}",
        faults_total(&faults),
        report.join("\n  ")
    );
}

/// A private noida-db broker (so the shared one keeps serving other tests), stopped with
/// SIGSTOP for 3 s during a backup and again during a restore, then continued with SIGCONT.
/// The stall is reported; both runs finish; the restore equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn broker_sigstop_and_sigcont() {
    let e = env();
    let venv = Path::new(&e.python).parent().unwrap().parent().unwrap();
    let noida = venv.join("lib/python3.11/site-packages/noida_db/noida-db");
    if !noida.exists() {
        panic!(
            "noida-db not found at {} (testenv/install.sh)",
            noida.display()
        );
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = tempfile::tempdir().unwrap();
    let mut broker = Command::new(&noida)
        .args([
            "start",
            "--only",
            "kafka",
            "--host",
            "127.0.0.1",
            "--kafka-port",
        ])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = broker.id();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "private broker up");
        if let Some(st) = broker.try_wait().unwrap() {
            panic!("private broker exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _reap = Reap(broker);
    let bootstrap = format!("127.0.0.1:{port}");
    let topic = unique("sig");
    let (ok, out, err) = py(&[
        "gen-load",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &topic,
        "--partitions",
        "6",
        "--mib",
        "3",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}{err}");
    let produced = serde_json::from_str::<serde_json::Value>(out.lines().last().unwrap()).unwrap()
        ["records"]
        .as_u64()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kb = backup_yaml(
        "sig",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  rateLimiting:\n    bytesPerSec: 1000000\n    maxConcurrentPartitions: 1\n",
    )
    .replace(&e.bootstrap, &bootstrap);
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "sig-r",
        "sig",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  rateLimiting:\n    bytesPerSec: 1000000\n"
        ),
    )
    .replace(&e.bootstrap, &bootstrap);
    let mut stops = 0;
    for (name, docs) in [
        ("backup", vec![kb.clone()]),
        ("restore", vec![kb.clone(), kr]),
    ] {
        let refs: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
        let f = write_docs(dir.path(), &refs);
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status()
                .unwrap();
            std::thread::sleep(Duration::from_secs(3));
            Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status()
                .unwrap();
        });
        let (ok, out, err) = run_env(&f, &[("KBO_STALL_WARNING_SECS", "1")]);
        stopper.join().unwrap();
        stops += 1;
        assert!(ok, "{name} across a SIGSTOP of 3 s failed: {out}{err}");
        assert!(
            err.contains("no progress for"),
            "{name}: the stopped broker is reported as a stall: {err}"
        );
    }
    let (ok, out, err) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &topic,
        "--target-topics",
        &target,
    ]);
    assert!(ok, "restored data differs:\n{out}{err}");
    println!("campaign: sigstop stops={stops} records={produced}");
}
