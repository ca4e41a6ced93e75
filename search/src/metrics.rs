//! Quality indicators of a front beyond hypervolume ([`crate::hypervolume`]): IGD+ against a
//! reference front, and the replay of an evaluation trace that says how many evaluations a search
//! needed to reach a hypervolume.

use crate::pareto::Archive;
use crate::{Error, Evaluation, Result, hypervolume};

/// IGD+ (Ishibuchi, Masuda, Tanigaki and Nojima, "Modified distance calculation in generational
/// distance and inverted generational distance", EMO 2015): the mean over the points `z` of
/// `reference_front` of the distance from `z` to the nearest point `a` of `front`, counting
/// only the objectives in which `a` is worse than `z`:
/// `d⁺(z, a) = √Σₖ max(aₖ − zₖ, 0)²`. 0 when `front` covers the reference front; weakly
/// Pareto-compliant, unlike IGD. Values are minimised; normalise the objectives first when their
/// scales differ.
///
/// An empty `front` is infinitely far. Errors on an empty reference front, mismatched
/// dimensions or a non-finite value.
pub fn igd_plus<P: AsRef<[f64]>, Q: AsRef<[f64]>>(front: &[P], reference_front: &[Q]) -> Result<f64> {
    let Some(first) = reference_front.first() else {
        return Err(Error::Metric("the reference front is empty".into()));
    };
    let d = first.as_ref().len();
    let all = front.iter().map(AsRef::as_ref).chain(reference_front.iter().map(AsRef::as_ref));
    for p in all {
        if p.len() != d {
            return Err(Error::Metric(format!("point {p:?} has {} values, expected {d}", p.len())));
        }
        if p.iter().any(|v| !v.is_finite()) {
            return Err(Error::Metric(format!("point {p:?} is not finite")));
        }
    }
    if front.is_empty() {
        return Ok(f64::INFINITY);
    }
    let total: f64 = reference_front
        .iter()
        .map(|z| {
            front
                .iter()
                .map(|a| {
                    let squares: f64 = a.as_ref().iter().zip(z.as_ref()).map(|(a, z)| (a - z).max(0.0).powi(2)).sum();
                    squares.sqrt()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .sum();
    Ok(total / reference_front.len() as f64)
}

/// [`igd_plus`] with each objective divided by its range over `reference_front` (1 where the
/// range is 0), so that objectives of different scales (accuracy in [0, 1], latency in
/// milliseconds) weigh alike. Invariant under shifting an objective of both fronts, and under
/// scaling it by a positive factor where it varies over the reference front.
pub fn normalised_igd_plus<P: AsRef<[f64]>, Q: AsRef<[f64]>>(front: &[P], reference_front: &[Q]) -> Result<f64> {
    let Some(first) = reference_front.first() else {
        return Err(Error::Metric("the reference front is empty".into()));
    };
    let range: Vec<f64> = (0..first.as_ref().len())
        .map(|k| {
            let values = reference_front.iter().filter_map(|z| z.as_ref().get(k).copied());
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if hi - lo > 0.0 { hi - lo } else { 1.0 }
        })
        .collect();
    // A point of another length would be cut to the reference's by the scaling and pass
    // `igd_plus`'s check: keep its length, so that the check sees it.
    let scale = |p: &[f64]| -> Vec<f64> {
        if p.len() != range.len() {
            return p.to_vec();
        }
        p.iter().zip(&range).map(|(v, r)| v / r).collect()
    };
    let front: Vec<Vec<f64>> = front.iter().map(|p| scale(p.as_ref())).collect();
    let reference: Vec<Vec<f64>> = reference_front.iter().map(|z| scale(z.as_ref())).collect();
    igd_plus(&front, &reference)
}

/// The objective vectors of the feasible, non-dominated evaluations of `trace`.
pub fn feasible_front<'a>(trace: impl IntoIterator<Item = &'a Evaluation>) -> Vec<Vec<f64>> {
    let mut archive = Archive::default();
    for (i, e) in trace.into_iter().enumerate() {
        if e.is_feasible() {
            archive.insert(i, &e.objectives);
        }
    }
    archive.points().map(<[f64]>::to_vec).collect()
}

/// Hypervolume of the feasible front of `trace` after each of its evaluations: `curve[n - 1]`
/// is the hypervolume of the first `n` evaluations (a search's cache in evaluation order), for
/// plots. Recomputed whenever the front changes, which is cheap in 2-D and slow for long traces
/// in 3-D and more.
pub fn hypervolume_curve(trace: &[Evaluation], reference: &[f64]) -> Result<Vec<f64>> {
    let mut archive = Archive::default();
    let mut current = 0.0;
    let mut curve = Vec::with_capacity(trace.len());
    for (i, e) in trace.iter().enumerate() {
        if e.is_feasible() && archive.insert(i, &e.objectives) {
            let points: Vec<&[f64]> = archive.points().collect();
            current = hypervolume(&points, reference)?;
        }
        curve.push(current);
    }
    Ok(curve)
}

/// The number of evaluations after which the feasible front of `trace` reaches hypervolume
/// `target`, or `None` if it never does. The hypervolume of a prefix only grows with its length,
/// so a binary search needs `O(log n)` hypervolumes instead of one per evaluation.
pub fn evaluations_to_reach(trace: &[Evaluation], reference: &[f64], target: f64) -> Result<Option<usize>> {
    let reached = |n: usize| -> Result<bool> { Ok(hypervolume(&feasible_front(&trace[..n]), reference)? >= target) };
    if !reached(trace.len())? {
        return Ok(None);
    }
    // Invariant: the prefix of `high` evaluations reaches the target, that of `low` does not
    // (the empty prefix has hypervolume 0, which reaches only a target ≤ 0).
    let (mut low, mut high) = (0, trace.len());
    if reached(0)? {
        return Ok(Some(0));
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if reached(mid)? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(Some(high))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;

    #[test]
    fn igd_plus_by_hand() {
        let reference = [[0.0, 1.0], [1.0, 0.0]];
        assert_eq!(igd_plus(&reference, &reference).unwrap(), 0.0);
        // d⁺ to (0, 1) is 0.5; to (1, 0) it is 1 (only the second objective is worse).
        assert_eq!(igd_plus(&[[0.5, 1.0]], &reference).unwrap(), 0.75);
        // A point that dominates the reference front is at distance 0.
        assert_eq!(igd_plus(&[[0.0, 0.0]], &reference).unwrap(), 0.0);
        let empty: [[f64; 2]; 0] = [];
        assert_eq!(igd_plus(&empty, &reference).unwrap(), f64::INFINITY);
        assert!(igd_plus(&reference, &empty).is_err());
        assert!(igd_plus(&[[0.0]], &reference).is_err());
    }

    #[test]
    fn normalised_igd_plus_ignores_the_scale_of_an_objective() {
        let reference = [[0.0, 200.0], [1.0, 100.0], [2.0, 0.0]];
        let front = [[0.5, 250.0], [2.5, 50.0]];
        let scaled = |p: &[[f64; 2]]| p.iter().map(|q| [q[0] * 10.0 + 3.0, q[1] / 100.0]).collect::<Vec<_>>();
        let plain = normalised_igd_plus(&front, &reference).unwrap();
        let other = normalised_igd_plus(&scaled(&front), &scaled(&reference)).unwrap();
        assert!((plain - other).abs() < 1e-12, "{plain} against {other}");
        // By hand in units of the ranges (2 and 200): the reference is (0, 1), (0.5, 0.5),
        // (1, 0), the front (0.25, 1.25), (1.25, 0.25); d⁺ of the reference points is
        // √(0.25² + 0.25²) (to the first), 0.75 (to either) and √(0.25² + 0.25²) (to the second).
        let corner = (2.0f64 * 0.0625).sqrt();
        let by_hand = (corner + 0.75 + corner) / 3.0;
        assert!((plain - by_hand).abs() < 1e-12, "{plain} against {by_hand}");
        // A constant objective keeps its units instead of dividing by zero.
        let flat = [[1.0, 5.0], [2.0, 5.0]];
        assert_eq!(normalised_igd_plus(&flat, &flat).unwrap(), 0.0);
        // A point with more objectives than the reference is an error, not cut to fit.
        let err = normalised_igd_plus(&[vec![0.5, 150.0, 1.0]], &reference).unwrap_err().to_string();
        assert!(err.contains("has 3 values, expected 2"), "{err}");
    }

    #[test]
    fn igd_plus_rewards_domination() {
        let reference = [[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]];
        let worse = [[0.5, 2.5], [1.5, 1.5], [2.5, 0.5]];
        let better = [[0.25, 2.25], [1.25, 1.25], [2.25, 0.25]];
        assert!(igd_plus(&better, &reference).unwrap() < igd_plus(&worse, &reference).unwrap());
    }

    #[test]
    fn curve_counts_feasible_evaluations_only() {
        let e = |o: [f64; 2], v: f64| Evaluation { objectives: o.to_vec(), violation: v };
        let trace = [e([0.0, 0.0], 1.0), e([1.0, 1.0], 0.0), e([2.0, 2.0], 0.0), e([0.0, 1.0], 0.0)];
        let curve = hypervolume_curve(&trace, &[2.0, 2.0]).unwrap();
        assert_eq!(curve, vec![0.0, 1.0, 1.0, 2.0]);
        assert_eq!(evaluations_to_reach(&trace, &[2.0, 2.0], 1.5).unwrap(), Some(4));
        assert_eq!(evaluations_to_reach(&trace, &[2.0, 2.0], 2.5).unwrap(), None);
        assert_eq!(evaluations_to_reach(&trace, &[2.0, 2.0], 1.0).unwrap(), Some(2));
        assert_eq!(evaluations_to_reach(&trace, &[2.0, 2.0], 0.0).unwrap(), Some(0));
        assert_eq!(feasible_front(&trace), vec![vec![0.0, 1.0]]);
    }

    #[test]
    fn binary_search_agrees_with_the_curve() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let trace: Vec<Evaluation> = (0..300)
            .map(|_| Evaluation {
                objectives: (0..3).map(|_| rng.random::<f64>()).collect(),
                violation: if rng.random_bool(0.2) { 0.5 } else { 0.0 },
            })
            .collect();
        let reference = [1.0; 3];
        let curve = hypervolume_curve(&trace, &reference).unwrap();
        for share in [0.1, 0.5, 0.9, 0.99, 1.0] {
            let target = share * curve[curve.len() - 1];
            let linear = curve.iter().position(|&hv| hv >= target).map(|i| i + 1);
            assert_eq!(evaluations_to_reach(&trace, &reference, target).unwrap(), linear, "share {share}");
        }
    }
}
