//! `kubectl kafkabackup runs --html` against the real peers (Kafka, S3), the page loaded in
//! headless Chromium with every network request refused: two runs of a topic (one with a
//! gap, the newer one validated), the DOM Chromium builds holds each run id, the topic and the
//! validated run's mark, and its screenshot is drawn.
//! Without a chromium on PATH (testenv/install.sh installs it) the test fails under
//! `KBO_E2E_REQUIRED=1` (scripts/test.sh) and otherwise says SKIPPED.
use std::path::Path;
use std::process::Command;

use super::runs_cmd::{plugin, two_runs, validate_newest};

/// Headless Chromium on `url` with the network blocked (a dead proxy, every host unresolvable)
/// and `extra` flags: (success, stdout, stderr).
fn chromium(url: &str, extra: &[&str], profile: &Path) -> (bool, String, String) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `chromium` is on PATH; when not: a failure under KBO_E2E_REQUIRED=1, else false.
fn chromium_present() -> bool {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("KBO_E2E_REQUIRED").as_deref() != Ok("1"),
            "KBO_E2E_REQUIRED=1 but chromium is not installed: run testenv/install.sh"
        );
        eprintln!(
            "SKIPPED: runs_html_renders_in_headless_chromium: chromium is not installed (testenv/install.sh)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_html_renders_in_headless_chromium() {
    if !chromium_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (f, r1, r2, topic) = two_runs(dir.path()).await;
    validate_newest(dir.path(), &f);
    let html = dir.path().join("timeline.html");
    let (ok, out, err) = plugin(&[
        "runs",
        "-f",
        f.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&r2.run_id),
        "the table is still printed: {out}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script"), "{page}");
    assert_eq!(page.matches("<rect class=\"bar ").count(), 2, "{page}");

    let url = format!("file://{}", html.display());
    let profile = dir.path().join("chromium-profile");
    let (ok, dom, err) = chromium(&url, &["--dump-dom"], &profile);
    assert!(ok, "chromium --dump-dom: {err}");
    for id in [&r1.run_id, &r2.run_id, &topic] {
        assert!(dom.contains(id.as_str()), "{id} not in the DOM: {dom}");
    }
    assert!(dom.contains("would be pruned (dryRun)"), "{dom}");
    assert!(dom.contains("gaps in partition 0"), "{dom}");
    // the validated run (the newest) has its mark, with the validation named in its tooltip
    assert_eq!(
        dom.matches("<g class=\"validation-mark ").count(),
        1,
        "{dom}"
    );
    let lane = &dom[dom.find(&format!("data-run-id=\"{}\"", r2.run_id)).unwrap()..];
    let lane = &lane[..lane.find("</g>").unwrap()];
    assert!(lane.contains("data-validation=\"runsv\""), "{lane}");
    assert!(lane.contains("<title>validation runsv: "), "{lane}");

    let shot = dir.path().join("shot.png");
    let (ok, _, err) = chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
        &profile,
    );
    assert!(ok, "chromium --screenshot: {err}");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}: {err}", shot.display()));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 10 * 1024, "{} bytes: an empty page?", png.len());
    // KBO_TIMELINE_KEEP=DIR: the page and its screenshot are copied there (docs/images/)
    if let Ok(keep) = std::env::var("KBO_TIMELINE_KEEP") {
        let keep = Path::new(&keep);
        std::fs::copy(&shot, keep.join("shot.png")).unwrap();
        std::fs::copy(&html, keep.join("timeline.html")).unwrap();
    }
}
