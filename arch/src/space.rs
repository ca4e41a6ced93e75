//! The search space: which architectures a search may visit, their validation, membership and
//! size. The genes and the genetic operators live in the `genes` submodule.
//!
//! An arch is encoded by its genes ([`Choice`]): the layer count, the hidden width, and the
//! heads and FFN width of each layer (one gene each for all layers when the space is not
//! per-layer).

mod genes;

pub use genes::Choice;

use serde::{Deserialize, Serialize};

use crate::{
    Arch, Error, Result, TaskHead, default_head_dim, default_max_positions, default_seq_len, default_type_vocab,
    default_vocab,
};

/// The architectures a search may visit: a list of choices per gene, and the fields every arch
/// of the space shares.
///
/// Read from RON (unknown fields are refused; omitted base fields take BERT's defaults, as in
/// [`Arch`]), then call [`SearchSpace::validate`]: the operators assume a valid space, and on an
/// invalid one (an empty list) return archs that fail [`Arch::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// Choices for the number of layers; non-empty, ascending, no zeros (as all choice lists).
    pub layers: Vec<usize>,
    /// Choices for the residual width.
    pub hidden: Vec<usize>,
    /// Choices for the heads of a layer.
    pub heads: Vec<usize>,
    /// Choices for the FFN width of a layer.
    pub ffn: Vec<usize>,
    /// Width of one attention head, fixed for the space.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// Whether heads and FFN width are chosen per layer (`true`, the default) or once for all
    /// layers.
    #[serde(default = "default_per_layer")]
    pub per_layer: bool,
    /// Rows of the word-embedding table of every arch.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Rows of the position-embedding table of every arch.
    #[serde(default = "default_max_positions")]
    pub max_positions: usize,
    /// Rows of the token-type table of every arch.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Sequence length every arch is compiled and measured for.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// The head on top of every arch.
    #[serde(default)]
    pub task: TaskHead,
}

fn default_per_layer() -> bool {
    true
}

/// The space bounded by the teacher, all-MiniLM-L6-v2 (`L6-H384-A12-F1536-D32`), which is its
/// [largest](SearchSpace::largest) arch.
impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            layers: vec![1, 2, 3, 4, 5, 6],
            hidden: vec![128, 192, 256, 320, 384],
            heads: vec![2, 4, 6, 8, 10, 12],
            ffn: vec![256, 512, 768, 1024, 1280, 1536],
            head_dim: 32,
            per_layer: true,
            vocab_size: default_vocab(),
            max_positions: default_max_positions(),
            type_vocab_size: default_type_vocab(),
            seq_len: default_seq_len(),
            task: TaskHead::Embedding,
        }
    }
}

