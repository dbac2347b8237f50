//! Renders the runs of a KafkaBackup's repository as one self-contained HTML page with an
//! inline SVG timeline (`kubectl kafkabackup runs --html`). Pure: rows in, a String out; no
//! I/O, no script, nothing loaded from the network (a Content-Security-Policy says so).
//!
//! Two time axes, because they measure different things: the runs along wall-clock time (each
//! from its start to its completion, labelled with its id, records, bytes, retention state and
//! S3 Object Lock, a validated run marked at its bar's end with its latest verdict), and below them each topic's recoverable window along record timestamps
//! (`plan::recoverability`: first..last record over the complete runs), hatched when some
//! partition has a gap, the partitions with gaps listed.
use super::runs_cmd::{RunRow, ValidationMark};
use super::status_cmd::human_bytes;
use crate::plan::{Recoverability, TopicWindow, rfc3339};

/// Width of the SVG, of the text column on its left, and where the plot area ends.
const WIDTH: i64 = 1200;
const PLOT_X0: i64 = 440;
const PLOT_X1: i64 = 1110;
/// Height of one run's or one topic's lane, and of an axis with its labels.
const LANE: i64 = 44;
const AXIS: i64 = 34;

/// `s` with `& < > " '` escaped, for HTML text and attribute values alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Epoch ms of an RFC 3339 time as [`RunRow`] holds it (or of the number it falls back to).
fn ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .ok()
        .or_else(|| s.parse().ok())
}

/// A time span mapped onto the plot area's x coordinates.
#[derive(Debug, Clone, Copy)]
struct Scale {
    t0: i64,
    t1: i64,
}

impl Scale {
    /// The span of `points` with 3% (at least 5 ms) on each side; None when empty.
    fn over(points: impl Iterator<Item = i64>) -> Option<Scale> {
        let (lo, hi) = points.fold(None, |acc: Option<(i64, i64)>, t| match acc {
            Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
            None => Some((t, t)),
        })?;
        let pad = ((hi - lo) / 33).max(5);
        Some(Scale {
            t0: lo.saturating_sub(pad),
            t1: hi.saturating_add(pad),
        })
    }

    fn x(&self, t: i64) -> i64 {
        let span = (self.t1 - self.t0).max(1) as i128;
        let off = (t.clamp(self.t0, self.t1) - self.t0) as i128;
        PLOT_X0 + (off * (PLOT_X1 - PLOT_X0) as i128 / span) as i64
    }

    /// A bar from `a` to `b`: (x, width), at least 6 px wide so a one-second run shows.
    fn bar(&self, a: i64, b: i64) -> (i64, i64) {
        let (xa, xb) = (self.x(a.min(b)), self.x(a.max(b)));
        let w = (xb - xa).max(6);
        (xa.min(PLOT_X1 - w), w)
    }
}

/// Tick steps an axis picks from, ms: the smallest that puts at most [`MAX_TICKS`] ticks on it.
const STEPS: &[i64] = &[
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
    2_592_000_000,
    31_536_000_000,
];
const MAX_TICKS: i64 = 4;

/// The times of an axis's ticks: multiples of a step from [`STEPS`], inside the scale.
fn ticks(s: &Scale) -> Vec<i64> {
    let span = (s.t1 - s.t0).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|st| span / st <= MAX_TICKS)
        .unwrap_or(span);
    let first = s.t0.div_euclid(step) * step + if s.t0.rem_euclid(step) == 0 { 0 } else { step };
    (0..=MAX_TICKS)
        .map(|i| first + i * step)
        .take_while(|t| *t <= s.t1)
        .collect()
}

/// An axis at `y` with its title above it: its line, and a tick and an RFC 3339 label at
/// each of [`ticks`].
fn axis(s: &Scale, y: i64, title: &str) -> String {
    let mut out = format!(
        "<text class=\"axis-title\" x=\"10\" y=\"{}\">{}</text>\n\
         <line class=\"axis\" x1=\"{PLOT_X0}\" y1=\"{y}\" x2=\"{PLOT_X1}\" y2=\"{y}\"/>\n",
        y - 14,
        esc(title)
    );
    for t in ticks(s) {
        let x = s.x(t);
        out.push_str(&format!(
            "<line class=\"tick\" x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{}\"/>\
             <text class=\"tick-label\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            y + 6,
            y + 20,
            rfc3339(t)
        ));
    }
    out
}

