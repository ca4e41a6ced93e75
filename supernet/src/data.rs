//! The tasks and their files: GLUE's TSV layout (SST-2, CoLA, STS-B) and TREC's label files,
//! read from a data directory. Every malformed row is an error that names `file:line`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors while finding or reading a data set.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The data file is not there.
    #[error("{} not found: {hint}", path.display())]
    Missing { path: PathBuf, hint: String },
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A row that does not parse.
    #[error("{}:{line}: {what}", path.display())]
    Row { path: PathBuf, line: usize, what: String },
    /// The file parsed but holds no example.
    #[error("{}: no examples", path.display())]
    Empty { path: PathBuf },
    /// An unknown task or split name.
    #[error("{0}")]
    Name(String),
}

/// A task of the search: what is predicted and how it is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Binary sentiment of movie-review phrases (GLUE SST-2); accuracy.
    Sst2,
    /// Grammatical acceptability (GLUE CoLA); Matthews correlation.
    Cola,
    /// Semantic similarity of sentence pairs, 0–5 (GLUE STS-B); Pearson and Spearman.
    Stsb,
    /// Question type, six coarse classes (TREC); accuracy.
    Trec,
}

/// A split of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    Train,
    /// GLUE's dev split; TREC's test file (TREC has no dev split).
    Dev,
}

/// TREC's six coarse classes, in label order.
pub const TREC_CLASSES: [&str; 6] = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"];

impl Task {
    pub const ALL: [Task; 4] = [Task::Sst2, Task::Cola, Task::Stsb, Task::Trec];

    /// Output width of the task head: classes, or 1 for regression.
    pub fn outputs(self) -> usize {
        match self {
            Task::Sst2 | Task::Cola => 2,
            Task::Stsb => 1,
            Task::Trec => TREC_CLASSES.len(),
        }
    }

    /// Whether the task is a regression (STS-B).
    pub fn is_regression(self) -> bool {
        self == Task::Stsb
    }

    /// The file of `split` under the data directory.
    pub fn path(self, data_dir: &Path, split: Split) -> PathBuf {
        let name = match (self, split) {
            (Task::Trec, Split::Train) => return data_dir.join("trec/train_5500.label"),
            (Task::Trec, Split::Dev) => return data_dir.join("trec/TREC_10.label"),
            (_, Split::Train) => "train.tsv",
            (_, Split::Dev) => "dev.tsv",
        };
        let folder = match self {
            Task::Sst2 => "SST-2",
            Task::Cola => "CoLA",
            _ => "STS-B",
        };
        data_dir.join("glue").join(folder).join(name)
    }

    /// The headline metric's name.
    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Sst2 | Task::Trec => "accuracy",
            Task::Cola => "matthews",
            Task::Stsb => "pearson",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Sst2 => "sst2",
            Task::Cola => "cola",
            Task::Stsb => "stsb",
            Task::Trec => "trec",
        })
    }
}

impl FromStr for Task {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Task, DataError> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sst2" => Ok(Task::Sst2),
            "cola" => Ok(Task::Cola),
            "stsb" => Ok(Task::Stsb),
            "trec" => Ok(Task::Trec),
            _ => Err(DataError::Name(format!("unknown task `{s}`: expected sst2, cola, stsb or trec"))),
        }
    }
}

/// The target of one example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Label {
    Class(usize),
    Score(f32),
}

/// One example: a sentence or a sentence pair and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub text: String,
    pub pair: Option<String>,
    pub label: Label,
}

