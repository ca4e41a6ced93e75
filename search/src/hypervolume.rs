//! Exact hypervolume: the measure of the region that a set of points (minimised) dominates and
//! that a reference point bounds.
//!
//! Two dimensions use the sweep: sorted by the first objective, each point adds the strip
//! between its second objective and the best one seen before it. Three and more use slicing
//! (HSO: While, Hingston, Barone and Huband, "A faster algorithm for calculating hypervolume",
//! IEEE TEVC 2006): sorted by the last objective, the space between two consecutive values is
//! a slab whose volume is its depth times the (d-1)-dimensional hypervolume of the points at or
//! below it, computed by the same recursion down to the sweep. The result is exact up to
//! floating-point rounding; the cost is `O(n^(d-1) log n)`, ample for fronts of a few hundred
//! points in 3 or 4 objectives.

use crate::pareto::dominates;
use crate::{Error, Result};

/// Hypervolume of `points` with respect to `reference`. Points that do not strictly dominate the
/// reference (some coordinate ≥ the reference's) add nothing; dominated and repeated points are
/// allowed.
///
/// Errors when a point's dimension differs from the reference's, the reference is empty, or a
/// value is not finite.
pub fn hypervolume<P: AsRef<[f64]>>(points: &[P], reference: &[f64]) -> Result<f64> {
    let d = reference.len();
    if d == 0 {
        return Err(Error::Metric("the reference point is empty".into()));
    }
    if reference.iter().any(|v| !v.is_finite()) {
        return Err(Error::Metric(format!("reference point {reference:?} is not finite")));
    }
    let mut inside: Vec<&[f64]> = Vec::with_capacity(points.len());
    for p in points {
        let p = p.as_ref();
        if p.len() != d {
            return Err(Error::Metric(format!("point {p:?} has {} values, the reference {d}", p.len())));
        }
        if p.iter().any(|v| !v.is_finite()) {
            return Err(Error::Metric(format!("point {p:?} is not finite")));
        }
        if p.iter().zip(reference).all(|(x, r)| x < r) {
            inside.push(p);
        }
    }
    Ok(volume(&mut inside, reference, d))
}

/// Hypervolume over the first `d` coordinates of points that all strictly dominate `reference`.
fn volume(points: &mut [&[f64]], reference: &[f64], d: usize) -> f64 {
    match (points.len(), d) {
        (0, _) => 0.0,
        (_, 1) => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        (_, 2) => sweep(points, reference),
        _ => slice(points, reference, d),
    }
}

/// Two-dimensional sweep; sorts `points`.
fn sweep(points: &mut [&[f64]], reference: &[f64]) -> f64 {
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut best = reference[1];
    let mut area = 0.0;
    for p in points.iter() {
        if p[1] < best {
            area += (reference[0] - p[0]) * (best - p[1]);
            best = p[1];
        }
    }
    area
}

