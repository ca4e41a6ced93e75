//! The report's files, and `report.html` rendered by headless Chromium (Debian's `chromium`).
//!
//! The browser test runs wherever `chromium` is installed (`.ci/run` installs it) and is required
//! under CI=true; elsewhere it says that it was skipped.
#![allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.

use std::path::{Path, PathBuf};
use std::process::Command;

use reports::{Breakdown, Chosen, Device, Point, PredictorCheck, PredictorRow, Progress, Reference, Report, Speedup};

/// A report shaped like a real run's: a front over a cloud of evaluated archs, on two devices
/// (the second 3.5× slower).
fn report() -> Report {
    let mut points = Vec::new();
    for i in 0..60 {
        let latency = 0.25 * 1.07f64.powi(i);
        let front = i % 4 == 0;
        let score = 0.78 + 0.1 * (i as f64 / 60.0) - if front { 0.0 } else { 0.02 + 0.001 * (i % 7) as f64 };
        let on_front = front && latency < 10.0;
        points.push(Point {
            arch: format!("L{}-H{}-A2-F512", 1 + i % 6, 128 + 64 * (i % 4)),
            score,
            latency_ms: vec![latency, 3.5 * latency],
            feasible: latency < 10.0,
            front: vec![on_front, on_front],
        });
    }
    let chosen = |label: &str, i: usize| Chosen {
        label: label.into(),
        arch: points[i].arch.clone(),
        score: points[i].score,
        latency_ms: points[i].latency_ms.clone(),
        dir: format!("runs/test/export/{label}"),
        command: format!("canao infer --model runs/test/export/{label} --text \"a <fine> & witty film\""),
    };
    let chosen = vec![chosen("most-accurate", 52), chosen("knee", 24)];
    let nsga2: Vec<f64> = (1..=60).map(|n| 1.0 - 0.6 / n as f64).collect();
    let random: Vec<f64> = (1..=60).map(|n| 0.9 - 0.6 / n as f64).collect();
    Report {
        name: "html-test".into(),
        task: "sst2".into(),
        metric: "accuracy".into(),
        devices: vec![
            Device { name: "dev-epyc-2t".into(), latency_budget_ms: Some(10.0) },
            Device { name: "phone/big core".into(), latency_budget_ms: None },
        ],
        note: Some("reduced <training> budget & a note that needs escaping".into()),
        references: vec![
            Reference {
                label: "BERT-Tiny size".into(),
                arch: "L2-H128-A2-F512".into(),
                score: Some(0.79),
                latency_ms: vec![0.4, 1.4],
                skipped: None,
            },
            Reference {
                label: "BERT-Small size".into(),
                arch: "L4-H512-A8-F2048".into(),
                score: None,
                latency_ms: vec![],
                skipped: Some("wider than the supernet".into()),
            },
        ],
        progress: Some(Progress {
            nsga2,
            generations: vec![16, 32, 48, 60],
            random: Some(random),
            reference_point: vec![0.0, 15.0],
        }),
        predictor: Some(PredictorCheck {
            device: "dev-epyc-2t".into(),
            machine: "test machine".into(),
            rows: (1..8)
                .map(|i| PredictorRow {
                    arch: format!("L{i}-H256-A4-F1024"),
                    predicted_ms: i as f64 * 1.05,
                    measured_ms: i as f64,
                })
                .collect(),
            rmspe: 0.05,
            within_10: 1.0,
        }),
        breakdown: chosen
            .iter()
            .map(|c| {
                let ms = c.latency_ms[0];
                Breakdown {
                    label: c.label.clone(),
                    arch: c.arch.clone(),
                    parts: vec![
                        ("gemm".into(), ms * 0.7),
                        ("attention".into(), ms * 0.2),
                        ("layernorm".into(), ms * 0.1),
                    ],
                }
            })
            .collect(),
        speedups: chosen
            .iter()
            .map(|c| Speedup {
                label: c.label.clone(),
                arch: c.arch.clone(),
                compiled_ms: c.latency_ms[0],
                eager_ms: 3.0 * c.latency_ms[0],
                threads: 2,
            })
            .collect(),
        measured_busy: Some(0.02),
        chosen,
        points,
        facts: vec![("teacher".into(), "89.2 % dev accuracy".into())],
    }
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn writes_every_file_and_replaces_an_earlier_report() {
    let dir = out_dir("report-files");
    let written = reports::write(&report(), &dir).unwrap();
    for name in [
        "report.html",
        "report.md",
        "pareto.csv",
        "report.json",
        "pareto.svg",
        "pareto.png",
        "pareto-phone_big_core.svg",
        "pareto-phone_big_core.png",
        "progress.png",
        "predictor.png",
        "kernels.png",
        "speedup.png",
    ] {
        assert!(written.files.iter().any(|f| f == name), "{name} not in {:?}", written.files);
        let len = std::fs::metadata(dir.join(name)).unwrap().len();
        assert!(len > 100, "{name} has {len} bytes");
    }
    let csv = std::fs::read_to_string(dir.join("pareto.csv")).unwrap();
    assert_eq!(csv.lines().count(), 61, "a header and one row per evaluated arch");
    assert!(
        csv.starts_with(
            "arch,sst2_dev_accuracy,latency_ms[dev-epyc-2t],latency_ms[phone/big core],feasible,front[dev-epyc-2t]"
        ),
        "{csv}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("reduced &lt;training&gt; budget &amp; a note"), "the note is escaped");
    assert_eq!(html.matches("<svg").count(), 6, "six inline figures: a front per device and four more");
    let back: Report = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let original = report();
    assert_eq!(back.points.len(), original.points.len());
    assert_eq!(
        back.chosen.iter().map(|c| &c.arch).collect::<Vec<_>>(),
        original.chosen.iter().map(|c| &c.arch).collect::<Vec<_>>()
    );
    assert!((back.points[7].latency_ms[1] - original.points[7].latency_ms[1]).abs() < 1e-12);
    // A second report replaces the first as a whole; no staging folder is left behind.
    std::fs::write(dir.join("stale.txt"), "old").unwrap();
    let mut smaller = report();
    smaller.progress = None;
    smaller.speedups.clear();
    reports::write(&smaller, &dir).unwrap();
    assert!(!dir.join("stale.txt").exists() && !dir.join("speedup.png").exists());
    assert!(!dir.with_file_name(".report-files.tmp").exists());
}

#[test]
fn bad_numbers_are_refused_and_leave_the_old_report() {
    let dir = out_dir("report-bad");
    reports::write(&report(), &dir).unwrap();
    let mut bad = report();
    bad.points[3].latency_ms[1] = f64::NAN;
    let error = reports::write(&bad, &dir).unwrap_err().to_string();
    assert!(error.contains("latency of") && error.contains("NaN"), "{error}");
    assert!(dir.join("report.html").is_file(), "the earlier report is kept");
    bad.points[3].latency_ms.pop();
    let error = reports::write(&bad, &dir).unwrap_err().to_string();
    assert!(error.contains("1 latencies for 2 devices"), "{error}");
    bad.points.clear();
    assert!(reports::write(&bad, &dir).unwrap_err().to_string().contains("no evaluated archs"));
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Headless Chromium with the flags a closed network needs, on a fresh profile.
fn browser(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn report_html_renders_its_plots_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var("CI").is_err(), "CI must install chromium (.ci/run does) for this test");
        eprintln!("SKIPPED: no chromium here (apt-get install chromium)");
        return;
    };
    let dir = out_dir("report-browser");
    reports::write(&report(), &dir).unwrap();
    let page = format!("file://{}", dir.join("report.html").canonicalize().unwrap().display());
    let profile = out_dir("chromium-profile");

    // The page's own check: every inline figure laid out with a real size.
    let dom = browser(&chromium, &profile).args(["--virtual-time-budget=3000", "--dump-dom", &page]).output().unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom_text.contains("data-figures=\"6\""), "figures that drew: {}", String::from_utf8_lossy(&dom.stderr));

    // The screenshot: the front's blue and the references' red are on screen.
    let shot = dir.join("screenshot.png");
    let status = browser(&chromium, &profile)
        .args([format!("--screenshot={}", shot.display()), "--window-size=1100,2600".into(), page])
        .output()
        .unwrap();
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&status.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let count = |rgb: [u8; 3]| {
        pixels[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12))
            .count()
    };
    let blue = count([31, 119, 180]);
    let red = count([214, 39, 40]);
    assert!(blue > 500, "front and NSGA-II blue pixels: {blue}");
    assert!(red > 50, "reference red pixels: {red}");
}
