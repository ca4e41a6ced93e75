//! `canao`: compiler-aware architecture search over BERT variants. This binary wires the crates
//! together; each stage is a subcommand.

mod cmd;
mod compiled_eval;
mod io;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// canao — find the most accurate BERT variant that meets a latency budget on your device.
///
/// Architectures are given as compact strings (`L4-H256-A4-F1024`, per-layer `L2-H128-A[2,4]-F[256,512]`,
/// head size `-D32`, sequence length `-S64`), as RON (`Arch(layers: 2, …)`), or as a path to a
/// RON file holding either.
#[derive(Debug, Parser)]
#[command(name = "canao", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Compile(cmd::compile::Args),
    Bench(cmd::bench::Args),
    Infer(cmd::infer::Args),
    Calibrate(cmd::latency::CalibrateArgs),
    Predict(cmd::latency::PredictArgs),
    ValidateLatency(cmd::latency::ValidateArgs),
    Import(cmd::latency::ImportArgs),
    Search(cmd::search::Args),
    Compare(cmd::compare::Args),
    Run(cmd::run::Args),
    Report(cmd::run::ReportArgs),
    Train(cmd::train::TrainArgs),
    Eval(cmd::train::EvalArgs),
    Export(cmd::train::ExportArgs),
    Soup(cmd::train::SoupArgs),
}

/// Keeps freed tensor buffers in the process instead of returning them to the kernel: burn
/// allocates and frees large activation and gradient buffers every training step, and glibc's
/// defaults (mmap above 128 KiB or so, trim above 128 KiB) made every step page-fault and zero fresh pages
/// (+21 % training tokens/s measured without them; BENCHMARKS.md).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`canao … | head`) like other Unix tools, instead of panicking.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tune_malloc();
    // `RUST_LOG=info` prints each stage's span (data loading, tokenization, importance,
    // training, evaluation, checkpoints, export, the stages of `canao run`, …) as it closes,
    // with its time.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => cmd::compile::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Infer(args) => cmd::infer::run(args),
        Command::Calibrate(args) => cmd::latency::calibrate_cmd(args),
        Command::Predict(args) => cmd::latency::predict_cmd(args),
        Command::ValidateLatency(args) => cmd::latency::validate_cmd(args),
        Command::Import(args) => cmd::latency::import_cmd(args),
        Command::Search(args) => cmd::search::run(args),
        Command::Compare(args) => cmd::compare::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Report(args) => cmd::run::report(args),
        Command::Train(args) => cmd::train::train(args),
        Command::Eval(args) => cmd::train::eval(args),
        Command::Export(args) => cmd::train::export_cmd(args),
        Command::Soup(args) => cmd::train::soup_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, `: `-separated, as `{:#}` prints them, but without a
/// cause that the message before it already spells out (the libraries' errors print their
/// source, as `{path}: {source}`, and also return it as their `source()`).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_already_spelt_out_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let spelt_out =
            anyhow::Error::new(latency::Error::Io { path: "p.ron".into(), source: io }).context("e.ron: `objectives`");
        assert_eq!(one_line(&spelt_out), "e.ron: `objectives`: p.ron: no such file");
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&plain), "outer: middle: inner");
    }
}