/// The CSS class of a run's bar from its retention state (the text `runs` prints).
fn retention_class(retention: &str) -> &'static str {
    if retention.starts_with("pruned") {
        "pruned-next"
    } else if retention.starts_with("would be pruned") {
        "would-prune"
    } else if retention.contains("object lock") {
        "lock-kept"
    } else if retention.contains("retention off") {
        "ret-off"
    } else {
        "kept"
    }
}

/// The Object Lock mark's text of a run, or None: not locked.
fn lock_mark(r: &RunRow) -> Option<String> {
    let l = r.object_lock.as_ref()?;
    let state = if l.locked { "" } else { " (expired)" };
    Some(format!("{} until {}{state}", l.mode, l.retain_until))
}

/// One run's lane at `y`: id, records, bytes, retention and lock in the text column; its bar
/// from start to completion (dashed outline when object-locked), a tooltip with the details.
fn run_lane(s: &Scale, r: &RunRow, y: i64) -> String {
    let (start, done) = (ms(&r.start_time), ms(&r.completion_time));
    let (a, b) = (
        start.or(done).unwrap_or(s.t0),
        done.or(start).unwrap_or(s.t0),
    );
    let (x, w) = s.bar(a, b);
    let lock = lock_mark(r);
    let gaps = match r.gap_count {
        0 => String::new(),
        n => format!(", {n} gap{}", if n == 1 { "" } else { "s" }),
    };
    let info = format!(
        "{} records, {}{gaps} · {}",
        r.records,
        human_bytes(r.bytes),
        r.retention
    );
    let tip = format!(
        "{}: {} .. {}\n{info}\n{}",
        r.run_id,
        r.start_time,
        r.completion_time,
        lock.as_deref().unwrap_or("not locked")
    );
    let mut out = format!(
        "<g class=\"run\" data-run-id=\"{id}\">\
         <text class=\"run-id\" x=\"10\" y=\"{}\">{id}</text>\
         <text class=\"run-info\" x=\"10\" y=\"{}\">{}</text>\
         <rect class=\"bar {}{}\" x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"22\" rx=\"3\">\
         <title>{}</title></rect>",
        y + 16,
        y + 32,
        esc(&info),
        retention_class(&r.retention),
        if lock.is_some() { " locked" } else { "" },
        y + 6,
        esc(&tip),
        id = esc(&r.run_id),
    );
    if let Some(v) = &r.validation {
        out.push_str(&validation_mark(v, x + w, y));
    }
    if let Some(l) = &lock {
        out.push_str(&format!(
            "<text class=\"lock-mark\" x=\"{}\" y=\"{}\" text-anchor=\"end\">\u{25A3} {}</text>",
            PLOT_X0 - 8,
            y + 16,
            esc(l)
        ));
    }
    out.push_str("</g>\n");
    out
}

/// The CSS class and glyph of a validation verdict (`passed`, `failed`, else skipped).
fn verdict_style(result: &str) -> (&'static str, char) {
    match result {
        "passed" => ("passed", '\u{2713}'),
        "failed" => ("failed", '\u{2717}'),
        _ => ("skipped", '\u{2013}'),
    }
}

/// A validated run's mark just past its bar's end `x_end` in the lane at `y`: a coloured
/// circle with a glyph (✓ passed, ✗ failed, – skipped), its tooltip naming the validation,
/// its result and its time.
fn validation_mark(v: &ValidationMark, x_end: i64, y: i64) -> String {
    let (class, glyph) = verdict_style(&v.result);
    let (cx, cy) = (x_end + 10, y + 17);
    format!(
        "<g class=\"validation-mark {class}\" data-validation=\"{}\" data-result=\"{}\">\
         <title>{}</title>\
         <circle class=\"vmark {class}\" cx=\"{cx}\" cy=\"{cy}\" r=\"7\"/>\
         <text class=\"vglyph\" x=\"{cx}\" y=\"{}\" text-anchor=\"middle\">{glyph}</text></g>",
        esc(&v.validation),
        esc(&v.result),
        esc(&format!(
            "validation {}: {} at {}",
            v.validation, v.result, v.time
        )),
        cy + 4,
    )
}

