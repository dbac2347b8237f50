//! Schedule arithmetic for KafkaBackup `schedule` / `timeZone`, anchored on
//! `status.lastScheduleTime`: the tick a reconcile may fire is the latest one after the anchor,
//! and its run id is derived from the tick itself. A restart, a stale cache or a second
//! replica therefore computes the same tick and the same run id, and can never fire it twice
//! (lessons: schedules fired twice, operator #93).
use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// What a schedule says at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    /// The latest tick in `(anchor, now]`, if any: the run to start now.
    pub due: Option<Timestamp>,
    /// Ticks in `(anchor, due)` that were missed (operator down): not run, only counted.
    pub missed: u32,
    /// The first tick after `now`.
    pub next: Option<Timestamp>,
}

/// Evaluates `cron` in `tz` between `anchor` (exclusive: the last tick acted on, or the
/// resource's creation time) and `now` (inclusive).
///
/// Errors: a pattern croner cannot search (e.g. 30 February), as text.
pub fn evaluate(
    cron: &Cron,
    tz: &TimeZone,
    anchor: Timestamp,
    now: Timestamp,
) -> Result<ScheduleState, String> {
    let now_z = now.to_zoned(tz.clone());
    let latest = cron
        .find_previous_occurrence(&now_z, true)
        .ok()
        .map(|z| z.timestamp());
    let due = latest.filter(|t| *t > anchor);
    let mut missed = 0u32;
    if let Some(due) = due {
        let mut cursor = anchor.to_zoned(tz.clone());
        while missed < 10_000 {
            match cron.find_next_occurrence(&cursor, false) {
                Ok(z) if z.timestamp() < due => {
                    missed += 1;
                    cursor = z;
                }
                _ => break,
            }
        }
    }
    let next = cron
        .find_next_occurrence(&now_z, false)
        .map_err(|e| e.to_string())?
        .timestamp();
    Ok(ScheduleState {
        due,
        missed,
        next: Some(next),
    })
}

/// The run id of a scheduled tick (same format as every run id: `YYYYMMDDTHHMMSS.mmmZ`).
pub fn run_id_for(tick: Timestamp) -> String {
    crate::format::layout::run_id(tick.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::parse_schedule;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn hourly_seed_schedule_fires_the_latest_tick_once() {
        let cron = parse_schedule("0 0 * * * * *").unwrap();
        let s = evaluate(
            &cron,
            &TimeZone::UTC,
            ts("2026-01-01T09:00:00Z"),
            ts("2026-01-01T12:30:00Z"),
        )
        .unwrap();
        assert_eq!(s.due, Some(ts("2026-01-01T12:00:00Z")));
        assert_eq!(s.missed, 2, "10:00 and 11:00 were missed");
        assert_eq!(s.next, Some(ts("2026-01-01T13:00:00Z")));
        // after acting on 12:00 (lastScheduleTime = 12:00), nothing is due until 13:00
        let again = evaluate(
            &cron,
            &TimeZone::UTC,
            ts("2026-01-01T12:00:00Z"),
            ts("2026-01-01T12:59:59Z"),
        )
        .unwrap();
        assert_eq!(again.due, None);
        assert_eq!(
            run_id_for(ts("2026-01-01T12:00:00Z")),
            "20260101T120000.000Z"
        );
    }

    #[test]
    fn ten_second_schedule_and_five_field_and_time_zones() {
        let every10 = parse_schedule("*/10 * * * * *").unwrap();
        let s = evaluate(
            &every10,
            &TimeZone::UTC,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:00:25Z"),
        )
        .unwrap();
        assert_eq!((s.due, s.missed), (Some(ts("2026-01-01T00:00:20Z")), 1));
        // a tick exactly at `now` is due; the anchor itself is not
        let s = evaluate(
            &every10,
            &TimeZone::UTC,
            ts("2026-01-01T00:00:20Z"),
            ts("2026-01-01T00:00:30Z"),
        )
        .unwrap();
        assert_eq!(s.due, Some(ts("2026-01-01T00:00:30Z")));
        let s = evaluate(
            &every10,
            &TimeZone::UTC,
            ts("2026-01-01T00:00:30Z"),
            ts("2026-01-01T00:00:30Z"),
        )
        .unwrap();
        assert_eq!(s.due, None);
        // 5-field: daily at 02:30 in Berlin = 01:30 UTC in winter
        let daily = parse_schedule("30 2 * * *").unwrap();
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::fixed(jiff::tz::offset(1)));
        let s = evaluate(
            &daily,
            &berlin,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T03:00:00Z"),
        )
        .unwrap();
        assert_eq!(s.due, Some(ts("2026-01-01T01:30:00Z")));
    }
}