/// Slicing along coordinate `d - 1`; sorts `points`.
fn slice(points: &mut [&[f64]], reference: &[f64], d: usize) -> f64 {
    let last = d - 1;
    points.sort_by(|a, b| a[last].total_cmp(&b[last]));
    let project = |p: &[f64]| -> Vec<f64> { p[..last].to_vec() };
    // The points at or below the current slab, projected and kept mutually non-dominated: a
    // dominated projection adds nothing to the slab's area.
    let mut active: Vec<Vec<f64>> = Vec::new();
    let mut total = 0.0;
    for (i, p) in points.iter().enumerate() {
        let q = project(p);
        if !active.iter().any(|a| *a == q || dominates(a, &q)) {
            active.retain(|a| !dominates(&q, a));
            active.push(q);
        }
        let top = points.get(i + 1).map_or(reference[last], |next| next[last]);
        let depth = top - p[last];
        if depth > 0.0 {
            let mut slab: Vec<&[f64]> = active.iter().map(Vec::as_slice).collect();
            total += depth * volume(&mut slab, reference, last);
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Inclusion–exclusion over the boxes `[p, reference]`: the union's volume is the alternating
    /// sum over non-empty subsets of the volume of their intersection, a box from the
    /// component-wise maximum to the reference. Exact, exponential, independent of the code
    /// under test.
    fn inclusion_exclusion(points: &[Vec<f64>], reference: &[f64]) -> f64 {
        let n = points.len();
        let mut total = 0.0;
        for mask in 1u32..(1 << n) {
            let mut corner = vec![f64::NEG_INFINITY; reference.len()];
            for (i, p) in points.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    for (c, v) in corner.iter_mut().zip(p) {
                        *c = c.max(*v);
                    }
                }
            }
            let volume: f64 = corner.iter().zip(reference).map(|(c, r)| (r - c).max(0.0)).product();
            total += if mask.count_ones() % 2 == 1 { volume } else { -volume };
        }
        total
    }

    /// Counts the unit cells of an integer grid that some point dominates: exact for integer
    /// points and reference.
    fn grid_cells(points: &[Vec<f64>], reference: &[f64]) -> f64 {
        let d = reference.len();
        let sides: Vec<i64> = reference.iter().map(|&r| r as i64).collect();
        let cells: i64 = sides.iter().product();
        let mut count = 0;
        for flat in 0..cells {
            let mut rest = flat;
            let cell: Vec<f64> = (0..d)
                .map(|k| {
                    let c = rest % sides[k];
                    rest /= sides[k];
                    c as f64
                })
                .collect();
            if points.iter().any(|p| p.iter().zip(&cell).all(|(x, c)| x <= c)) {
                count += 1;
            }
        }
        count as f64
    }

    fn random_points(rng: &mut ChaCha8Rng, n: usize, d: usize, grid: Option<u32>) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| match grid {
                        Some(g) => rng.random_range(0..g) as f64,
                        None => rng.random::<f64>(),
                    })
                    .collect()
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn known_values() {
        assert_eq!(hypervolume(&[[1.0, 1.0]], &[3.0, 2.0]).unwrap(), 2.0);
        // Two boxes of area 3 overlapping in 1.
        assert_eq!(hypervolume(&[[0.0, 2.0], [2.0, 0.0]], &[3.0, 3.0]).unwrap(), 5.0);
        assert_eq!(hypervolume(&[[1.0, 1.0, 1.0]], &[2.0, 3.0, 4.0]).unwrap(), 6.0);
        assert_eq!(hypervolume(&[[0.5]], &[2.0]).unwrap(), 1.5);
        let empty: [[f64; 2]; 0] = [];
        assert_eq!(hypervolume(&empty, &[1.0, 1.0]).unwrap(), 0.0);
        // On or beyond the reference: nothing.
        assert_eq!(hypervolume(&[[3.0, 0.0], [0.0, 5.0]], &[3.0, 3.0]).unwrap(), 0.0);
    }

    #[test]
    fn matches_inclusion_exclusion_on_small_sets() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for d in 2..=5 {
            for n in 1..=9 {
                let points = random_points(&mut rng, n, d, None);
                let reference = vec![1.0; d];
                let exact = inclusion_exclusion(&points, &reference);
                let got = hypervolume(&points, &reference).unwrap();
                assert!(close(got, exact), "d {d} n {n}: {got} vs {exact}");
            }
        }
    }

    #[test]
    fn matches_grid_counting_with_ties() {
        // Integer points repeat coordinates often, which exercises equal slabs and twins.
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for d in 2..=4 {
            for _ in 0..20 {
                let points = random_points(&mut rng, 30, d, Some(7));
                let reference = vec![8.0; d];
                assert_eq!(hypervolume(&points, &reference).unwrap(), grid_cells(&points, &reference), "d {d}");
            }
        }
    }

    #[test]
    fn dominated_points_change_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let points = random_points(&mut rng, 60, 3, None);
        let reference = [1.0; 3];
        let all = hypervolume(&points, &reference).unwrap();
        let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        let front: Vec<&[f64]> = crate::pareto::non_dominated(&refs).into_iter().map(|i| refs[i]).collect();
        assert!(close(hypervolume(&front, &reference).unwrap(), all));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(hypervolume(&[[1.0, 1.0]], &[]).is_err());
        assert!(hypervolume(&[[1.0]], &[2.0, 2.0]).is_err());
        assert!(hypervolume(&[[f64::NAN, 1.0]], &[2.0, 2.0]).is_err());
        assert!(hypervolume(&[[1.0, 1.0]], &[f64::INFINITY, 2.0]).is_err());
    }
}