/// The data directory: `explicit` if given, else `$CANAO_DATA`, else `./data`, else
/// `../shared/data` (present on development machines and CI).
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("CANAO_DATA") {
        return Ok(PathBuf::from(dir));
    }
    for candidate in ["data", "../shared/data"] {
        if Path::new(candidate).is_dir() {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err(DataError::Missing {
        path: PathBuf::from("data"),
        hint: "no data directory: set `data_dir` in the experiment or $CANAO_DATA, or place the GLUE TSV layout \
               (glue/SST-2/train.tsv, …) in ./data or ../shared/data"
            .into(),
    })
}

/// Reads `split` of `task` from `data_dir`.
pub fn load(task: Task, data_dir: &Path, split: Split) -> Result<Vec<Example>, DataError> {
    let _span = tracing::info_span!("load data", %task, ?split).entered();
    let path = task.path(data_dir, split);
    if !path.is_file() {
        return Err(DataError::Missing {
            path,
            hint: format!(
                "the {task} {split:?} split; the data directory {} should hold the GLUE TSV layout (see \
                 ../shared/data/README.md for the sources)",
                data_dir.display()
            ),
        });
    }
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
    // TREC's train file is ISO-8859-1: every byte is the code point of the same value.
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if task == Task::Trec => e.into_bytes().iter().map(|&b| b as char).collect(),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(DataError::Row { path, line, what: format!("not UTF-8: {}", e.utf8_error()) });
        }
    };
    let row_err = |line: usize, what: String| DataError::Row { path: path.clone(), line, what };
    let mut examples = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let columns: Option<(usize, Option<usize>, usize)> = match task {
        Task::Sst2 => Some(header(&mut lines, &["sentence"], "label").map_err(|(n, w)| row_err(n, w))?),
        Task::Stsb => Some(header(&mut lines, &["sentence1", "sentence2"], "score").map_err(|(n, w)| row_err(n, w))?),
        Task::Cola | Task::Trec => None,
    };
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let example = match task {
            Task::Trec => trec_row(line),
            Task::Cola => cola_row(line),
            Task::Sst2 | Task::Stsb => {
                let (text, pair, label) = columns.unwrap_or((0, None, 1));
                tsv_row(task, line, text, pair, label)
            }
        };
        examples.push(example.map_err(|what| row_err(n, what))?);
    }
    if examples.is_empty() {
        return Err(DataError::Empty { path });
    }
    Ok(examples)
}

/// Finds the columns named `texts` and `label` in the first line.
fn header<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
    texts: &[&str],
    label: &str,
) -> Result<(usize, Option<usize>, usize), (usize, String)> {
    let Some((n, line)) = lines.next() else { return Err((1, "empty file: expected a header".into())) };
    let names: Vec<&str> = line.split('\t').map(str::trim).collect();
    let find = |want: &str| {
        names.iter().position(|&c| c == want).ok_or_else(|| {
            (n, format!("header has no `{want}` column (expected columns {texts:?} and `{label}`; found {names:?})"))
        })
    };
    let text = find(texts[0])?;
    let pair = texts.get(1).map(|t| find(t)).transpose()?;
    Ok((text, pair, find(label)?))
}

fn tsv_row(task: Task, line: &str, text: usize, pair: Option<usize>, label: usize) -> Result<Example, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let need = text.max(label).max(pair.unwrap_or(0)) + 1;
    if cols.len() < need {
        return Err(format!("expected at least {need} tab-separated columns, found {}", cols.len()));
    }
    let raw = cols[label].trim();
    let label = if task.is_regression() {
        let score: f32 = raw.parse().map_err(|_| format!("score `{raw}` is not a number"))?;
        if !(0.0..=5.0).contains(&score) {
            return Err(format!("score {score} is outside 0–5"));
        }
        Label::Score(score)
    } else {
        class(raw, task.outputs())?
    };
    Ok(Example { text: cols[text].trim().to_string(), pair: pair.map(|p| cols[p].trim().to_string()), label })
}

fn class(raw: &str, classes: usize) -> Result<Label, String> {
    match raw.parse::<usize>() {
        Ok(c) if c < classes => Ok(Label::Class(c)),
        _ => Err(format!("label `{raw}` is not a class number from 0 to {}", classes - 1)),
    }
}

fn cola_row(line: &str) -> Result<Example, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != 4 {
        return Err(format!(
            "expected 4 tab-separated columns (source, label, original label, sentence), found {}",
            cols.len()
        ));
    }
    Ok(Example { text: cols[3].trim().to_string(), pair: None, label: class(cols[1].trim(), 2)? })
}

