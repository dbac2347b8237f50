//! Step 4 of the flow on a terminal: a progress bar (indicatif) or periodic structured log
//! lines. The tables and summaries are in [`crate::report`], shared with the operator.
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::exec::{Event, Progress};
pub use crate::report::*;

/// Draws progress until the returned handle is dropped/aborted; logs events.
pub fn spawn_reporter(
    progress: Arc<Progress>,
    mut events: mpsc::UnboundedReceiver<Event>,
    bar: bool,
) -> tokio::task::JoinHandle<()> {
    let use_bar = bar && std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let pb = use_bar.then(|| {
            let pb = ProgressBar::new(progress.records_planned.load(Ordering::Relaxed).max(1));
            pb.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec}, eta {eta}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb
        });
        let mut tick =
            tokio::time::interval(Duration::from_millis(if use_bar { 200 } else { 5000 }));
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    None => break,
                    Some(Event::Gap { step, from, to }) => tracing::warn!(%step, from, to, "offsets lost to retention before they were backed up (recorded in the manifest)"),
                    Some(Event::StepDone { step, records, bytes }) => tracing::debug!(%step, records, bytes, "step done"),
                    Some(Event::SegmentWritten { path, bytes }) => tracing::debug!(%path, bytes, "segment written"),
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    let (records, bytes, secs) = progress.snapshot();
                    match &pb {
                        Some(pb) => {
                            pb.set_length(progress.records_planned.load(Ordering::Relaxed).max(records).max(1));
                            pb.set_position(records);
                            pb.set_message(format!("{} {}", human_bytes(bytes), progress.current.lock().unwrap()));
                        }
                        None if secs > 1.0 => tracing::info!(
                            records,
                            records_planned = progress.records_planned.load(Ordering::Relaxed),
                            bytes,
                            steps_done = progress.steps_done.load(Ordering::Relaxed),
                            steps_total = progress.steps_total.load(Ordering::Relaxed),
                            "progress"
                        ),
                        None => {}
                    }
                }
            }
        }
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
    })
}
