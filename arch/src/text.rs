//! Arch strings: the compact form `L4-H256-A4-F1024[-D32][-S64]`, its per-layer extension
//! `L3-H256-A[4,2,4]-F[1024,512,768]`, and RON of the [`Arch`] struct.
//!
//! The compact form is what people type on a command line and read in a report; it names only
//! the searched fields (layers, hidden, heads, FFN, head size, sequence length) and takes BERT's
//! defaults for the rest. RON ([`Arch::to_ron`]) is the lossless form.

use std::fmt;
use std::str::FromStr;

use ron::ser::PrettyConfig;

use crate::{Arch, DEFAULT_HEAD_DIM, DEFAULT_SEQ_LEN, Error, Result};

/// The grammar of the compact form, quoted in parse errors.
const COMPACT_FORM: &str = "L<layers>-H<hidden>-A<heads>-F<ffn>[-D<head_dim>][-S<seq>] \
     (A and F may be per-layer lists such as A[4,2,4])";

/// Layer counts above this are refused by the compact parser, which would otherwise allocate a
/// per-layer list of any length a typo asks for (`L4000000000`).
const MAX_COMPACT_LAYERS: usize = 10_000;

impl Arch {
    /// Parses an arch from the compact form or from RON, then [validates](Arch::validate) it.
    ///
    /// - Compact: `L<layers>-H<hidden>-A<heads>-F<ffn>`, then optionally `-D<head_dim>` (default
    ///   64) and `-S<seq_len>` (default 128) in either order. `A` and `F` take one number for all
    ///   layers or a bracketed per-layer list (`A[4,2,4]`) whose length must equal `L`. The other
    ///   fields take BERT's defaults: vocabulary 30522, 512 positions, 2 token types, and the
    ///   [`TaskHead::Embedding`](crate::TaskHead::Embedding) head.
    /// - RON: a string that starts with `(` or `Arch(`, e.g.
    ///   `Arch(layers: 2, hidden: 128, heads: [2, 2], ffn: [512, 512])`; omitted fields with
    ///   defaults take them as in the struct's serde attributes.
    ///
    /// Garbled text gives [`Error::Parse`] naming the expected form; a well-formed string with
    /// an impossible value (`A0`, a list of the wrong length) gives the
    /// [`Error::InvalidField`] of [`Arch::validate`].
    pub fn parse(s: &str) -> Result<Arch> {
        let text = s.trim();
        let arch = if looks_like_ron(text) {
            ron::from_str::<Arch>(text)
                .map_err(|e| Error::Parse { input: s.into(), reason: format!("invalid RON: {e}") })?
        } else {
            parse_compact(text).map_err(|reason| Error::Parse {
                input: s.into(),
                reason: format!("{reason}; expected {COMPACT_FORM} or RON `Arch(layers: ..)`"),
            })?
        };
        arch.validate()?;
        Ok(arch)
    }

    /// The compact string (`L4-H256-A4-F1024`, with `-D` only when `head_dim != 64` and `-S`
    /// only when `seq_len != 128`) when every layer has the same heads and FFN width, else
    /// `None`.
    ///
    /// The compact form is lossy: it drops the vocabulary, position and token-type table sizes
    /// and the task head, which [`Arch::parse`] restores to BERT's defaults. Use
    /// [`Arch::to_ron`] to keep them.
    pub fn compact(&self) -> Option<String> {
        let lists_fit = self.layers > 0 && self.heads.len() == self.layers && self.ffn.len() == self.layers;
        (lists_fit && self.is_uniform()).then(|| self.to_string())
    }

    /// The arch as single-line RON with every field, e.g.
    /// `Arch(layers: 1, hidden: 128, heads: [2], ffn: [512], head_dim: 64, ..)`; lossless, and
    /// accepted by [`Arch::parse`].
    pub fn to_ron(&self) -> String {
        let config = PrettyConfig::new().struct_names(true).compact_structs(true).compact_arrays(true);
        // An `Arch` holds only integers, a vector and a plain enum, which RON always encodes; the
        // fallback keeps this infallible without a panic path.
        ron::ser::to_string_pretty(self, config).unwrap_or_else(|e| format!("<arch not encodable as RON: {e}>"))
    }
}

/// The compact form when uniform (`L4-H256-A4-F1024`), else the per-layer form
/// (`L3-H256-A[4,2,4]-F[1024,512,768]-D32`). Both parse back with [`Arch::parse`]; both drop
/// the vocabulary, table sizes and task head (see [`Arch::compact`]).
impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}-H{}-A", self.layers, self.hidden)?;
        write_genes(f, &self.heads, self.layers)?;
        f.write_str("-F")?;
        write_genes(f, &self.ffn, self.layers)?;
        if self.head_dim != DEFAULT_HEAD_DIM {
            write!(f, "-D{}", self.head_dim)?;
        }
        if self.seq_len != DEFAULT_SEQ_LEN {
            write!(f, "-S{}", self.seq_len)?;
        }
        Ok(())
    }
}

/// Same as [`Arch::parse`].
impl FromStr for Arch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Arch> {
        Arch::parse(s)
    }
}

