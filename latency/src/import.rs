//! Profiles from measurements taken elsewhere: a hardware team times canao's kernels with its own
//! harness on a device that cannot run canao, writes them as CSV, and imports them.
//!
//! The CSV has a header and three columns:
//!
//! ```text
//! kind,dims,median_ms
//! gemm[bias+gelu],m=128 n=1536 k=384,1.62
//! attention,batch=1 seq=128 heads=12 head_dim=32,0.41
//! ```
//!
//! `kind` is a kernel kind as `canao compile` lists it (`gemm[bias]`, `gemm[bias+residual+ln]`,
//! `gemm[bias+gelu]`, `attention`, `embed_layer_norm`, `meanpool`, …); `dims` are its named
//! dimensions separated by spaces; `median_ms` the median latency in milliseconds. Lines starting
//! with `#` are comments.

use std::collections::BTreeMap;
use std::path::Path;

use compiler::KernelKey;

use crate::calibrate::fit_models;
use crate::profile::{Device, DeviceProfile, KernelSample};
use crate::{Error, Result};

/// Parses the CSV text of `path` into samples.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<KernelSample>> {
    let err = |line: usize, reason: String| Error::Import { path: path.into(), line, reason };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((i, header)) = lines.next() else {
        return Err(err(1, "empty file: expected the header kind,dims,median_ms".into()));
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    if columns != ["kind", "dims", "median_ms"] {
        return Err(err(i + 1, format!("header is `{header}`, expected `kind,dims,median_ms`")));
    }
    let mut samples = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let [kind, dims, ms] = cells[..] else {
            return Err(err(i + 1, format!("expected 3 comma-separated cells, found {}", cells.len())));
        };
        let mut named = BTreeMap::new();
        for pair in dims.split_whitespace() {
            let (name, value) =
                pair.split_once('=').ok_or_else(|| err(i + 1, format!("dimension `{pair}` is not name=value")))?;
            let value: usize = value
                .parse()
                .map_err(|_| err(i + 1, format!("dimension `{name}` has a non-integer value `{value}`")))?;
            named.insert(name.to_string(), value);
        }
        let key = KernelKey::from_kind(kind, &named).map_err(|reason| err(i + 1, reason))?;
        let median_ms: f64 = ms.parse().map_err(|_| err(i + 1, format!("median_ms `{ms}` is not a number")))?;
        if !(median_ms > 0.0 && median_ms.is_finite()) {
            return Err(err(i + 1, format!("median_ms must be a positive number of milliseconds, got {median_ms}")));
        }
        samples.push(KernelSample { key, median_ms, p10_ms: median_ms, p90_ms: median_ms, runs: 1 });
    }
    if samples.is_empty() {
        return Err(err(i + 1, "no measurements after the header".into()));
    }
    Ok(samples)
}

/// Builds a profile of `device` from a CSV file of kernel measurements.
pub fn import_csv(path: &Path, device: Device, overhead_ms: f64) -> Result<DeviceProfile> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
    let mut profile = DeviceProfile::new(device, "import", None, 1);
    profile.samples = parse_csv(path, &text)?;
    profile.overhead_ms = overhead_ms;
    fit_models(&mut profile)?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_lines() {
        let p = Path::new("m.csv");
        let ok = "kind,dims,median_ms\n# a comment\ngemm[bias],m=8 n=16 k=4,0.01\nattention,batch=1 seq=8 heads=2 head_dim=4,0.02\n";
        assert_eq!(parse_csv(p, ok).unwrap().len(), 2);
        let bad = "kind,dims,median_ms\ngemm[bias],m=8 n=16,0.01\n";
        let e = parse_csv(p, bad).unwrap_err().to_string();
        assert!(e.starts_with("m.csv:2:") && e.contains("`k`"), "{e}");
        let e = parse_csv(p, "kind,dims,median_ms\nattention,batch=1 seq=8 heads=2 head_dim=4,-1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
        assert!(parse_csv(p, "a,b\n").unwrap_err().to_string().contains("header"));
    }
}
