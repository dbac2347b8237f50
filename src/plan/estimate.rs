//! Byte estimates of a backup's steps (pure): from the size of each partition's log on its
//! leader (DescribeLogDirs, KIP-113), scaled to the offsets the step reads; else from the
//! previous run's bytes per record; else unknown. And the total of a plan's known estimates.
use serde::{Deserialize, Serialize};

/// Where a step's byte estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BytesSource {
    /// Nothing to read (no offset between the start and the high watermark): 0 bytes.
    Nothing,
    /// The size of the partition's log on its leader, scaled by [`log_share`].
    LogSize,
    /// The previous run's raw bytes per record times the records to read.
    PreviousRun,
    /// No figure: the broker did not say and no earlier run tells.
    #[default]
    Unknown,
}

/// The bytes of the offsets `from..high_watermark` of a log of `log_bytes` bytes that holds
/// `log_start..high_watermark`: `log_bytes * (high_watermark - from) / (high_watermark -
/// log_start)`, the fraction of the log's offsets the step reads. A first backup reads from
/// the log start, so all of it; an incremental one (after the previous run's cut) or a
/// resumed one (after its last segment) the tail. Assumes the bytes spread evenly over the
/// offsets: a compacted log, or records of very different sizes, make it rougher. The log
/// size counts record batches as stored, which is what a backup fetches (its raw bytes).
/// 0 when there is nothing to read; never more than `log_bytes`.
pub fn log_share(log_bytes: u64, log_start: i64, high_watermark: i64, from: i64) -> u64 {
    let span = high_watermark - log_start;
    let read = (high_watermark - from.max(log_start)).max(0);
    if span <= 0 || read == 0 {
        return 0;
    }
    (log_bytes as u128 * read as u128 / span as u128) as u64
}

/// The estimate of a backup step reading `from..high_watermark` of a partition whose log
/// holds `log_start..high_watermark`: [`log_share`] of `log_bytes` (the leader's log size)
/// when the broker said, else `bytes_per_record` (the previous run's) times the offsets to
/// read, else unknown (0). Nothing to read is 0 bytes, known.
pub fn backup_step_bytes(
    log_bytes: Option<u64>,
    bytes_per_record: Option<f64>,
    (log_start, high_watermark): (i64, i64),
    from: i64,
) -> (u64, BytesSource) {
    let records = (high_watermark - from.max(log_start)).max(0) as u64;
    if records == 0 {
        return (0, BytesSource::Nothing);
    }
    match (log_bytes, bytes_per_record) {
        (Some(b), _) => (
            log_share(b, log_start, high_watermark, from),
            BytesSource::LogSize,
        ),
        (None, Some(r)) => ((r * records as f64) as u64, BytesSource::PreviousRun),
        (None, None) => (0, BytesSource::Unknown),
    }
}

/// The total of a plan's byte estimates: the sum of the known ones, and how many steps are
/// known and unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EstimateTotal {
    /// Sum of the known steps' bytes.
    pub bytes: u64,
    pub known: usize,
    pub unknown: usize,
}

impl EstimateTotal {
    /// The total of `steps` (bytes, where they come from).
    pub fn of(steps: impl IntoIterator<Item = (u64, BytesSource)>) -> EstimateTotal {
        let mut t = EstimateTotal::default();
        for (bytes, source) in steps {
            if source == BytesSource::Unknown {
                t.unknown += 1;
            } else {
                t.known += 1;
                t.bytes += bytes;
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_backup_reads_the_whole_log() {
        assert_eq!(log_share(1_000_000, 0, 100, 0), 1_000_000);
        assert_eq!(log_share(1_000_000, 40, 100, 40), 1_000_000);
    }

    #[test]
    fn from_a_cut_the_fraction_of_offsets_left() {
        // (hw - start) / (hw - log start) = (100 - 75) / (100 - 0)
        assert_eq!(log_share(1_000_000, 0, 100, 75), 250_000);
        // a log start moved by retention: (150 - 120) / (150 - 90)
        assert_eq!(log_share(600, 90, 150, 120), 300);
        // a start below the log start reads the whole log, no more
        assert_eq!(log_share(600, 90, 150, 10), 600);
    }

    #[test]
    fn nothing_to_read_is_zero() {
        assert_eq!(log_share(1_000, 0, 100, 100), 0);
        assert_eq!(log_share(1_000, 0, 100, 120), 0);
        // an empty log that still has bytes (a log of aborted or deleted records)
        assert_eq!(log_share(1_000, 100, 100, 100), 0);
    }

    #[test]
    fn huge_logs_do_not_overflow() {
        let tib = 1u64 << 40;
        assert_eq!(log_share(tib, 0, i64::MAX, i64::MAX / 2), tib / 2);
    }

    #[test]
    fn the_log_size_wins_then_the_previous_run_then_unknown() {
        assert_eq!(
            backup_step_bytes(Some(800), Some(50.0), (0, 100), 50),
            (400, BytesSource::LogSize)
        );
        assert_eq!(
            backup_step_bytes(None, Some(50.0), (0, 100), 50),
            (2_500, BytesSource::PreviousRun)
        );
        assert_eq!(
            backup_step_bytes(None, None, (0, 100), 50),
            (0, BytesSource::Unknown)
        );
        // nothing to read is known without the broker
        assert_eq!(
            backup_step_bytes(None, None, (0, 100), 100),
            (0, BytesSource::Nothing)
        );
        assert_eq!(
            backup_step_bytes(Some(0), None, (7, 7), 7),
            (0, BytesSource::Nothing)
        );
    }

    #[test]
    fn the_total_sums_the_known_steps_and_counts_the_rest() {
        let t = EstimateTotal::of([
            (1_000, BytesSource::LogSize),
            (0, BytesSource::Unknown),
            (0, BytesSource::Nothing),
            (500, BytesSource::PreviousRun),
        ]);
        assert_eq!(
            t,
            EstimateTotal {
                bytes: 1_500,
                known: 3,
                unknown: 1
            }
        );
        assert_eq!(EstimateTotal::of([]), EstimateTotal::default());
    }
}
