//! The steps of NSGA-II between evaluations: drawing distinct archs, binary tournament with the
//! crowded comparison, variation through the typed operators of [`SearchSpace`], and elitist
//! (μ+λ) survival. Every random choice draws from the caller's RNG on the calling thread.

use std::collections::HashSet;

use arch::{Arch, SearchSpace};
use rand::Rng;

use crate::Evaluation;
use crate::pareto::{crowding_distance, non_dominated_sort};

/// Up to `count` distinct archs drawn by `draw`, each redrawn at most `retries` times when it
/// repeats one already drawn or one that is `taken`; bounded, so a space smaller than `count`
/// gives fewer archs instead of looping. A slot whose draws all repeat stays empty.
pub(crate) fn distinct<R: Rng>(
    count: usize,
    retries: usize,
    taken: impl Fn(&Arch) -> bool,
    rng: &mut R,
    mut draw: impl FnMut(&mut R) -> Arch,
) -> Vec<Arch> {
    // Lookup only: the set decides which draws to repeat, never an order.
    let mut seen: HashSet<Arch> = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        for _ in 0..=retries {
            let arch = draw(rng);
            if !taken(&arch) && seen.insert(arch.clone()) {
                out.push(arch);
                break;
            }
        }
    }
    out
}

/// Rank and crowding of the members of a population, for the crowded comparison.
pub(crate) struct Fitness {
    pub rank: Vec<usize>,
    pub crowding: Vec<f64>,
}

impl Fitness {
    /// Binary tournament (NSGA-II): two members drawn with replacement; the lower rank wins,
    /// then the larger crowding distance, then the first drawn.
    pub fn tournament(&self, rng: &mut impl Rng) -> usize {
        let n = self.rank.len();
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        let b_wins =
            self.rank[b] < self.rank[a] || (self.rank[b] == self.rank[a] && self.crowding[b] > self.crowding[a]);
        if b_wins { b } else { a }
    }
}

/// One child: two tournament winners, crossed over with probability `crossover_prob` (else the
/// first winner is copied), then mutated gene by gene with probability `mutation_prob`.
pub(crate) fn breed(
    space: &SearchSpace,
    members: &[&Arch],
    fitness: &Fitness,
    crossover_prob: f64,
    mutation_prob: f64,
    rng: &mut impl Rng,
) -> Arch {
    let a = members[fitness.tournament(rng)];
    let b = members[fitness.tournament(rng)];
    let child = if rng.random_bool(crossover_prob) { space.crossover(a, b, rng) } else { a.clone() };
    space.mutate(&child, mutation_prob, rng)
}

/// Elitist survival: the positions in `evals` of the `keep` members that NSGA-II keeps, whole
/// fronts first (constraint domination), the last front cut by descending crowding distance
/// (ties keep the lower position). Returned in the order kept.
pub(crate) fn survive(evals: &[&Evaluation], keep: usize) -> Vec<usize> {
    let mut kept = Vec::with_capacity(keep);
    for front in non_dominated_sort(evals) {
        let room = keep - kept.len();
        if front.len() <= room {
            kept.extend(front);
            if kept.len() == keep {
                break;
            }
            continue;
        }
        let points: Vec<&[f64]> = front.iter().map(|&i| evals[i].objectives.as_slice()).collect();
        let distance = crowding_distance(&points);
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| distance[b].total_cmp(&distance[a]));
        kept.extend(order.into_iter().take(room).map(|k| front[k]));
        break;
    }
    kept
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::testing::eval;

    #[test]
    fn survival_keeps_fronts_then_the_least_crowded() {
        let evals = [
            eval(&[0.0, 4.0], 0.0),
            eval(&[1.0, 3.9], 0.0), // crowded, between 0 and 2
            eval(&[1.1, 3.8], 0.0), // crowded too, slightly less
            eval(&[4.0, 0.0], 0.0),
            eval(&[5.0, 5.0], 0.0), // front 1
            eval(&[0.0, 0.0], 1.0), // infeasible: last
        ];
        let refs: Vec<&Evaluation> = evals.iter().collect();
        assert_eq!(survive(&refs, 6), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(survive(&refs, 5), vec![0, 1, 2, 3, 4]);
        // Front 0 has four members; keeping three drops the most crowded interior one.
        let kept = survive(&refs, 3);
        assert_eq!(kept.len(), 3);
        assert!(kept.contains(&0) && kept.contains(&3), "extremes survive: {kept:?}");
        assert_eq!(survive(&refs, 0), Vec::<usize>::new());
    }

    #[test]
    fn tournament_prefers_rank_then_crowding() {
        let fitness = Fitness { rank: vec![0, 1, 0], crowding: vec![1.0, f64::INFINITY, 2.0] };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut wins = [0; 3];
        for _ in 0..3000 {
            wins[fitness.tournament(&mut rng)] += 1;
        }
        // Of the nine ordered pairs, member 1 wins only (1, 1), member 0 wins (0, 0), (0, 1) and
        // (1, 0), member 2 the other five.
        assert!(wins[2] > wins[0] && wins[0] > wins[1], "{wins:?}");
        assert!((250..420).contains(&wins[1]), "{wins:?}");
    }

    #[test]
    fn distinct_is_bounded_on_a_tiny_space() {
        let space =
            SearchSpace { layers: vec![1], hidden: vec![64], heads: vec![1, 2], ffn: vec![64], ..Default::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let archs = distinct(10, 20, |_| false, &mut rng, |r| space.sample(r));
        assert_eq!(archs.len(), 2, "the space holds two archs");
    }
}
