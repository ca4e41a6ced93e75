//! Checkpoint files. Two kinds, both RON:
//!
//! - [`write_atomic`]: a whole document written to a temporary file next to its destination,
//!   flushed to disk, then renamed over the destination. A rename within one directory is atomic
//!   on POSIX file systems, so a process killed at any moment leaves either the previous file or
//!   the new one, never a torn one.
//! - [`Journal`]: an append-only file of entries, one per line, for data that only grows (the
//!   evaluation cache). Rewriting it whole every generation would cost `O(n²)` bytes over a run;
//!   appending costs `O(n)`. The atomic document records how many entries it relies on; entries
//!   past that (appended before a kill, or torn by it) are cut when the journal is reopened.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Writes `value` as pretty RON to `path` atomically (temporary file `path.tmp`, fsync,
/// rename, then fsync of the directory so the rename itself survives a crash).
pub fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = ron::ser::to_string_pretty(value, ron::ser::PrettyConfig::default())
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
    let tmp = temporary(path);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Directories cannot be opened for syncing everywhere; the rename is done either way.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads a RON checkpoint; `Ok(None)` when `path` does not exist.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    ron::from_str(&text).map(Some).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })
}

/// An append-only RON file, one entry per line.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    entries: usize,
}

impl Journal {
    /// An empty journal at `path`, truncating what is there.
    pub fn create(path: &Path) -> Result<Journal> {
        File::create(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Journal { path: path.to_path_buf(), entries: 0 })
    }

    /// Reads the first `count` entries of the journal at `path`. Errors when it holds fewer
    /// complete entries. Returns them and the byte length of that prefix.
    pub fn read<T: DeserializeOwned>(path: &Path, count: usize) -> Result<(Vec<T>, u64)> {
        let text = fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let mut entries = Vec::with_capacity(count);
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').take(count).enumerate() {
            let bad = |reason: String| Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("line {}: {reason}", i + 1),
            };
            let Some(body) = line.strip_suffix('\n') else {
                return Err(bad("torn entry".into()));
            };
            entries.push(ron::from_str(body).map_err(|e| bad(e.to_string()))?);
            offset += line.len();
        }
        if entries.len() < count {
            let reason = format!("holds {} entries, the checkpoint needs {count}", entries.len());
            return Err(Error::Checkpoint { path: path.to_path_buf(), reason });
        }
        Ok((entries, offset as u64))
    }

    /// Reopens the journal at `path` for appending, keeping only its first `count` entries,
    /// `len` bytes as [`Journal::read`] measured them.
    pub fn reopen(path: &Path, count: usize, len: u64) -> Result<Journal> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let file = OpenOptions::new().write(true).open(path).map_err(io)?;
        file.set_len(len).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Journal { path: path.to_path_buf(), entries: count })
    }

    /// Entries written so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Appends `entries` and flushes them to disk.
    pub fn append<T: Serialize>(&mut self, entries: &[T]) -> Result<()> {
        let io = |source| Error::Io { path: self.path.clone(), source };
        let file = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        let mut out = BufWriter::new(file);
        for entry in entries {
            let line = ron::to_string(entry)
                .map_err(|e| Error::Checkpoint { path: self.path.clone(), reason: e.to_string() })?;
            out.write_all(line.as_bytes()).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
        self.entries += entries.len();
        Ok(())
    }
}

/// The temporary file a checkpoint is written to before the rename.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;
    use crate::testing::scratch;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = scratch("checkpoint-round-trip");
        let path = dir.path().join("state.ron");
        assert_eq!(read::<Vec<f64>>(&path).unwrap(), None);
        let value = vec![0.1, 1e-300, -2.5e17, 1.0 / 3.0];
        write_atomic(&path, &value).unwrap();
        assert_eq!(read::<Vec<f64>>(&path).unwrap(), Some(value), "f64 round-trips exactly");
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_leftover_temporary_file_is_harmless() {
        let dir = scratch("checkpoint-leftover");
        let path = dir.path().join("state.ron");
        write_atomic(&path, &1u32).unwrap();
        // What a kill during a write leaves behind: a torn temporary file.
        fs::write(temporary(&path), "(torn").unwrap();
        assert_eq!(read::<u32>(&path).unwrap(), Some(1));
        write_atomic(&path, &2u32).unwrap();
        assert_eq!(read::<u32>(&path).unwrap(), Some(2));
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = scratch("checkpoint-garbage");
        let path = dir.path().join("state.ron");
        fs::write(&path, "not ron at all (").unwrap();
        let err = read::<u32>(&path).unwrap_err();
        assert!(err.to_string().contains("state.ron"), "{err}");
    }

    #[test]
    fn journal_keeps_what_the_checkpoint_relies_on() {
        let dir = scratch("checkpoint-journal");
        let path = dir.path().join("cache.ron");
        let mut journal = Journal::create(&path).unwrap();
        journal.append(&[(1u32, 0.5f64), (2, 0.25)]).unwrap();
        journal.append(&[(3u32, 1e-300f64)]).unwrap();
        assert_eq!(journal.len(), 3);
        let (entries, two) = Journal::read::<(u32, f64)>(&path, 2).unwrap();
        assert_eq!(entries, vec![(1, 0.5), (2, 0.25)]);
        assert!(Journal::read::<(u32, f64)>(&path, 4).is_err(), "fewer entries than needed");
        // A torn tail (a kill during an append) is cut on reopening.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"(4, 0.").unwrap();
        let err = Journal::read::<(u32, f64)>(&path, 4).unwrap_err();
        assert!(err.to_string().contains("torn"), "{err}");
        let mut reopened = Journal::reopen(&path, 2, two).unwrap();
        reopened.append(&[(9u32, 9.0f64)]).unwrap();
        let (entries, _) = Journal::read::<(u32, f64)>(&path, 3).unwrap();
        assert_eq!(entries, vec![(1, 0.5), (2, 0.25), (9, 9.0)]);
    }
}
