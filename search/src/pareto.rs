//! Pareto machinery of NSGA-II (Deb, Pratap, Agarwal and Meyarivan, "A fast and elitist
//! multiobjective genetic algorithm: NSGA-II", IEEE TEVC 2002): Pareto and constrained
//! domination, fast non-dominated sorting, crowding distance, and an incremental archive of
//! non-dominated points. All values are minimised.
//!
//! Every function is deterministic in its input order: ties keep the lower index.

use crate::Evaluation;

/// Whether `a` Pareto-dominates `b`: no worse in every objective and better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// Deb's constraint domination (NSGA-II, section IV): a feasible solution dominates an
/// infeasible one; of two infeasible ones, the smaller violation dominates; of two feasible
/// ones, Pareto domination decides.
pub fn constrained_dominates(a: &Evaluation, b: &Evaluation) -> bool {
    match (a.is_feasible(), b.is_feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(&a.objectives, &b.objectives),
    }
}

/// Fast non-dominated sorting under constraint domination: the fronts, best first, each a list
/// of indices into `evals` in ascending order. `O(M N²)`.
pub fn non_dominated_sort(evals: &[&Evaluation]) -> Vec<Vec<usize>> {
    let n = evals.len();
    let mut dominated_by_me: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut dominators = vec![0usize; n];
    for i in 0..n {
        for j in i + 1..n {
            if constrained_dominates(evals[i], evals[j]) {
                dominated_by_me[i].push(j);
                dominators[j] += 1;
            } else if constrained_dominates(evals[j], evals[i]) {
                dominated_by_me[j].push(i);
                dominators[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominators[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated_by_me[i] {
                dominators[j] -= 1;
                if dominators[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each point of one front (NSGA-II, section III-B): per objective, the
/// normalised gap between a point's two neighbours, summed; the extreme points of every
/// objective get infinity. An objective on which the whole front is equal adds nothing.
pub fn crowding_distance(points: &[&[f64]]) -> Vec<f64> {
    let n = points.len();
    let mut distance = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let objectives = points[0].len();
    let mut order: Vec<usize> = (0..n).collect();
    #[allow(clippy::needless_range_loop)] // `m` picks an objective of every point; clippy misreads it.
    for m in 0..objectives {
        let value = |i: usize| points[i][m];
        // Stable: equal values keep index order, so the result does not depend on the sort.
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        let (min, max) = (value(order[0]), value(order[n - 1]));
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        if max > min {
            for w in order.windows(3) {
                distance[w[1]] += (value(w[2]) - value(w[0])) / (max - min);
            }
        }
    }
    distance
}

/// The rank (front number, 0 best) and crowding distance (within its front) of every member.
pub fn rank_and_crowding(evals: &[&Evaluation]) -> (Vec<usize>, Vec<f64>) {
    let mut rank = vec![0; evals.len()];
    let mut crowding = vec![0.0; evals.len()];
    for (r, front) in non_dominated_sort(evals).iter().enumerate() {
        let points: Vec<&[f64]> = front.iter().map(|&i| evals[i].objectives.as_slice()).collect();
        for (&i, d) in front.iter().zip(crowding_distance(&points)) {
            rank[i] = r;
            crowding[i] = d;
        }
    }
    (rank, crowding)
}

/// Indices of the non-dominated points among `points` (Pareto domination, no constraints),
/// ascending; of several equal points only the first is kept.
pub fn non_dominated(points: &[&[f64]]) -> Vec<usize> {
    let mut archive = Archive::default();
    for (i, p) in points.iter().enumerate() {
        archive.insert(i, p);
    }
    let mut kept: Vec<usize> = archive.entries.into_iter().map(|(i, _)| i).collect();
    kept.sort_unstable();
    kept
}

/// A set of mutually non-dominated points, each tagged with an id (an index into the caller's
/// list), kept up to date one insertion at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Archive {
    entries: Vec<(usize, Vec<f64>)>,
}

impl Archive {
    /// Adds `point` unless a kept point dominates or equals it, and drops the kept points it
    /// dominates. Returns whether the archive changed. `O(size)`.
    pub fn insert(&mut self, id: usize, point: &[f64]) -> bool {
        if self.entries.iter().any(|(_, q)| q.as_slice() == point || dominates(q, point)) {
            return false;
        }
        self.entries.retain(|(_, q)| !dominates(point, q));
        self.entries.push((id, point.to_vec()));
        true
    }

    /// The kept points in insertion order (not sorted).
    pub fn points(&self) -> impl Iterator<Item = &[f64]> {
        self.entries.iter().map(|(_, p)| p.as_slice())
    }

    /// The ids of the kept points, ascending.
    pub fn ids(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self.entries.iter().map(|(i, _)| *i).collect();
        ids.sort_unstable();
        ids
    }

    /// Number of kept points.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::testing::eval;

    #[test]
    fn pareto_domination() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 3.0], &[2.0, 2.0]));
    }

    #[test]
    fn constraint_domination_follows_deb() {
        let feasible_bad = eval(&[9.0, 9.0], 0.0);
        let infeasible_good = eval(&[0.0, 0.0], 0.1);
        let infeasible_worse = eval(&[0.0, 0.0], 0.5);
        assert!(constrained_dominates(&feasible_bad, &infeasible_good));
        assert!(!constrained_dominates(&infeasible_good, &feasible_bad));
        assert!(constrained_dominates(&infeasible_good, &infeasible_worse));
        assert!(!constrained_dominates(&infeasible_good, &infeasible_good.clone()));
    }

    #[test]
    fn sort_puts_feasible_fronts_before_infeasible_ones() {
        let evals = [
            eval(&[1.0, 4.0], 0.0), // front 0
            eval(&[2.0, 5.0], 0.0), // front 1 (dominated by 0)
            eval(&[4.0, 1.0], 0.0), // front 0
            eval(&[0.0, 0.0], 0.3), // infeasible: after every feasible one
            eval(&[3.0, 3.0], 0.0), // front 0
            eval(&[0.0, 0.0], 0.1), // infeasible, smaller violation
            eval(&[3.0, 3.0], 0.0), // a twin of 4: same front
        ];
        let refs: Vec<&Evaluation> = evals.iter().collect();
        assert_eq!(non_dominated_sort(&refs), vec![vec![0, 2, 4, 6], vec![1], vec![5], vec![3]]);
    }

    /// Brute force: a point's rank is one more than the largest rank among those dominating it.
    #[test]
    fn fast_sort_matches_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let evals: Vec<Evaluation> = (0..40)
                .map(|_| {
                    let v = if rng.random_bool(0.2) { rng.random_range(1..4) as f64 / 10.0 } else { 0.0 };
                    eval(&[rng.random_range(0..8) as f64, rng.random_range(0..8) as f64], v)
                })
                .collect();
            let refs: Vec<&Evaluation> = evals.iter().collect();
            let (rank, _) = rank_and_crowding(&refs);
            for (i, e) in evals.iter().enumerate() {
                let expected = evals
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| constrained_dominates(d, e))
                    .map(|(j, _)| rank[j] + 1)
                    .max()
                    .unwrap_or(0);
                assert_eq!(rank[i], expected);
            }
        }
    }

    #[test]
    fn crowding_gives_extremes_infinity_and_normalised_gaps() {
        let pts: [&[f64]; 4] = [&[0.0, 4.0], &[1.0, 2.0], &[3.0, 1.0], &[4.0, 0.0]];
        let d = crowding_distance(&pts);
        assert_eq!((d[0], d[3]), (f64::INFINITY, f64::INFINITY));
        assert_eq!(d[1], 3.0 / 4.0 + 3.0 / 4.0);
        assert_eq!(d[2], 3.0 / 4.0 + 2.0 / 4.0);
        let flat: [&[f64]; 3] = [&[1.0, 0.0], &[1.0, 1.0], &[1.0, 2.0]];
        assert_eq!(crowding_distance(&flat)[1], 0.0 + 2.0 / 2.0);
    }

    #[test]
    fn archive_keeps_exactly_the_non_dominated_points() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let points: Vec<Vec<f64>> =
            (0..200).map(|_| (0..3).map(|_| rng.random_range(0..10) as f64).collect()).collect();
        let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        let kept = non_dominated(&refs);
        for (i, p) in points.iter().enumerate() {
            let dominated = points.iter().any(|q| dominates(q, p));
            let earlier_twin = points[..i].iter().any(|q| q == p);
            assert_eq!(kept.contains(&i), !dominated && !earlier_twin, "point {i} {p:?}");
        }
    }
}
