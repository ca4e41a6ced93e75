//! The genes of an arch ([`Choice`]) and the operators over them: sampling, mutation and
//! crossover.
//!
//! As in once-for-all, the encoding owns the operators and the search only calls them. All three
//! walk the genes through one function (`SearchSpace::assemble`) in the order of
//! [`SearchSpace::genes`] and draw from the caller's RNG, so a seeded RNG reproduces every arch
//! of a search.

use std::fmt;

use rand::Rng;

use super::SearchSpace;
use crate::Arch;

/// One gene of the arch encoding: a decision the search makes. Its [`Display`](fmt::Display)
/// is the field name that errors use (`layers`, `hidden`, `heads[2]`, `ffn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Choice {
    /// Number of layers.
    Layers,
    /// Width of the residual stream.
    Hidden,
    /// Heads of layer `i` (`Some(i)`), or of every layer at once (`None`) in a space that is
    /// not per-layer.
    Heads(Option<usize>),
    /// FFN width of layer `i` (`Some(i)`), or of every layer at once (`None`).
    Ffn(Option<usize>),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Layers => f.write_str("layers"),
            Choice::Hidden => f.write_str("hidden"),
            Choice::Heads(None) => f.write_str("heads"),
            Choice::Heads(Some(i)) => write!(f, "heads[{i}]"),
            Choice::Ffn(None) => f.write_str("ffn"),
            Choice::Ffn(Some(i)) => write!(f, "ffn[{i}]"),
        }
    }
}

impl Arch {
    /// The value of one gene, or `None` when the arch has no such gene: a layer it does not
    /// have, or an all-layers gene (`Heads(None)`, `Ffn(None)`) whose layers differ.
    pub fn gene(&self, choice: Choice) -> Option<usize> {
        let layer = |list: &[usize], i: usize| {
            if i < self.layers { list.get(i).copied() } else { None }
        };
        let shared = |list: &[usize]| match list.first() {
            Some(&first) if list.len() == self.layers && list.iter().all(|&v| v == first) => Some(first),
            _ => None,
        };
        match choice {
            Choice::Layers => Some(self.layers),
            Choice::Hidden => Some(self.hidden),
            Choice::Heads(Some(i)) => layer(&self.heads, i),
            Choice::Ffn(Some(i)) => layer(&self.ffn, i),
            Choice::Heads(None) => shared(&self.heads),
            Choice::Ffn(None) => shared(&self.ffn),
        }
    }
}

impl SearchSpace {
    /// The allowed values of a gene.
    pub fn options(&self, choice: Choice) -> &[usize] {
        match choice {
            Choice::Layers => &self.layers,
            Choice::Hidden => &self.hidden,
            Choice::Heads(_) => &self.heads,
            Choice::Ffn(_) => &self.ffn,
        }
    }

    /// The genes of an arch with `layers` layers, in the order the operators draw them:
    /// layers, hidden, then heads and FFN of layer 0, 1, … (or of all layers at once).
    pub fn genes(&self, layers: usize) -> Vec<Choice> {
        let mut genes = vec![Choice::Layers, Choice::Hidden];
        if self.per_layer {
            genes.extend((0..layers).flat_map(|i| [Choice::Heads(Some(i)), Choice::Ffn(Some(i))]));
        } else {
            genes.extend([Choice::Heads(None), Choice::Ffn(None)]);
        }
        genes
    }

    /// A uniformly random arch: each gene drawn uniformly from its choices.
    pub fn sample(&self, rng: &mut impl Rng) -> Arch {
        self.assemble(rng, |_, options, rng| pick(options, rng))
    }

    /// A mutant of `arch`: each gene is redrawn from its choices with probability `prob`
    /// (clamped to `[0, 1]`; NaN counts as 0), else kept. Genes the arch lacks (the layers
    /// added when the layer count grows) or holds outside the space are always drawn, so the
    /// result lies inside the space; with `prob = 0` an arch of the space comes back unchanged.
    pub fn mutate(&self, arch: &Arch, prob: f64, rng: &mut impl Rng) -> Arch {
        let prob = if prob.is_nan() { 0.0 } else { prob.clamp(0.0, 1.0) };
        self.assemble(rng, |choice, options, rng| match arch.gene(choice) {
            Some(value) if options.contains(&value) && !rng.random_bool(prob) => value,
            _ => pick(options, rng),
        })
    }