/// One number when the list has `layers` equal entries, else the bracketed list, so that what is
/// written parses back to the same list (even a list of the wrong length).
fn write_genes(f: &mut fmt::Formatter<'_>, list: &[usize], layers: usize) -> fmt::Result {
    match list.first() {
        Some(&first) if list.len() == layers && list.iter().all(|&v| v == first) => {
            write!(f, "{first}")
        }
        _ => {
            let items: Vec<String> = list.iter().map(ToString::to_string).collect();
            write!(f, "[{}]", items.join(","))
        }
    }
}

fn looks_like_ron(text: &str) -> bool {
    text.starts_with('(') || text.strip_prefix("Arch").is_some_and(|rest| rest.trim_start().starts_with('('))
}

/// Parses the compact form into an unvalidated arch; the error is the reason only.
fn parse_compact(text: &str) -> std::result::Result<Arch, String> {
    if text.is_empty() {
        return Err("the string is empty".into());
    }
    let mut parts = text.split('-');
    let mut next = |letter: char, name: &str| {
        let part = parts.next().ok_or_else(|| format!("`{letter}<{name}>` is missing"))?;
        part.strip_prefix(letter)
            .map(|value| (part, value))
            .ok_or_else(|| format!("found `{part}` where `{letter}<{name}>` should be"))
    };
    let (part, value) = next('L', "layers")?;
    let layers = number(part, value)?;
    if layers > MAX_COMPACT_LAYERS {
        return Err(format!("`{part}` asks for more than {MAX_COMPACT_LAYERS} layers, which no BERT variant has"));
    }
    let (part, value) = next('H', "hidden")?;
    let hidden = number(part, value)?;
    let (part, value) = next('A', "heads")?;
    let heads = genes(part, value, layers)?;
    let (part, value) = next('F', "ffn")?;
    let ffn = genes(part, value, layers)?;

    let mut arch = Arch { heads, ffn, ..Arch::uniform(layers, hidden, 1, 1) };
    let (mut head_dim, mut seq_len) = (None, None);
    for part in parts {
        let (letter, slot, value) = match part.split_at_checked(1) {
            Some(("D", value)) => ('D', &mut head_dim, value),
            Some(("S", value)) => ('S', &mut seq_len, value),
            _ => {
                return Err(format!("unknown part `{part}` (only -D<head_dim> and -S<seq> may follow F)"));
            }
        };
        if slot.is_some() {
            return Err(format!("`{letter}` is given twice"));
        }
        *slot = Some(number(part, value)?);
    }
    arch.head_dim = head_dim.unwrap_or(DEFAULT_HEAD_DIM);
    arch.seq_len = seq_len.unwrap_or(DEFAULT_SEQ_LEN);
    Ok(arch)
}

fn number(part: &str, value: &str) -> std::result::Result<usize, String> {
    value.trim().parse().map_err(|_| format!("`{part}` needs a whole number after its letter, got `{value}`"))
}

