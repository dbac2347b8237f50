//! The shard split of a run executed as Kubernetes Jobs (`execution.mode: job`, issue 18): which
//! partition steps of a compiled plan each shard (one Job) takes, balanced by estimated bytes.
//! [`assign`] is the split (longest-processing-time greedy); [`split`] turns it into
//! [`Shard`]s with their estimates; [`PlanExecution`] is what a plan carries.
//!
//! Pure: no I/O, no clock; the same input gives the same shards.
use serde::{Deserialize, Serialize};

use crate::api::{Execution, ExecutionMode};

/// How a compiled run is executed when it is not in process; kebab-case in plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanExecutionMode {
    /// One Kubernetes Job per shard.
    Job,
}

/// The execution part of a plan compiled for `execution.mode: job`: the shards and how often
/// one may be retried. Plans of in-process runs carry none (`execution` absent), so their
/// JSON and hash are what they were before shards existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanExecution {
    /// Always `job` today.
    pub mode: PlanExecutionMode,
    /// The shards, by index (0..): `min(execution.shards, steps)` of them, none empty. A plan
    /// without steps has no shard.
    pub shards: Vec<Shard>,
    /// `execution.backoffLimit`: retries of one shard before the run fails.
    pub backoff_limit: i32,
}

/// One shard of a run: the partition steps one Job executes, and their estimates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    /// Position in [`PlanExecution::shards`], from 0; a Job runs `--shard <index>/<count>`.
    pub index: u32,
    /// Indexes into the plan's `partitions` (its partition steps), ascending.
    pub partitions: Vec<usize>,
    /// Indexes into a restore plan's `repartitioned` steps (each reads every partition of its
    /// source topic, so it is one unit), ascending. Always empty for a backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repartitioned: Vec<usize>,
    /// Sum of the steps' estimated bytes (0 when unknown).
    pub estimated_bytes: u64,
    /// Sum of the steps' estimated records.
    pub estimated_records: u64,
}

/// The weights [`assign`] balances, one per step from its `(estimated bytes, estimated
/// records)`: the bytes when any step has a byte estimate, else the records (a first backup,
/// which has no earlier run to take bytes per record from, estimates none).
pub fn weights(estimates: &[(u64, u64)]) -> Vec<u64> {
    let by_bytes = estimates.iter().any(|&(bytes, _)| bytes > 0);
    estimates
        .iter()
        .map(|&(bytes, records)| if by_bytes { bytes } else { records })
        .collect()
}

/// Splits items of the given `weights` into `min(n, weights.len())` groups with balanced sums
/// (longest-processing-time greedy: the heaviest item not yet placed goes to the group with the
/// smallest sum; ties go to the lower item index, then to the group with fewer items, then to
/// the lower group index). Each group lists its item indexes ascending. No group is empty: an
/// empty group has the smallest sum and the fewest items, so the first `n` items fill every
/// group (items of weight 0 are spread by count). The largest sum is within 4/3 - 1/(3n) of
/// the best possible split (Graham's bound). `n == 0` or no item gives no group.
pub fn assign(weights: &[u64], n: u32) -> Vec<Vec<usize>> {
    let groups = (n as usize).min(weights.len());
    if groups == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]).then(a.cmp(&b)));
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); groups];
    let mut sums = vec![0u64; groups];
    for i in order {
        let g = (0..groups)
            .min_by_key(|&g| (sums[g], out[g].len(), g))
            .expect("at least one group");
        sums[g] = sums[g].saturating_add(weights[i]);
        out[g].push(i);
    }
    for g in &mut out {
        g.sort_unstable();
    }
    out
}

/// The shards of a run whose steps have these `(estimated bytes, estimated records)`, split
/// into at most `n` by [`assign`] over [`weights`]. Each [`Shard::partitions`] indexes
/// `estimates` (a restore maps the indexes past its partition steps to `repartitioned`).
pub fn split(estimates: &[(u64, u64)], n: u32) -> Vec<Shard> {
    assign(&weights(estimates), n)
        .into_iter()
        .enumerate()
        .map(|(index, steps)| Shard {
            index: index as u32,
            estimated_bytes: steps.iter().map(|&i| estimates[i].0).sum(),
            estimated_records: steps.iter().map(|&i| estimates[i].1).sum(),
            partitions: steps,
            repartitioned: Vec::new(),
        })
        .collect()
}