fn trec_row(line: &str) -> Result<Example, String> {
    let (tag, question) = line.split_once(' ').ok_or("expected `COARSE:fine question`")?;
    let coarse = tag.split(':').next().unwrap_or(tag);
    let c = TREC_CLASSES
        .iter()
        .position(|&k| k == coarse)
        .ok_or_else(|| format!("class `{coarse}` is not one of {TREC_CLASSES:?}"))?;
    Ok(Example { text: question.trim().to_string(), pair: None, label: Label::Class(c) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// A fresh scratch folder, removed when dropped (also when the test panics).
    fn tmp(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("canao-data-{name}-")).tempdir().expect("scratch folder")
    }

    #[test]
    fn reads_each_layout() {
        let scratch = tmp("layouts");
        let dir = scratch.path();
        write(dir, "glue/SST-2/dev.tsv", "sentence\tlabel\ngood fun \t1\nbad \t0\n");
        write(dir, "glue/CoLA/dev.tsv", "gj04\t1\t\tThe doll wriggled.\ngj04\t0\t*\tDoll the.\n");
        write(dir, "glue/STS-B/dev.tsv", "index\tsentence1\tsentence2\tscore\n0\tA man.\tA person.\t4.5\n");
        std::fs::create_dir_all(dir.join("trec")).expect("mkdir");
        std::fs::write(
            dir.join("trec/TREC_10.label"),
            b"NUM:dist How far is it from Denver to Aspen ?\nHUM:desc Who was Galil\xe9o ?\n",
        )
        .expect("write");
        let sst = load(Task::Sst2, dir, Split::Dev).expect("sst2");
        assert_eq!(sst[0], Example { text: "good fun".into(), pair: None, label: Label::Class(1) });
        let cola = load(Task::Cola, dir, Split::Dev).expect("cola");
        assert_eq!(cola[1].label, Label::Class(0));
        let sts = load(Task::Stsb, dir, Split::Dev).expect("stsb");
        assert_eq!(sts[0].pair.as_deref(), Some("A person."));
        assert_eq!(sts[0].label, Label::Score(4.5));
        let trec = load(Task::Trec, dir, Split::Dev).expect("trec");
        assert_eq!(trec[0].label, Label::Class(5));
        assert_eq!(trec[1].text, "Who was Galiléo ?");
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let scratch = tmp("bad");
        let dir = scratch.path();
        write(dir, "glue/SST-2/dev.tsv", "sentence\tlabel\nfine\t1\nbroken\t7\n");
        let e = load(Task::Sst2, dir, Split::Dev).expect_err("label 7").to_string();
        assert!(e.ends_with("dev.tsv:3: label `7` is not a class number from 0 to 1"), "{e}");
        write(dir, "glue/SST-2/dev.tsv", "text\tlabel\nfine\t1\n");
        let e = load(Task::Sst2, dir, Split::Dev).expect_err("header").to_string();
        assert!(e.contains("dev.tsv:1: header has no `sentence` column"), "{e}");
        write(dir, "glue/STS-B/dev.tsv", "sentence1\tsentence2\tscore\na\tb\tlots\n");
        let e = load(Task::Stsb, dir, Split::Dev).expect_err("score").to_string();
        assert!(e.contains(":2: score `lots` is not a number"), "{e}");
        std::fs::write(dir.join("glue/SST-2/dev.tsv"), b"sentence\tlabel\nfine\t1\nbad \xff byte\t0\n").expect("write");
        let e = load(Task::Sst2, dir, Split::Dev).expect_err("utf-8").to_string();
        assert!(e.contains("dev.tsv:3: not UTF-8"), "{e}");
        let e = load(Task::Cola, dir, Split::Train).expect_err("missing").to_string();
        assert!(e.contains("CoLA/train.tsv not found"), "{e}");
        // Labels outside each task's set.
        write(dir, "glue/CoLA/dev.tsv", "gj04\t1\t\tThe doll wriggled.\ngj04\t2\t*\tDoll the.\n");
        let e = load(Task::Cola, dir, Split::Dev).expect_err("cola label").to_string();
        assert!(e.ends_with("dev.tsv:2: label `2` is not a class number from 0 to 1"), "{e}");
        write(dir, "glue/STS-B/dev.tsv", "sentence1\tsentence2\tscore\na\tb\t5.5\n");
        let e = load(Task::Stsb, dir, Split::Dev).expect_err("score range").to_string();
        assert!(e.ends_with("dev.tsv:2: score 5.5 is outside 0–5"), "{e}");
        std::fs::create_dir_all(dir.join("trec")).expect("mkdir");
        std::fs::write(dir.join("trec/TREC_10.label"), "NUM:dist How far ?\nFOO:bar What ?\n").expect("write");
        let e = load(Task::Trec, dir, Split::Dev).expect_err("trec class").to_string();
        assert!(e.contains("TREC_10.label:2: class `FOO` is not one of"), "{e}");
    }

    #[test]
    fn shared_data_has_the_documented_sizes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        if !dir.is_dir() {
            return;
        }
        let sizes = [
            (Task::Sst2, 67_349, 872),
            (Task::Cola, 8_551, 1_043),
            (Task::Stsb, 5_749, 1_500),
            (Task::Trec, 5_452, 500),
        ];
        for (task, train, dev) in sizes {
            assert_eq!(load(task, &dir, Split::Train).expect("train").len(), train, "{task}");
            assert_eq!(load(task, &dir, Split::Dev).expect("dev").len(), dev, "{task}");
        }
    }
}
