//! Evidence reports of KafkaBackupValidation: the published JSON Schema of the report, its
//! one-page PDF rendering (pdf-writer, standard Helvetica: no font files), reading a stored
//! report back (its own checksum checked), listing the reports of a validation, and pruning
//! them after `evidence.retentionDays`.
//!
//! Layout (docs/validation.md): `<backup>/validations/<validation>/<report id>.json`, with
//! `<report id>.json.sig` (detached signature) and `<report id>.pdf` beside it; the report id
//! is `<validation>-<epoch ms>`.
use opendal::Operator;
use serde::Serialize;

use super::ExecError;
use super::validate::{Outcome, ValidationReport};

/// The `$id` of the report's JSON Schema, versioned with the report's `format`.
pub const SCHEMA_ID: &str =
    "https://kafka.oso.sh/schemas/kafka-backup-operator/validation-report/v1.json";

/// The JSON Schema (2020-12) of a stored report, `format` `kafka-backup-operator/validation-report/v1`
/// (published as `docs/schemas/validation-report-v1.schema.json`; a test keeps both equal).
pub fn report_schema() -> serde_json::Value {
    let mut v =
        serde_json::to_value(schemars::schema_for!(ValidationReport)).expect("schemas serialise");
    v["$id"] = SCHEMA_ID.into();
    v["title"] = "kafka-backup-operator validation report v1".into();
    v["properties"]["format"]["const"] = "kafka-backup-operator/validation-report/v1".into();
    v["properties"]["checksum"] = serde_json::json!({
        "description": "sha256:<hex> of the report's canonical form: compact JSON with checksum set to null (docs/format.md, Integrity chain)",
        "type": "string",
        "pattern": "^sha256:[0-9a-f]{64}$"
    });
    if let Some(r) = v["required"].as_array_mut() {
        r.push("checksum".into());
    }
    v["additionalProperties"] = false.into();
    v
}

/// Parses a stored report and checks its own checksum. Errors name `what` (its path).
pub fn read_report(bytes: &[u8], what: &str) -> Result<ValidationReport, ExecError> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ExecError::Integrity(format!("{what}: not JSON: {e}")))?;
    if v["format"] != "kafka-backup-operator/validation-report/v1" {
        return Err(ExecError::Integrity(format!(
            "{what} is not a validation report v1 (format {})",
            v["format"]
        )));
    }
    let stored = v["checksum"].as_str().map(str::to_string);
    v["checksum"] = serde_json::Value::Null;
    let computed = crate::format::manifest::document_checksum(&v);
    if stored.as_deref() != Some(computed.as_str()) {
        return Err(ExecError::Integrity(format!(
            "{what}: checksum {} does not match its content ({computed}): the report was changed",
            stored.unwrap_or_else(|| "(none)".into())
        )));
    }
    serde_json::from_value(v).map_err(|e| ExecError::Integrity(format!("{what}: {e}")))
}

/// One stored report, as `evidence list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredReport {
    pub report_id: String,
    pub path: String,
    /// Epoch ms (from the report id).
    pub generated_at: i64,
    pub signed: bool,
    pub pdf: bool,
}

/// The reports of validation `validation` of backup `backup`, oldest first.
pub async fn list_reports(
    op: &Operator,
    backup: &str,
    validation: &str,
) -> Result<Vec<StoredReport>, ExecError> {
    let dir = format!("{backup}/validations/{validation}/");
    let names: Vec<String> = match op.list(&dir).await {
        Ok(es) => es.into_iter().map(|e| e.name().to_string()).collect(),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => vec![],
        Err(e) => return Err(crate::storage::backend("list", &dir, e).into()),
    };
    let mut out = vec![];
    for n in &names {
        let Some(id) = n.strip_suffix(".json") else {
            continue;
        };
        let Some(ms) = id
            .strip_prefix(&format!("{validation}-"))
            .and_then(|m| m.parse::<i64>().ok())
        else {
            continue;
        };
        out.push(StoredReport {
            report_id: id.to_string(),
            path: format!("{dir}{n}"),
            generated_at: ms,
            signed: names.contains(&format!("{n}.sig")),
            pdf: names.contains(&format!("{id}.pdf")),
        });
    }
    out.sort_by_key(|r| r.generated_at);
    Ok(out)
}

/// Deletes the reports (with their signature and PDF) older than `retention_days` before
/// `now_ms`; the newest report is always kept. Returns the report ids deleted.
pub async fn prune_reports(
    op: &Operator,
    backup: &str,
    validation: &str,
    retention_days: u32,
    now_ms: i64,
) -> Result<Vec<String>, ExecError> {
    let all = list_reports(op, backup, validation).await?;
    let cutoff = now_ms - retention_days as i64 * 86_400_000;
    let mut deleted = vec![];
    for r in all.iter().take(all.len().saturating_sub(1)) {
        if r.generated_at >= cutoff {
            continue;
        }
        let dir = format!("{backup}/validations/{validation}/");
        for p in [
            r.path.clone(),
            format!("{}.sig", r.path),
            format!("{dir}{}.pdf", r.report_id),
        ] {
            op.delete(&p)
                .await
                .map_err(|e| crate::storage::backend("delete", &p, e))?;
        }
        deleted.push(r.report_id.clone());
    }
    Ok(deleted)
}

