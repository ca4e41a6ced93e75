//! How an NSGA-II run is checkpointed. The state without its cache is one RON document written
//! atomically at the checkpoint path; the cache, which only grows, is a journal next to it
//! (`<path without extension>.cache.ron`, one entry per line, appended each generation; see
//! [`crate::checkpoint`]). The document records how many cache entries it relies on and is
//! renamed into place only after they are on disk, so a kill at any moment leaves a consistent
//! pair: resume cuts off whatever the journal holds beyond that count.

use std::path::{Path, PathBuf};

use arch::SearchSpace;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Nsga2Config, Nsga2State};
use crate::checkpoint::{self, Journal};
use crate::{Error, EvalCache, GenerationRecord, ObjectiveSpec, Result};

/// The checkpoint document as written: borrowed from the state.
#[derive(Serialize)]
struct StateRef<'a> {
    format: u32,
    config: &'a Nsga2Config,
    space: &'a SearchSpace,
    objectives: &'a [ObjectiveSpec],
    #[serde(skip_serializing_if = "Option::is_none")]
    constraints: Option<&'a [String]>,
    rng: &'a ChaCha8Rng,
    population: &'a [usize],
    cache_entries: usize,
    cache_hits: u64,
    history: &'a [GenerationRecord],
}

/// The checkpoint document as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateOwned {
    format: u32,
    config: Nsga2Config,
    space: SearchSpace,
    objectives: Vec<ObjectiveSpec>,
    #[serde(default)]
    constraints: Option<Vec<String>>,
    rng: ChaCha8Rng,
    population: Vec<usize>,
    cache_entries: usize,
    cache_hits: u64,
    history: Vec<GenerationRecord>,
}

/// The cache journal that belongs to the checkpoint at `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    path.with_extension("cache.ron")
}

/// Writes the checkpoints of one run.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    path: PathBuf,
    /// `None` until the first save of a run that starts afresh.
    journal: Option<Journal>,
}

impl Checkpointer {
    /// Checkpoints to `path`, starting over: the first save removes what was there.
    pub fn fresh(path: PathBuf) -> Checkpointer {
        Checkpointer { path, journal: None }
    }

    /// Continues the checkpoint at `path` whose state relies on the first `entries` cache
    /// entries, `len` bytes of the journal (as [`read`] returned them): cuts the journal back to
    /// them.
    pub fn continuing(path: PathBuf, entries: usize, len: u64) -> Result<Checkpointer> {
        let journal = Journal::reopen(&journal_path(&path), entries, len)?;
        Ok(Checkpointer { path, journal: Some(journal) })
    }

    /// Where the state document goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the new cache entries to the journal, then replaces the state document.
    pub fn save(&mut self, state: &Nsga2State) -> Result<()> {
        let journal = match &mut self.journal {
            Some(journal) => journal,
            None => {
                // The old document goes first: a kill from here on leaves no state, hence a
                // fresh start, never a state whose journal was truncated.
                match std::fs::remove_file(&self.path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::Io { path: self.path.clone(), source: e });
                    }
                    _ => {}
                }
                self.journal.insert(Journal::create(&journal_path(&self.path))?)
            }
        };
        journal.append(state.cache.entries_from(journal.len()))?;
        let document = StateRef {
            format: state.format,
            config: &state.config,
            space: &state.space,
            objectives: &state.objectives,
            constraints: state.constraints.as_deref(),
            rng: &state.rng,
            population: &state.population,
            cache_entries: state.cache.len(),
            cache_hits: state.cache.hits(),
            history: &state.history,
        };
        checkpoint::write_atomic(&self.path, &document)
    }
}

/// Reads a checkpoint without changing it: the state and the byte length of the journal prefix
/// it relies on.
pub(crate) fn read(path: &Path) -> Result<Option<(Nsga2State, u64)>> {
    let Some(doc) = checkpoint::read::<StateOwned>(path)? else { return Ok(None) };
    let journal = journal_path(path);
    let (entries, len) = Journal::read(&journal, doc.cache_entries)?;
    let cache = EvalCache::from_entries(entries, doc.cache_hits)
        .map_err(|reason| Error::Checkpoint { path: journal, reason })?;
    if let Some(&bad) = doc.population.iter().find(|&&i| i >= cache.len()) {
        let reason = format!("population member {bad} is not among the {} cached archs", cache.len());
        return Err(Error::Checkpoint { path: path.to_path_buf(), reason });
    }
    let state = Nsga2State {
        format: doc.format,
        config: doc.config,
        space: doc.space,
        objectives: doc.objectives,
        constraints: doc.constraints,
        rng: doc.rng,
        population: doc.population,
        cache,
        history: doc.history,
    };
    Ok(Some((state, len)))
}

impl Nsga2State {
    /// Reads the state checkpointed at `path` and its cache journal, changing neither; `None`
    /// when there is no checkpoint.
    pub fn load(path: &Path) -> Result<Option<Nsga2State>> {
        Ok(read(path)?.map(|(state, _)| state))
    }
}