    /// A child of `a` and `b` by uniform crossover: each gene comes from either parent with equal
    /// chance. A gene that only one parent holds inside the space (a layer beyond the other's
    /// depth, or a value outside the space in the other) comes from that parent; one that
    /// neither does is drawn. The result lies inside the space.
    pub fn crossover(&self, a: &Arch, b: &Arch, rng: &mut impl Rng) -> Arch {
        self.assemble(rng, |choice, options, rng| {
            let allowed = |arch: &Arch| arch.gene(choice).filter(|v| options.contains(v));
            match (allowed(a), allowed(b)) {
                (Some(x), Some(y)) => {
                    if rng.random_bool(0.5) {
                        x
                    } else {
                        y
                    }
                }
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => pick(options, rng),
            }
        })
    }

    /// Builds an arch gene by gene in the order of [`SearchSpace::genes`], asking `decide` for
    /// each gene's value given its allowed options.
    fn assemble<R: Rng>(&self, rng: &mut R, mut decide: impl FnMut(Choice, &[usize], &mut R) -> usize) -> Arch {
        let layers = decide(Choice::Layers, &self.layers, rng);
        let hidden = decide(Choice::Hidden, &self.hidden, rng);
        let mut arch = self.arch(layers, hidden, 0, 0);
        if self.per_layer {
            for i in 0..layers {
                arch.heads[i] = decide(Choice::Heads(Some(i)), &self.heads, rng);
                arch.ffn[i] = decide(Choice::Ffn(Some(i)), &self.ffn, rng);
            }
        } else {
            arch.heads.fill(decide(Choice::Heads(None), &self.heads, rng));
            arch.ffn.fill(decide(Choice::Ffn(None), &self.ffn, rng));
        }
        arch
    }
}

