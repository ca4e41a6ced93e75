//! `canao compile`: lower and fuse an arch, show what the compiler did.

use std::path::PathBuf;

use anyhow::Result;
use compiler::{CompileOptions, PassSelection, Weights, compile, optimize};

use crate::io::{ArchArgs, parse_arch, write_atomic};

/// Compile an architecture and show its kernels; `--explain` shows every pass.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: ArchArgs,
    /// Print the pipeline, the kernel list after each pass, every rewrite and every refused fusion.
    #[arg(long)]
    explain: bool,
    /// Write the graph before and after the pipeline as Graphviz files FILE.before.dot and FILE.after.dot.
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Write the program's distinct kernels as a measurement template for `canao import`
    /// (`kind,dims,median_ms` with the last column empty, for a team's own harness to fill).
    #[arg(long, value_name = "FILE")]
    import_template: Option<PathBuf>,
    /// Skip a pass (repeatable); see --explain for the names.
    #[arg(long = "disable-pass", value_name = "PASS")]
    disable: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let arch = parse_arch(&args.target.arch, args.target.seq)?;
    let passes =
        if args.disable.is_empty() { PassSelection::All } else { PassSelection::Without(args.disable.clone()) };
    let options = CompileOptions { batch: args.target.batch, passes, explain: args.explain, ..Default::default() };
    let optimized = optimize(&arch, &options)?;

    println!("arch {arch}  (batch {}, seq {})", args.target.batch, arch.seq_len);
    println!("parameters {}  GFLOPs {:.3}", arch.params(), arch.flops(args.target.batch) as f64 / 1e9);
    if args.explain {
        println!("\nlowered: {} kernels", optimized.before.kernel_count());
        for report in &optimized.passes {
            let mark = if report.changed { "changed" } else { "no change" };
            println!("\n== pass {} ({mark}): {} kernels", report.name, report.kernels_after.len());
            for r in &report.notes.rewrites {
                println!("  rewrote  {r}");
            }
            for r in &report.notes.refusals {
                println!("  refused  {r}");
            }
            println!("  kernels: {}", report.kernels_after.join(" "));
        }
        println!();
    }
    // Bind seeded random weights to show the final program with its buffer plan.
    let program = compile(&arch, &Weights::random(&arch, 0), &options)?;
    println!(
        "program: {} kernels, peak activation memory {:.1} KiB",
        program.kernels().len(),
        program.peak_activation_bytes() as f64 / 1024.0
    );
    for (i, kernel) in program.kernels().iter().enumerate() {
        println!("  {i:>3} {}", kernel.key);
    }
    if let Some(path) = &args.import_template {
        let mut csv = String::from("kind,dims,median_ms\n");
        let mut seen = std::collections::BTreeSet::new();
        for kernel in program.kernels() {
            if seen.insert(kernel.key.to_string()) {
                let dims: Vec<String> = kernel.key.dims().iter().map(|(n, v)| format!("{n}={v}")).collect();
                csv.push_str(&format!("{},{},\n", kernel.key.kind(), dims.join(" ")));
            }
        }
        write_atomic(path, csv.as_bytes())?;
        println!("wrote {} ({} distinct kernels to time)", path.display(), seen.len());
    }
    if let Some(path) = &args.dot {
        let stem = path.with_extension("");
        let before = stem.with_extension("before.dot");
        let after = stem.with_extension("after.dot");
        write_atomic(&before, optimized.before.to_dot().as_bytes())?;
        write_atomic(&after, optimized.after.to_dot().as_bytes())?;
        println!("wrote {} and {}", before.display(), after.display());
    }
    Ok(())
}