/// One number repeated over `layers`, or a bracketed list taken as written (its length is
/// checked by [`Arch::validate`], which names the field).
fn genes(part: &str, value: &str, layers: usize) -> std::result::Result<Vec<usize>, String> {
    match value.strip_prefix('[') {
        Some(inner) => {
            let inner =
                inner.strip_suffix(']').ok_or_else(|| format!("`{part}` opens a list but does not close it"))?;
            if inner.trim().is_empty() {
                return Ok(Vec::new());
            }
            inner
                .split(',')
                .map(|item| {
                    item.trim().parse().map_err(|_| format!("`{part}` lists `{item}`, which is not a whole number"))
                })
                .collect()
        }
        None => Ok(vec![number(part, value)?; layers]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;
    use crate::TaskHead;

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidField { field, .. } => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    fn parse_reason(err: Error) -> String {
        match err {
            Error::Parse { reason, .. } => reason,
            other => panic!("expected Parse, got {other:?}"),
        }
    }

    #[test]
    fn compact_defaults() {
        let arch = Arch::parse("L4-H256-A4-F1024").unwrap();
        assert_eq!(arch, Arch::uniform(4, 256, 4, 1024));
        assert_eq!(arch.compact().as_deref(), Some("L4-H256-A4-F1024"));
        assert_eq!(arch.to_string(), "L4-H256-A4-F1024");
    }

    #[test]
    fn compact_suffixes_in_any_order() {
        let want = Arch { head_dim: 32, seq_len: 64, ..Arch::uniform(6, 384, 12, 1536) };
        assert_eq!(Arch::parse("L6-H384-A12-F1536-D32-S64").unwrap(), want);
        assert_eq!(Arch::parse("  L6-H384-A12-F1536-S64-D32\n").unwrap(), want);
        assert_eq!(want.compact().as_deref(), Some("L6-H384-A12-F1536-D32-S64"));
        let seq_only = Arch::parse("L1-H64-A1-F64-S32").unwrap();
        assert_eq!((seq_only.head_dim, seq_only.seq_len), (64, 32));
        assert_eq!(seq_only.to_string(), "L1-H64-A1-F64-S32");
    }

    #[test]
    fn per_layer_round_trip() {
        let arch =
            Arch { heads: vec![4, 2, 4], ffn: vec![1024, 512, 768], head_dim: 32, ..Arch::uniform(3, 256, 1, 1) };
        let text = arch.to_string();
        assert_eq!(text, "L3-H256-A[4,2,4]-F[1024,512,768]-D32");
        assert_eq!(arch.compact(), None);
        assert_eq!(Arch::parse(&text).unwrap(), arch);
        assert_eq!(text.parse::<Arch>().unwrap(), arch);
        // Mixed: uniform heads, per-layer FFN; spaces inside a list are allowed.
        let mixed = Arch::parse("L2-H128-A2-F[ 256, 512 ]").unwrap();
        assert_eq!((mixed.heads.clone(), mixed.ffn.clone()), (vec![2, 2], vec![256, 512]));
        assert_eq!(mixed.to_string(), "L2-H128-A2-F[256,512]");
    }

    #[test]
    fn ron_round_trip_keeps_every_field() {
        let arch = Arch {
            heads: vec![4, 2],
            ffn: vec![512, 256],
            vocab_size: 1000,
            max_positions: 256,
            type_vocab_size: 1,
            seq_len: 64,
            task: TaskHead::Classification { labels: 3 },
            ..Arch::uniform(2, 128, 1, 1)
        };
        let ron = arch.to_ron();
        assert!(!ron.contains('\n'), "{ron}");
        assert!(ron.starts_with("Arch("), "{ron}");
        assert_eq!(Arch::parse(&ron).unwrap(), arch);
        let regression = Arch { task: TaskHead::Regression, ..Arch::uniform(1, 64, 1, 64) };
        assert_eq!(Arch::parse(&regression.to_ron()).unwrap(), regression);
    }

    #[test]
    fn ron_with_defaults_and_without_name() {
        let arch = Arch::parse("(layers: 2, hidden: 128, heads: [2, 2], ffn: [512, 512])").unwrap();
        assert_eq!(arch, Arch::uniform(2, 128, 2, 512));
        let named = Arch::parse("Arch (layers: 1, hidden: 64, heads: [1], ffn: [64], head_dim: 16)").unwrap();
        assert_eq!(named.head_dim, 16);
    }

    #[test]
    fn bad_ron_is_a_parse_error() {
        let reason = parse_reason(
            Arch::parse("Arch(layers: 2, hidden: 128, heads: [2, 2], ffn: [1, 1], bogus: 3)").unwrap_err(),
        );
        assert!(reason.contains("RON") && reason.contains("bogus"), "{reason}");
        let reason = parse_reason(Arch::parse("(layers: 2,").unwrap_err());
        assert!(reason.contains("RON"), "{reason}");
    }

    #[test]
    fn impossible_values_name_the_field() {
        for (text, field) in [
            ("L4-H256-A0-F1024", "heads[0]"),
            ("L2-H256-A2-F[512,0]", "ffn[1]"),
            ("L0-H256-A2-F512", "layers"),
            ("L3-H256-A[4,2]-F512", "heads"),
            ("L2-H256-A2-F[512,512,512]", "ffn"),
            ("L2-H256-A2-F512-S1024", "seq_len"),
            ("L2-H256-A2-F512-D0", "head_dim"),
            ("(layers: 1, hidden: 8, heads: [1], ffn: [8], task: Classification(labels: 1))", "task.labels"),
        ] {
            assert_eq!(field_of(Arch::parse(text).unwrap_err()), field, "{text}");
        }
    }

    #[test]
    fn garbage_names_the_expected_form() {
        for bad in [
            "",
            "hello",
            "L4",
            "L4-H256-A4",
            "H256-L4-A4-F1024",
            "L4-H256-A4-F1024-X3",
            "L4-H256-A4-F1024-D32-D16",
            "Lfour-H256-A4-F1024",
            "L4-H256-A[4,4-F1024",
            "L4-H256-A[4,x,4,4]-F1024",
            "L-1-H256-A4-F1024",
            "L99999999999999999999999-H1-A1-F1",
            "L4000000000-H1-A1-F1",
        ] {
            let err = Arch::parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("L<layers>-H<hidden>-A<heads>-F<ffn>[-D<head_dim>][-S<seq>]"), "{bad:?}: {text}");
            assert!(matches!(err, Error::Parse { ref input, .. } if input == bad), "{bad:?}");
        }
        let reason = parse_reason(Arch::parse("L4-H256-A4-F1024-D32-D16").unwrap_err());
        assert!(reason.contains("`D` is given twice"), "{reason}");
        let reason = parse_reason(Arch::parse("H256-L4-A4-F1024").unwrap_err());
        assert!(reason.contains("found `H256` where `L<layers>` should be"), "{reason}");
    }

    #[test]
    fn display_never_panics_on_invalid_archs() {
        let broken = Arch { heads: vec![], ffn: vec![3, 3, 3], ..Arch::uniform(2, 8, 1, 1) };
        assert_eq!(broken.to_string(), "L2-H8-A[]-F[3,3,3]");
        assert_eq!(broken.compact(), None);
        assert_eq!(field_of(Arch::parse(&broken.to_string()).unwrap_err()), "heads");
    }
}