/// Text that the PDF shows: keeps printable ASCII (the standard fonts' WinAnsi encoding),
/// replaces anything else with `?`.
fn ascii(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

/// Wraps `s` at `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = vec![];
    let mut line = String::new();
    for w in s.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The one-page PDF of a report (A4): the verdict, the backup and run with its manifest
/// checksum, one line per check (outcome, figures, duration, first failures), and the
/// report's id and time. Extra lines are cut at the page's end with a note to read the JSON.
pub fn render_pdf(report: &ValidationReport, report_path: &str) -> Vec<u8> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
    let mut lines: Vec<(f32, bool, String)> = vec![];
    let verdict = match report.result {
        Outcome::Pass => "PASSED",
        Outcome::Fail => "FAILED",
        Outcome::Skip => "SKIPPED",
    };
    lines.push((
        18.0,
        true,
        format!("Backup validation {verdict}: {}", report.validation),
    ));
    lines.push((10.0, false, String::new()));
    let at = jiff::Timestamp::from_millisecond(report.generated_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    for l in [
        format!(
            "Backup {}  run {}  ({} topics, {} partitions, {} records, {} bytes)",
            report.backup.name,
            report.backup.run_id,
            report.backup.topics,
            report.backup.partitions,
            report.backup.records,
            report.backup.raw_bytes
        ),
        format!(
            "Manifest {}",
            report
                .backup
                .manifest_sha256
                .as_deref()
                .unwrap_or("(v1, none)")
        ),
        format!(
            "Report {}  generated {at}  by {} {}",
            report.report_id, report.tool, report.version
        ),
        format!("Stored at {report_path} (JSON, the signed record)"),
    ] {
        lines.push((10.0, false, l));
    }
    lines.push((10.0, false, String::new()));
    lines.push((12.0, true, "Checks".into()));
    for c in &report.checks {
        let figures: Vec<String> = c.figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push((
            10.0,
            true,
            format!("{:?}  {}  ({} ms)", c.outcome, c.name, c.duration_ms),
        ));
        for w in wrap(&figures.join(" "), 95) {
            lines.push((9.0, false, format!("    {w}")));
        }
        for f in c.failures.iter().take(3) {
            for w in wrap(f, 95) {
                lines.push((9.0, false, format!("    ! {w}")));
            }
        }
        if c.failures.len() > 3 {
            lines.push((
                9.0,
                false,
                format!(
                    "    ... and {} more (see the JSON report)",
                    c.failures.len() - 3
                ),
            ));
        }
    }
    let (catalog, pages, page, regular, bold, content_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    p.parent(pages);
    p.contents(content_id);
    let mut res = p.resources();
    let mut fonts = res.fonts();
    fonts.pair(Name(b"F1"), regular);
    fonts.pair(Name(b"F2"), bold);
    fonts.finish();
    res.finish();
    p.finish();
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let mut c = Content::new();
    let mut y = 800.0f32;
    for (size, strong, text) in lines {
        if y < 60.0 {
            c.begin_text();
            c.set_font(Name(b"F1"), 9.0);
            c.next_line(50.0, 40.0);
            c.show(Str(b"(more lines in the JSON report)"));
            c.end_text();
            break;
        }
        if !text.is_empty() {
            c.begin_text();
            c.set_font(Name(if strong { b"F2" } else { b"F1" }), size);
            c.next_line(50.0, y);
            c.show(Str(&ascii(&text)));
            c.end_text();
        }
        y -= size + 5.0;
    }
    pdf.stream(content_id, &c.finish());
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema is the one this build writes reports by (regenerate with
    /// `KBO_UPDATE_GOLDEN=1 cargo nextest run --lib schema_file`).
    #[test]
    fn schema_file_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/schemas/validation-report-v1.schema.json"
        );
        let want = serde_json::to_string_pretty(&report_schema()).unwrap() + "\n";
        if std::env::var_os("KBO_UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "{path} is stale: run KBO_UPDATE_GOLDEN=1 cargo nextest run --lib schema_file"
        );
    }

    #[test]
    fn a_changed_report_is_refused() {
        let r = ValidationReport {
            format: "kafka-backup-operator/validation-report/v1".into(),
            report_id: "v-1".into(),
            generated_at: 1,
            tool: "t".into(),
            version: "0".into(),
            validation: "v".into(),
            backup: super::super::validate::BackupIdentity {
                name: "b".into(),
                run_id: "r".into(),
                manifest_sha256: None,
                topics: 1,
                partitions: 1,
                records: 5,
                raw_bytes: 10,
            },
            result: Outcome::Pass,
            checks: vec![],
            checksum: None,
        };
        let bytes = crate::format::manifest::to_json(&r);
        let back = read_report(&bytes, "r.json").unwrap();
        assert_eq!(back.backup.records, 5);
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace("\"records\": 5", "\"records\": 6");
        let e = read_report(edited.as_bytes(), "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.json") && e.contains("changed"), "{e}");
        let pdf = render_pdf(&r, "b/validations/v/v-1.json");
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
