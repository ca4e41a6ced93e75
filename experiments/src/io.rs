//! Small shared pieces of the CLI: reading `--arch`, writing files atomically, cache paths.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arch::Arch;

/// The arch a command compiles: `--arch`, `--seq`, `--batch`.
#[derive(Debug, clap::Args)]
pub struct ArchArgs {
    /// Architecture: compact string, RON, or a RON file.
    #[arg(long)]
    pub arch: String,
    /// Sequence length (overrides the arch's).
    #[arg(long)]
    pub seq: Option<usize>,
    /// Sequences per run.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

/// Parses an `--arch` value: a compact string, RON, or a path to a file holding either.
/// `seq` overrides the sequence length.
pub fn parse_arch(value: &str, seq: Option<usize>) -> Result<Arch> {
    let path = Path::new(value);
    let mut arch = if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Arch::parse(text.trim()).with_context(|| format!("in {}", path.display()))?
    } else {
        Arch::parse(value)?
    };
    if let Some(seq) = seq {
        arch.seq_len = seq;
        arch.validate()?;
    }
    Ok(arch)
}

/// Writes `contents` to `path` through a temporary file and a rename, so that an interrupted
/// write never leaves a half-written file behind.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let Some(name) = path.file_name() else { bail!("{} is not a file path", path.display()) };
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// canao's cache directory: `$CANAO_CACHE`, else `$XDG_CACHE_HOME/canao`, else `~/.cache/canao`.
pub fn cache_dir() -> PathBuf {
    supernet::teacher::cache_dir()
}

/// Where auto-tuned GEMM schedules are kept.
pub fn tuning_cache() -> PathBuf {
    cache_dir().join("gemm-tuning.ron")
}

/// "1 thread" or "N threads".
pub fn threads_label(threads: usize) -> String {
    match threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    }
}

/// Prints `value` as one JSON line (the last line of a `--json` command).
pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string(value).unwrap_or_else(|_| "{}".into()));
}

/// The RON files committed under `experiments/<folder>/`, sorted (for tests that check every
/// committed config).
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test helper: a failure should stop the test loudly
pub fn committed_configs(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}