/// The execution part of a plan whose steps have these `estimates` (see [`split`]): None in
/// process, else the shards. `repartitioned` of them (the last ones of `estimates`) are a
/// restore's repartitioned steps and go to [`Shard::repartitioned`].
pub fn plan_execution(
    execution: &Execution,
    estimates: &[(u64, u64)],
    repartitioned: usize,
) -> Option<PlanExecution> {
    if execution.mode == ExecutionMode::InProcess {
        return None;
    }
    let first_repartitioned = estimates.len() - repartitioned.min(estimates.len());
    let mut shards = split(estimates, execution.shards);
    for s in &mut shards {
        let (steps, rep): (Vec<usize>, Vec<usize>) =
            s.partitions.iter().partition(|&&i| i < first_repartitioned);
        s.partitions = steps;
        s.repartitioned = rep.into_iter().map(|i| i - first_repartitioned).collect();
    }
    Some(PlanExecution {
        mode: PlanExecutionMode::Job,
        shards,
        backoff_limit: execution.backoff_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(weights: &[u64], groups: &[Vec<usize>]) -> Vec<u64> {
        groups
            .iter()
            .map(|g| g.iter().map(|&i| weights[i]).sum())
            .collect()
    }

    #[test]
    fn heaviest_to_lightest() {
        // LPT: 7 -> 0, 5 -> 1, 4 -> 1 (5 < 7), 3 -> 0 (7 < 9), 1 -> 1 (9 < 10).
        let w = [3, 7, 1, 5, 4];
        let g = assign(&w, 2);
        assert_eq!(g, vec![vec![0, 1], vec![2, 3, 4]]);
        assert_eq!(sums(&w, &g), vec![10, 10]);
    }

    #[test]
    fn bytes_not_counts_are_balanced() {
        // One huge partition and many small ones: the huge one gets a shard of its own.
        let mut w = vec![1000];
        w.extend([10; 10]);
        let g = assign(&w, 2);
        assert_eq!(g[0], vec![0]);
        assert_eq!(g[1].len(), 10);
    }

    #[test]
    fn deterministic_tie_breaks() {
        let w = [5, 5, 5, 5];
        assert_eq!(assign(&w, 2), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(assign(&w, 2), assign(&w, 2));
    }

    #[test]
    fn zero_weights_spread_by_count() {
        let g = assign(&[0; 7], 3);
        assert_eq!(g, vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
    }

    #[test]
    fn fewer_partitions_than_shards() {
        let g = assign(&[9, 1], 4);
        assert_eq!(g, vec![vec![0], vec![1]]);
        assert!(assign(&[], 4).is_empty());
        assert!(assign(&[1, 2], 0).is_empty());
        assert_eq!(assign(&[4, 2, 1], 1), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn weights_fall_back_to_records() {
        assert_eq!(weights(&[(0, 5), (0, 7)]), vec![5, 7]);
        assert_eq!(weights(&[(0, 5), (100, 7)]), vec![0, 100]);
        assert!(weights(&[]).is_empty());
    }

    #[test]
    fn split_sums_estimates() {
        let s = split(&[(100, 1), (50, 2), (50, 3)], 2);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].index, s[0].partitions.clone()), (0, vec![0]));
        assert_eq!((s[0].estimated_bytes, s[0].estimated_records), (100, 1));
        assert_eq!((s[1].index, s[1].partitions.clone()), (1, vec![1, 2]));
        assert_eq!((s[1].estimated_bytes, s[1].estimated_records), (100, 5));
    }

    #[test]
    fn plan_execution_modes() {
        let mut ex = Execution::default();
        assert_eq!(plan_execution(&ex, &[(1, 1)], 0), None);
        ex.mode = ExecutionMode::Job;
        ex.shards = 2;
        ex.backoff_limit = 5;
        // Steps 0..2 are partition steps, 2..4 repartitioned steps.
        let p = plan_execution(&ex, &[(10, 0), (1, 0), (8, 0), (2, 0)], 2).unwrap();
        assert_eq!(p.mode, PlanExecutionMode::Job);
        assert_eq!(p.backoff_limit, 5);
        // Weights 10, 8, 2 and 1: 10 -> 0, 8 -> 1, 2 -> 1, 1 -> 0 (10 = 10, fewer steps).
        assert_eq!(p.shards[0].partitions, vec![0, 1]);
        assert_eq!(p.shards[0].repartitioned, Vec::<usize>::new());
        assert_eq!(p.shards[1].partitions, Vec::<usize>::new());
        assert_eq!(p.shards[1].repartitioned, vec![0, 1]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["mode"], "job");
        assert!(json["shards"][0].get("repartitioned").is_none());
        let back: PlanExecution = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    /// The smallest possible largest sum over every split of `w` into at most `n` groups.
    fn optimum(w: &[u64], n: usize) -> u64 {
        let mut best = u64::MAX;
        let total = n.pow(w.len() as u32);
        for code in 0..total {
            let mut s = vec![0u64; n];
            let mut c = code;
            for &x in w {
                s[c % n] += x;
                c /= n;
            }
            best = best.min(*s.iter().max().unwrap());
        }
        best
    }

    /// A small deterministic generator (xorshift64*), for reproducible random cases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
        }
    }

    #[test]
    fn within_the_lpt_bound_of_the_optimum() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..400 {
            let items = 1 + rng.next(8) as usize;
            let n = 1 + rng.next(4) as usize;
            let max = [3, 20, 1000][case % 3];
            let w: Vec<u64> = (0..items).map(|_| rng.next(max)).collect();
            let g = assign(&w, n as u32);
            assert_eq!(g.len(), n.min(items), "{w:?} n={n}");
            let mut seen: Vec<usize> = g.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(
                seen,
                (0..items).collect::<Vec<_>>(),
                "each item once: {w:?}"
            );
            assert!(g.iter().all(|x| !x.is_empty()), "no empty shard: {w:?}");
            assert!(g.iter().all(|x| x.is_sorted()), "ascending: {g:?}");
            let lpt = *sums(&w, &g).iter().max().unwrap();
            let opt = optimum(&w, n);
            // Graham: LPT <= (4/3 - 1/(3n)) OPT, i.e. 3n LPT <= (4n - 1) OPT.
            assert!(
                3 * n as u64 * lpt <= (4 * n as u64 - 1) * opt,
                "{w:?} into {n}: LPT {lpt}, optimum {opt}"
            );
        }
    }
}