/// A uniformly drawn option; 0 (an invalid value) for an empty list, which `validate` refuses.
fn pick(options: &[usize], rng: &mut impl Rng) -> usize {
    if options.is_empty() {
        return 0;
    }
    options[rng.random_range(0..options.len())]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn operators_stay_inside_the_space() {
        let spaces = [SearchSpace::default(), SearchSpace { per_layer: false, ..SearchSpace::default() }];
        for space in &spaces {
            for seed in 0..1000 {
                let mut rng = rng(seed);
                let a = space.sample(&mut rng);
                let b = space.sample(&mut rng);
                let prob = (seed % 5) as f64 / 4.0;
                let mutant = space.mutate(&a, prob, &mut rng);
                let child = space.crossover(&a, &mutant, &mut rng);
                for arch in [&a, &b, &mutant, &child, &space.crossover(&child, &b, &mut rng)] {
                    space.contains(arch).unwrap_or_else(|e| panic!("seed {seed}: {arch}: {e}"));
                    assert!(space.per_layer || arch.is_uniform(), "seed {seed}: {arch}");
                    assert_eq!(&Arch::parse(&arch.to_string()).unwrap(), arch);
                }
            }
        }
    }

    #[test]
    fn operators_repair_archs_outside_the_space() {
        let space = SearchSpace::default();
        let foreign = Arch::uniform(12, 768, 16, 3072); // Every gene outside.
        for seed in 0..100 {
            let mut rng = rng(seed);
            space.contains(&space.mutate(&foreign, 0.0, &mut rng)).unwrap();
            space.contains(&space.crossover(&foreign, &foreign, &mut rng)).unwrap();
            let inside = space.sample(&mut rng);
            // Only `inside` offers valid genes, so the child is `inside` itself.
            assert_eq!(space.crossover(&foreign, &inside, &mut rng), inside);
        }
    }

    #[test]
    fn seeded_operators_are_deterministic() {
        let space = SearchSpace::default();
        let run = |seed| {
            let mut rng = rng(seed);
            let a = space.sample(&mut rng);
            let b = space.sample(&mut rng);
            let m = space.mutate(&a, 0.3, &mut rng);
            let c = space.crossover(&a, &b, &mut rng);
            (a, b, m, c)
        };
        for seed in 0..50 {
            assert_eq!(run(seed), run(seed));
        }
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn mutation_probability_bounds() {
        let space = SearchSpace::default();
        let mut changed = 0;
        for seed in 0..200 {
            let mut rng = rng(seed);
            let arch = space.sample(&mut rng);
            assert_eq!(space.mutate(&arch, 0.0, &mut rng), arch);
            assert_eq!(space.mutate(&arch, f64::NAN, &mut rng), arch);
            if space.mutate(&arch, 1.0, &mut rng) != arch {
                changed += 1;
            }
        }
        assert!(changed >= 190, "prob 1 changed only {changed} of 200");
    }

    #[test]
    fn growing_layers_draws_the_new_layers() {
        let space = SearchSpace { layers: vec![1, 6], ..SearchSpace::default() };
        let short = space.smallest();
        let mut new_heads = Vec::new();
        for seed in 0..200 {
            let mutant = space.mutate(&short, 0.5, &mut rng(seed));
            space.contains(&mutant).unwrap();
            if mutant.layers == 6 {
                new_heads.extend_from_slice(&mutant.heads[1..]);
            }
        }
        new_heads.sort_unstable();
        new_heads.dedup();
        assert_eq!(new_heads, space.heads, "new layers' heads are drawn from every choice");
    }

    #[test]
    fn seed_zero_stream_is_pinned() {
        // Pins the draw order of `sample`: changing it changes every seeded search, so update
        // this only on purpose.
        let space = SearchSpace::default();
        let mut rng = rng(0);
        let drawn: Vec<String> = (0..3).map(|_| space.sample(&mut rng).to_string()).collect();
        assert_eq!(
            drawn,
            [
                "L4-H320-A[10,8,8,4]-F[768,1280,256,1536]-D32",
                "L4-H256-A[6,10,6,12]-F[1280,1536,1280,256]-D32",
                "L3-H384-A[12,6,8]-F[1280,1024,768]-D32",
            ]
        );
    }

    #[test]
    fn crossover_of_twins_is_the_twin() {
        let space = SearchSpace::default();
        for seed in 0..100 {
            let mut rng = rng(seed);
            let arch = space.sample(&mut rng);
            assert_eq!(space.crossover(&arch, &arch, &mut rng), arch);
        }
    }

    #[test]
    fn sample_covers_every_choice() {
        let space = SearchSpace::default();
        let mut rng = rng(7);
        let archs: Vec<Arch> = (0..2000).map(|_| space.sample(&mut rng)).collect();
        for l in &space.layers {
            assert!(archs.iter().any(|a| a.layers == *l), "layers {l}");
        }
        for h in &space.hidden {
            assert!(archs.iter().any(|a| a.hidden == *h), "hidden {h}");
        }
        for (a, f) in space.heads.iter().zip(&space.ffn) {
            assert!(archs.iter().any(|arch| arch.heads.contains(a)), "heads {a}");
            assert!(archs.iter().any(|arch| arch.ffn.contains(f)), "ffn {f}");
        }
    }

    #[test]
    fn genes_and_display() {
        let space = SearchSpace::default();
        let genes = space.genes(2);
        assert_eq!(genes.len(), 6);
        let names: Vec<String> = genes.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["layers", "hidden", "heads[0]", "ffn[0]", "heads[1]", "ffn[1]"]);
        assert_eq!(SearchSpace { per_layer: false, ..space }.genes(5).len(), 4);
        let arch = Arch { heads: vec![4, 2], ..Arch::uniform(2, 64, 1, 128) };
        assert_eq!((arch.gene(Choice::Heads(Some(1))), arch.gene(Choice::Heads(Some(2)))), (Some(2), None));
        assert_eq!((arch.gene(Choice::Heads(None)), arch.gene(Choice::Ffn(None))), (None, Some(128)));
    }
}