impl SearchSpace {
    /// Checks that every choice list is non-empty, strictly ascending and free of zeros, and that
    /// the base fields are possible for an arch; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let lists = [("layers", &self.layers), ("hidden", &self.hidden), ("heads", &self.heads), ("ffn", &self.ffn)];
        for (field, list) in lists {
            let reason = if list.is_empty() {
                "must list at least one choice".to_string()
            } else if list.contains(&0) {
                format!("must not contain 0, got {list:?}")
            } else if !list.windows(2).all(|w| w[0] < w[1]) {
                format!("must be sorted ascending without repeats, got {list:?}")
            } else {
                continue;
            };
            return Err(Error::InvalidSpace { field: field.into(), reason });
        }
        self.smallest().validate().map_err(|e| match e {
            Error::InvalidField { field, reason } => Error::InvalidSpace { field, reason },
            other => other,
        })
    }

    /// `Ok` when `arch` is valid and every gene and base field is one the space allows; else
    /// the arch's own [`Error::InvalidField`], or [`Error::OutsideSpace`] naming the first field
    /// outside, its value and the allowed choices.
    pub fn contains(&self, arch: &Arch) -> Result<()> {
        arch.validate()?;
        for choice in self.genes(arch.layers) {
            let options = self.options(choice);
            match arch.gene(choice) {
                Some(value) if options.contains(&value) => {}
                Some(value) => {
                    return Err(Error::OutsideSpace(format!("`{choice}` is {value}; the space allows {options:?}")));
                }
                None => {
                    let list = if matches!(choice, Choice::Heads(_)) { &arch.heads } else { &arch.ffn };
                    return Err(Error::OutsideSpace(format!(
                        "`{choice}` differs between layers ({list:?}); the space chooses one value for all layers"
                    )));
                }
            }
        }
        let fixed = [
            ("head_dim", arch.head_dim, self.head_dim),
            ("vocab_size", arch.vocab_size, self.vocab_size),
            ("max_positions", arch.max_positions, self.max_positions),
            ("type_vocab_size", arch.type_vocab_size, self.type_vocab_size),
            ("seq_len", arch.seq_len, self.seq_len),
        ];
        for (field, value, wanted) in fixed {
            if value != wanted {
                return Err(Error::OutsideSpace(format!("`{field}` is {value}; the space fixes it at {wanted}")));
            }
        }
        if arch.task != self.task {
            return Err(Error::OutsideSpace(format!(
                "`task` is {:?}; the space fixes it at {:?}",
                arch.task, self.task
            )));
        }
        Ok(())
    }

    /// The arch with the largest choice of every gene.
    pub fn largest(&self) -> Arch {
        let max = |list: &[usize]| list.last().copied().unwrap_or(0);
        self.arch(max(&self.layers), max(&self.hidden), max(&self.heads), max(&self.ffn))
    }

    /// The arch with the smallest choice of every gene.
    pub fn smallest(&self) -> Arch {
        let min = |list: &[usize]| list.first().copied().unwrap_or(0);
        self.arch(min(&self.layers), min(&self.hidden), min(&self.heads), min(&self.ffn))
    }

    /// Number of distinct archs in the space: `Σ_L |hidden| · (|heads| · |ffn|)^L` over the
    /// layer choices `L` when per-layer, else `|layers| · |hidden| · |heads| · |ffn|`. As `f64`
    /// because per-layer spaces exceed `u64` quickly.
    pub fn cardinality(&self) -> f64 {
        let per_layer = (self.heads.len() * self.ffn.len()) as f64;
        let hidden = self.hidden.len() as f64;
        if self.per_layer {
            self.layers.iter().map(|&l| hidden * per_layer.powf(l as f64)).sum()
        } else {
            self.layers.len() as f64 * hidden * per_layer
        }
    }

    /// A uniform arch of the space.
    fn arch(&self, layers: usize, hidden: usize, heads: usize, ffn: usize) -> Arch {
        Arch {
            layers,
            hidden,
            heads: vec![heads; layers],
            ffn: vec![ffn; layers],
            head_dim: self.head_dim,
            vocab_size: self.vocab_size,
            max_positions: self.max_positions,
            type_vocab_size: self.type_vocab_size,
            seq_len: self.seq_len,
            task: self.task,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;

    fn space_field(space: &SearchSpace) -> String {
        match space.validate() {
            Err(Error::InvalidSpace { field, .. }) => field,
            other => panic!("expected InvalidSpace, got {other:?}"),
        }
    }

    fn outside(space: &SearchSpace, arch: &Arch) -> String {
        match space.contains(arch) {
            Err(Error::OutsideSpace(message)) => message,
            other => panic!("expected OutsideSpace for {arch}, got {other:?}"),
        }
    }

    #[test]
    fn default_space_is_bounded_by_the_teacher() {
        let space = SearchSpace::default();
        space.validate().unwrap();
        assert_eq!(space.largest(), Arch::parse("L6-H384-A12-F1536-D32").unwrap());
        assert_eq!(space.smallest(), Arch::parse("L1-H128-A2-F256-D32").unwrap());
        space.contains(&space.largest()).unwrap();
        space.contains(&space.smallest()).unwrap();
    }

    #[test]
    fn invalid_spaces_name_the_field() {
        type Edit = fn(&mut SearchSpace);
        let cases: [(Edit, &str); 7] = [
            (|s| s.layers.clear(), "layers"),
            (|s| s.hidden = vec![256, 128], "hidden"),
            (|s| s.heads = vec![2, 2], "heads"),
            (|s| s.ffn = vec![0, 256], "ffn"),
            (|s| s.head_dim = 0, "head_dim"),
            (|s| s.seq_len = 1024, "seq_len"),
            (|s| s.task = TaskHead::Classification { labels: 1 }, "task.labels"),
        ];
        for (edit, field) in cases {
            let mut space = SearchSpace::default();
            edit(&mut space);
            assert_eq!(space_field(&space), field);
        }
    }

    #[test]
    fn ron_fills_defaults_and_refuses_unknown_fields() {
        let text = "(layers: [1, 2], hidden: [64], heads: [1, 2], ffn: [128], per_layer: false)";
        let space: SearchSpace = ron::from_str(text).unwrap();
        assert_eq!((space.head_dim, space.seq_len, space.vocab_size), (64, 128, 30_522));
        assert!(!space.per_layer);
        let round_trip: SearchSpace = ron::from_str(&ron::to_string(&space).unwrap()).unwrap();
        assert_eq!(round_trip, space);
        assert!(ron::from_str::<SearchSpace>("(layers: [1], hidden: [64], heads: [1], ffn: [8], depth: 3)").is_err());
    }

    #[test]
    fn contains_names_field_value_and_choices() {
        let space = SearchSpace::default();
        let mut arch = space.largest();
        arch.heads[2] = 5;
        let message = outside(&space, &arch);
        assert!(message.contains("`heads[2]` is 5") && message.contains("[2, 4, 6, 8, 10, 12]"), "{message}");
        assert!(outside(&space, &space.arch(7, 384, 12, 1536)).contains("`layers` is 7"));
        let seq = Arch { seq_len: 64, ..space.largest() };
        assert!(outside(&space, &seq).contains("`seq_len` is 64; the space fixes it at 128"));
        let task = Arch { task: TaskHead::Regression, ..space.largest() };
        assert!(outside(&space, &task).contains("`task`"));
        let uniform = SearchSpace { per_layer: false, ..space.clone() };
        let mixed = Arch { ffn: vec![256, 512], ..space.arch(2, 128, 2, 0) };
        assert!(outside(&uniform, &mixed).contains("`ffn` differs between layers"));
        // An invalid arch reports its own error.
        let broken = Arch { heads: vec![2], ..space.arch(2, 128, 2, 256) };
        assert!(matches!(space.contains(&broken), Err(Error::InvalidField { .. })));
    }

    #[test]
    fn cardinality_counts_distinct_archs() {
        let per_layer: u64 = (1..=6).map(|l| 5 * 36u64.pow(l)).sum();
        assert_eq!(SearchSpace::default().cardinality(), per_layer as f64);
        assert_eq!(SearchSpace { per_layer: false, ..SearchSpace::default() }.cardinality(), (6 * 5 * 36) as f64);
        let tiny = SearchSpace {
            layers: vec![1, 2],
            hidden: vec![8],
            heads: vec![1, 2],
            ffn: vec![8],
            ..SearchSpace::default()
        };
        assert_eq!(tiny.cardinality(), 6.0); // 2 one-layer archs + 4 two-layer archs.
    }
}