/// The legend's second row: the validation marks.
fn validation_legend(y: i64) -> String {
    let mut out = String::new();
    let mut x = 10;
    for (result, label) in [
        ("passed", "latest validation passed"),
        ("failed", "latest validation failed"),
        ("skipped", "latest validation skipped"),
    ] {
        let (class, glyph) = verdict_style(result);
        out.push_str(&format!(
            "<circle class=\"swatch vmark {class}\" cx=\"{}\" cy=\"{}\" r=\"7\"/>\
             <text class=\"vglyph\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{glyph}</text>\
             <text class=\"legend\" x=\"{}\" y=\"{}\">{}</text>",
            x + 7,
            y + 6,
            x + 7,
            y + 10,
            x + 18,
            y + 10,
            esc(label)
        ));
        x += 26 + 7 * label.chars().count() as i64;
    }
    out + "\n"
}

/// One topic's lane at `y`: its name and window (or "no record") in the text column, the
/// window's bar (hatched when a partition has a gap), the partitions with gaps listed.
fn topic_lane(s: Option<&Scale>, t: &TopicWindow, y: i64) -> String {
    let gaps = &t.partitions_with_gaps;
    let gap_text = match gaps.len() {
        0 => "no gaps".to_string(),
        _ => format!(
            "gaps in partition{} {}",
            if gaps.len() == 1 { "" } else { "s" },
            gaps.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let window = t
        .window
        .map(|w| w.describe())
        .unwrap_or_else(|| "no record with a timestamp".into());
    let mut out = format!(
        "<g class=\"topic\" data-topic=\"{name}\">\
         <text class=\"topic-name\" x=\"10\" y=\"{}\">{name}</text>\
         <text class=\"topic-info{}\" x=\"10\" y=\"{}\">{}</text>",
        y + 16,
        if gaps.is_empty() { "" } else { " gap-text" },
        y + 32,
        esc(&format!("{window} · {gap_text}")),
        name = esc(&t.topic),
    );
    if let (Some(s), Some(w)) = (s, t.window) {
        let (x, width) = s.bar(w.first_ms, w.last_ms);
        let class = if gaps.is_empty() {
            "window"
        } else {
            "window gaps"
        };
        out.push_str(&format!(
            "<rect class=\"{class}\" x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"22\" rx=\"3\">\
             <title>{}</title></rect>",
            y + 6,
            esc(&format!("{}: {window}\n{gap_text}", t.topic))
        ));
    }
    out.push_str("</g>\n");
    out
}

/// The legend under the title: one swatch per retention state and the lock and gap marks.
fn legend(y: i64) -> String {
    let items = [
        ("bar kept", "kept"),
        ("bar would-prune", "would be pruned (dryRun)"),
        ("bar pruned-next", "pruned by the next retention pass"),
        ("bar lock-kept", "kept by its object lock"),
        ("bar ret-off", "retention off"),
        ("bar kept locked", "object-locked (\u{25A3})"),
        ("window gaps", "window with gaps"),
    ];
    let mut out = String::new();
    let mut x = 10;
    for (class, label) in items {
        out.push_str(&format!(
            "<rect class=\"swatch {class}\" x=\"{x}\" y=\"{y}\" width=\"14\" height=\"12\"/>\
             <text class=\"legend\" x=\"{}\" y=\"{}\">{}</text>",
            x + 18,
            y + 10,
            esc(label)
        ));
        x += 26 + 7 * label.chars().count() as i64;
    }
    out + "\n"
}

const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#222;background:#fff}\
h1{font-size:20px;margin:0 0 4px}p{margin:2px 0 10px;color:#555;font-size:13px}\
svg text{font-family:sans-serif;font-size:12px;fill:#222}\
.axis,.tick{stroke:#555;stroke-width:1}.tick-label{font-size:11px;fill:#555}\
.axis-title{font-weight:bold;font-size:13px}.run-id,.topic-name{font-weight:bold}\
.run-info,.topic-info{fill:#555;font-size:11px}.gap-text{fill:#b71c1c}\
.lock-mark{fill:#0d47a1;font-size:11px}.legend{font-size:11px}\
.bar{stroke:#333;stroke-width:0.5}.kept{fill:#43a047}.would-prune{fill:#fb8c00}\
.pruned-next{fill:#e53935}.lock-kept{fill:#1e88e5}.ret-off{fill:#9e9e9e}\
.locked{stroke:#0d47a1;stroke-width:2.5;stroke-dasharray:5 3}\
.window{fill:#5c6bc0;stroke:#283593;stroke-width:0.5}.gaps{fill:url(#hatch)}\
.lane-sep{stroke:#eee;stroke-width:1}\
.vmark{stroke:#333;stroke-width:0.5}.vmark.passed{fill:#2e7d32}.vmark.failed{fill:#c62828}\
.vmark.skipped{fill:#9e9e9e}.vglyph{fill:#fff;font-size:11px;font-weight:bold}";

/// The page: title, the runs on their wall-clock axis, each topic's recoverable window on its
/// record-timestamp axis. `now_ms`: when the page was made (shown, not used for layout).
pub fn render(name: &str, rows: &[RunRow], rec: &Recoverability, now_ms: i64) -> String {
    let run_scale = Scale::over(
        rows.iter()
            .flat_map(|r| [ms(&r.start_time), ms(&r.completion_time)])
            .flatten(),
    );
    let rec_scale = Scale::over(
        rec.topics
            .iter()
            .filter_map(|t| t.window)
            .flat_map(|w| [w.first_ms, w.last_ms]),
    );
    let mut svg = legend(8);
    svg.push_str(&validation_legend(28));
    let mut y = 76;
    match &run_scale {
        Some(s) => {
            svg.push_str(&axis(s, y, "Runs (start .. completion)"));
            y += AXIS;
            for r in rows {
                svg.push_str(&lane_separator(y));
                svg.push_str(&run_lane(s, r, y));
                y += LANE;
            }
        }
        None => {
            svg.push_str(&format!(
                "<text class=\"axis-title\" x=\"10\" y=\"{}\">No complete run of {} yet</text>\n",
                y + 4,
                esc(name)
            ));
            y += AXIS;
        }
    }
    y += 40;
    if !rec.topics.is_empty() {
        let title = match rec_scale {
            Some(_) => "Recoverable window per topic (record timestamps)",
            None => "Recoverable window per topic",
        };
        match &rec_scale {
            Some(s) => svg.push_str(&axis(s, y, title)),
            None => svg.push_str(&format!(
                "<text class=\"axis-title\" x=\"10\" y=\"{}\">{title}</text>\n",
                y + 4
            )),
        }
        y += AXIS;
        for t in &rec.topics {
            svg.push_str(&lane_separator(y));
            svg.push_str(&topic_lane(rec_scale.as_ref(), t, y));
            y += LANE;
        }
    }
    page(name, rows, rec, now_ms, &svg, y + 10)
}

fn lane_separator(y: i64) -> String {
    format!("<line class=\"lane-sep\" x1=\"10\" y1=\"{y}\" x2=\"{PLOT_X1}\" y2=\"{y}\"/>")
}

/// The HTML around the SVG body `svg` of height `height`.
fn page(
    name: &str,
    rows: &[RunRow],
    rec: &Recoverability,
    now_ms: i64,
    svg: &str,
    height: i64,
) -> String {
    let window = rec
        .window
        .map(|w| format!("recoverable {}", w.describe()))
        .unwrap_or_else(|| "nothing recoverable yet".into());
    let summary = format!(
        "{} complete run{}, {} topic{}, {window}; made {}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rec.topics.len(),
        if rec.topics.len() == 1 { "" } else { "s" },
        rfc3339(now_ms - now_ms.rem_euclid(1000))
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>KafkaBackup {n}: runs</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>KafkaBackup {n}: runs</h1>\n<p>{}</p>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">\n\
         <defs><pattern id=\"hatch\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"8\" height=\"8\" fill=\"#5c6bc0\"/>\
         <rect width=\"3\" height=\"8\" fill=\"#e53935\"/></pattern></defs>\n{svg}</svg>\n\
         </body>\n</html>\n",
        esc(&summary),
        esc(&format!("timeline of the runs of {name}")),
        n = esc(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::runs_cmd::LockState;
    use crate::plan::Window;

    const T0: i64 = 1_764_000_000_000;

    fn row(id: &str, start: i64, done: i64, retention: &str) -> RunRow {
        RunRow {
            run_id: id.into(),
            completion_time: rfc3339(done),
            records: 1234,
            bytes: 5 * 1024 * 1024,
            object_lock: None,
            start_time: rfc3339(start),
            previous_run_id: None,
            topic_count: 1,
            partition_count: 2,
            gap_count: 0,
            retention: retention.into(),
            topics: vec![],
            validation: None,
        }
    }

    fn rec(topics: &[(&str, Vec<i32>)]) -> Recoverability {
        Recoverability {
            window: Some(Window {
                first_ms: T0,
                last_ms: T0 + 3_600_000,
            }),
            runs: 2,
            topics: topics
                .iter()
                .map(|(t, gaps)| TopicWindow {
                    topic: t.to_string(),
                    window: Some(Window {
                        first_ms: T0,
                        last_ms: T0 + 3_600_000,
                    }),
                    partitions_with_gaps: gaps.clone(),
                })
                .collect(),
        }
    }

    fn rows() -> Vec<RunRow> {
        let mut locked = row(
            "20261206T110000.000Z",
            T0 + 7_200_000,
            T0 + 7_260_000,
            "kept",
        );
        locked.object_lock = Some(LockState {
            mode: "COMPLIANCE".into(),
            retain_until: rfc3339(T0 + 86_400_000),
            locked: true,
        });
        vec![
            row(
                "20261206T100000.000Z",
                T0,
                T0 + 60_000,
                "would be pruned (dryRun)",
            ),
            locked,
        ]
    }

    #[test]
    fn one_rect_per_run_with_its_id_records_bytes_and_marks() {
        let html = render("b", &rows(), &rec(&[("orders", vec![])]), T0);
        assert_eq!(html.matches("<rect class=\"bar ").count(), 2, "{html}");
        for needle in [
            "20261206T100000.000Z",
            "20261206T110000.000Z",
            "1234 records, 5.0 MiB",
            "would be pruned (dryRun)",
            "bar would-prune",
            "bar kept locked",
            "COMPLIANCE until 2025-11-25T16:00:00Z",
            "orders",
            "no gaps",
        ] {
            assert!(html.contains(needle), "{needle}: {html}");
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn text_is_escaped_and_nothing_is_loaded_or_run() {
        let mut rs = rows();
        rs[0].run_id = "r\"<1>&".into();
        let html = render(
            "<b>",
            &rs,
            &rec(&[("<script>alert(1)</script>", vec![0, 3])]),
            T0,
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("r&quot;&lt;1&gt;&amp;"), "{html}");
        assert!(html.contains("KafkaBackup &lt;b&gt;"), "{html}");
        assert!(html.contains("gaps in partitions 0, 3"), "{html}");
        assert!(html.contains("class=\"window gaps\""), "{html}");
        for remote in ["http:", "https:", "src=", "@import", "url(http"] {
            let n = html.matches(remote).count();
            // the one allowed: the SVG namespace
            let allowed = usize::from(remote == "http:");
            assert_eq!(n, allowed, "{remote}: {html}");
        }
    }

    /// The text of every tick label of `html`.
    fn tick_labels(html: &str) -> Vec<&str> {
        html.split("class=\"tick-label\"")
            .skip(1)
            .map(|s| {
                let s = &s[s.find('>').unwrap() + 1..];
                &s[..s.find('<').unwrap()]
            })
            .collect()
    }

    #[test]
    fn axis_labels_are_rfc3339_and_distinct() {
        let html = render("b", &rows(), &rec(&[("orders", vec![])]), T0);
        let labels = tick_labels(&html);
        assert!(labels.len() >= 4, "{html}");
        for l in &labels {
            let t: jiff::Timestamp = l.parse().unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(t.to_string(), *l);
        }
        // runs one second long, records 29 ms apart: still distinct ticks, in ms then
        let mut short = rows();
        short.truncate(1);
        short[0].completion_time = rfc3339(T0 + 1_000);
        let mut r = rec(&[("orders", vec![])]);
        r.topics[0].window = Some(Window {
            first_ms: T0,
            last_ms: T0 + 29,
        });
        let html = render("b", &short, &r, T0);
        let labels = tick_labels(&html);
        let mut uniq = labels.clone();
        uniq.dedup();
        assert_eq!(uniq, labels, "{html}");
        assert!(labels.len() >= 4, "{labels:?}");
        assert!(labels.iter().any(|l| l.ends_with("00.02Z")), "{labels:?}");
    }

    #[test]
    fn ticks_are_round_and_inside_the_axis() {
        let s = Scale {
            t0: T0 - 7,
            t1: T0 + 7_200_000,
        };
        let t = ticks(&s);
        assert!(t.len() >= 2 && t.len() as i64 <= MAX_TICKS + 1, "{t:?}");
        assert!(
            t.iter()
                .all(|x| *x >= s.t0 && *x <= s.t1 && x % 1_800_000 == 0),
            "{t:?}"
        );
    }

    #[test]
    fn no_runs_says_so() {
        let html = render("b", &[], &Recoverability::default(), T0);
        assert!(html.contains("No complete run of b yet"), "{html}");
        assert_eq!(html.matches("<rect class=\"bar ").count(), 0, "{html}");
    }

    #[test]
    fn a_validated_run_has_a_mark_with_an_escaped_tooltip_and_a_legend_entry() {
        let mut rs = rows();
        rs[1].validation = Some(ValidationMark {
            result: "failed".into(),
            time: "2026-12-06T03:00:00Z".into(),
            validation: "<nightly & \"co\">".into(),
        });
        let html = render("b", &rs, &rec(&[("orders", vec![])]), T0);
        assert_eq!(
            html.matches("<g class=\"validation-mark failed\"").count(),
            1,
            "{html}"
        );
        assert!(
            !html.contains("<g class=\"validation-mark passed\""),
            "{html}"
        );
        assert!(
            html.contains(
                "<title>validation &lt;nightly &amp; &quot;co&quot;&gt;: failed at 2026-12-06T03:00:00Z</title>"
            ),
            "{html}"
        );
        assert!(html.contains("data-validation=\"&lt;nightly &amp; &quot;co&quot;&gt;\""));
        assert!(!html.contains("<nightly"), "{html}");
        assert!(html.contains("\u{2717}</text></g>"), "{html}");
        // the mark sits just past the end of its run's bar, inside the SVG
        let lane = &html[html.find("data-run-id=\"20261206T110000.000Z\"").unwrap()..];
        let attr = |s: &str, a: &str| -> i64 {
            let s = &s[s.find(&format!(" {a}=\"")).unwrap() + a.len() + 3..];
            s[..s.find('"').unwrap()].parse().unwrap()
        };
        let bar = &lane[lane.find("<rect class=\"bar").unwrap()..];
        let end = attr(bar, "x") + attr(bar, "width");
        let cx = attr(&lane[lane.find("<circle").unwrap()..], "cx");
        assert_eq!(cx, end + 10, "{lane}");
        assert!(cx + 7 < WIDTH);
        for l in ["latest validation passed", "latest validation failed"] {
            assert!(html.contains(l), "{l}: {html}");
        }
    }
}
