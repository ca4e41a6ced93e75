//! A compiled [`Program`]: kernels in execution order over preallocated buffers, weights bound,
//! GEMM schedules tuned, ready to run batches. Also the compile entry points and their options.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arch::Arch;

use crate::exec::{Env, Kernel, Src, run_kernel};
use crate::ir::{Graph, InputKind, Op, WeightRef};
use crate::kernels::gemm::GemmPlan;
use crate::kernels::packed::PackedB;
use crate::key::KernelKey;
use crate::lower::{BERT_LAYER_NORM_EPS, lower, weight_specs};
use crate::passes::{Notes, pass_names, pipeline};
use crate::plan::{BufferPlan, plan_buffers};
use crate::tune::{GemmShape, gemm_plan};
use crate::weights::Weights;
use crate::{Error, Result};

/// Which passes of the pipeline run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PassSelection {
    /// The whole pipeline.
    #[default]
    All,
    /// No rewrite at all: the unfused graph, op by op.
    None,
    /// The pipeline without the named passes.
    Without(Vec<String>),
}

/// How GEMM schedules are chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tuning {
    /// A fixed heuristic (fast to compile; used by tests).
    #[default]
    Off,
    /// Time candidates on this machine; cache results in memory and in `cache_file` if given.
    Auto { cache_file: Option<PathBuf> },
}

/// Options of [`compile`].
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Sequences per run.
    pub batch: usize,
    /// Worker threads (1 runs everything on the calling thread).
    pub threads: usize,
    pub passes: PassSelection,
    pub tuning: Tuning,
    pub layer_norm_eps: f32,
    /// Pin worker `i` to CPU `i` (calibration and benchmarks: steadier timings).
    pub pin_threads: bool,
    /// Record the kernel list after every pass in [`PassReport::kernels_after`] (for `--explain`;
    /// off by default because the latency predictor optimizes thousands of archs a second).
    pub explain: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            batch: 1,
            threads: 1,
            passes: PassSelection::All,
            tuning: Tuning::Off,
            layer_norm_eps: BERT_LAYER_NORM_EPS,
            pin_threads: false,
            explain: false,
        }
    }
}

/// What one pass did, for `--explain`.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub name: &'static str,
    pub changed: bool,
    /// Kernel names after the pass, when [`CompileOptions::explain`] is set.
    pub kernels_after: Vec<String>,
    pub notes: Notes,
}

/// The graph before and after the pipeline, with a report per pass.
#[derive(Debug, Clone)]
pub struct Optimized {
    pub before: Graph,
    pub after: Graph,
    pub passes: Vec<PassReport>,
}

/// Lowers `arch` and runs the selected passes, keeping the graph before them and a report per
/// pass.
pub fn optimize(arch: &Arch, options: &CompileOptions) -> Result<Optimized> {
    let before = lower_checked(arch, options)?;
    let mut after = before.clone();
    let passes = run_pipeline(&mut after, options)?;
    Ok(Optimized { before, after, passes })
}

/// The fused graph of `arch` alone: what [`optimize`] gives as `after`, without the copy and the
/// reports (the latency predictor's path).
pub fn fused_graph(arch: &Arch, options: &CompileOptions) -> Result<Graph> {
    let mut graph = lower_checked(arch, options)?;
    run_pipeline(&mut graph, options)?;
    Ok(graph)
}

fn lower_checked(arch: &Arch, options: &CompileOptions) -> Result<Graph> {
    arch.validate()?;
    if options.batch == 0 || options.threads == 0 {
        return Err(Error::Options(format!(
            "batch ({}) and threads ({}) must be at least 1",
            options.batch, options.threads
        )));
    }
    Ok(lower(arch, options.batch, options.layer_norm_eps))
}

fn run_pipeline(graph: &mut Graph, options: &CompileOptions) -> Result<Vec<PassReport>> {
    let disabled: Vec<String> = match &options.passes {
        PassSelection::All => vec![],
        PassSelection::None => pass_names().iter().map(|s| s.to_string()).collect(),
        PassSelection::Without(names) => {
            let known = pass_names();
            if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(Error::Options(format!("unknown pass `{bad}`; passes are {}", known.join(", "))));
            }
            names.clone()
        }
    };
    let mut reports = Vec::new();
    for pass in pipeline() {
        if disabled.iter().any(|d| d == pass.name()) {
            continue;
        }
        let _span = tracing::debug_span!("pass", name = pass.name()).entered();
        let mut notes = if options.explain { Notes::recording() } else { Notes::default() };
        let changed = pass.run(graph, &mut notes)?;
        let kernels_after = if options.explain { graph.kernel_names() } else { Vec::new() };
        reports.push(PassReport { name: pass.name(), changed, kernels_after, notes });
    }
    Ok(reports)
}

/// Compiles `arch` with `weights` into a runnable program.
pub fn compile(arch: &Arch, weights: &Weights, options: &CompileOptions) -> Result<Program> {
    let _span = tracing::info_span!("compile", arch = %arch).entered();
    Program::build(arch, fused_graph(arch, options)?, weights, options)
}

/// One batch of input: `batch × seq` token ids, token types and attention mask, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    pub mask: Vec<f32>,
}

impl Batch {
    /// Deterministic pseudo-random tokens; sequence `b` has `lengths[b]` real tokens, the rest
    /// padding (id 0, mask 0).
    pub fn synthetic(arch: &Arch, lengths: &[usize], seed: u64) -> Batch {
        let seq = arch.seq_len;
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let mut batch = Batch { ids: vec![], types: vec![], mask: vec![] };
        for &len in lengths {
            for s in 0..seq {
                let real = s < len.min(seq);
                batch.ids.push(if real { next() % arch.vocab_size as u32 } else { 0 });
                batch.types.push(if real && s >= len / 2 { next() % arch.type_vocab_size as u32 } else { 0 });
                batch.mask.push(if real { 1.0 } else { 0.0 });
            }
        }
        batch
    }
}

/// A compiled, runnable model for a fixed batch size and sequence length.
pub struct Program {
    arch: Arch,
    batch: usize,
    threads: usize,
    kernels: Vec<Kernel>,
    buffers: Vec<Vec<f32>>,
    weights: Vec<Arc<Vec<f32>>>,
    positions: Vec<u32>,
    output: usize,
    output_shape: Vec<usize>,
    plan: BufferPlan,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Program {
    fn build(arch: &Arch, graph: Graph, weights: &Weights, options: &CompileOptions) -> Result<Program> {
        let threads = options.threads;
        let pool = if threads > 1 { Some(shared_pool(threads, options.pin_threads)?) } else { None };
        let schedule = graph.schedule();
        let plan = plan_buffers(&graph, &schedule);
        let specs: HashMap<String, Vec<usize>> = weight_specs(arch).into_iter().collect();
        let mut bound: Vec<Arc<Vec<f32>>> = Vec::new();
        let mut weight_slot: HashMap<petgraph::stable_graph::NodeIndex<u32>, usize> = HashMap::new();
        for n in graph.dag.node_indices() {
            if let Op::Weight(w) = graph.op(n) {
                weight_slot.insert(n, bound.len());
                bound.push(bind(w, &specs, weights)?);
            }
        }
        let mut kernels = Vec::with_capacity(schedule.len());
        for &n in &schedule {
            let node = graph.node(n);
            let inputs: Vec<Src> = graph
                .inputs(n)
                .into_iter()
                .map(|i| match graph.op(i) {
                    Op::Input(kind) => Src::Input(*kind),
                    Op::Weight(_) => Src::Weight(weight_slot[&i]),
                    _ => Src::Buffer(plan.assignment[&i]),
                })
                .collect();
            let input_shapes: Vec<Vec<usize>> = graph.inputs(n).iter().map(|&i| graph.node(i).shape.clone()).collect();
            let key = KernelKey::of(&node.op, &input_shapes, &node.shape, graph.seq);
            let (gemm, packed) = match (&key, inputs.get(1)) {
                (KernelKey::Gemm { m, n, k, .. }, Some(Src::Weight(w))) => {
                    let plan = choose_plan(GemmShape { m: *m, n: *n, k: *k, threads }, &options.tuning, &pool);
                    (Some(plan), Some(Arc::new(PackedB::pack(&bound[*w], *n, *k))))
                }
                _ => (None, None),
            };
            kernels.push(Kernel {
                key,
                op: node.op.clone(),
                inputs,
                input_shapes,
                out_shape: node.shape.clone(),
                output: plan.assignment[&n],
                gemm,
                packed,
            });
        }
        let out_node = graph.outputs[0];
        let seq = graph.seq;
        Ok(Program {
            arch: arch.clone(),
            batch: options.batch,
            threads,
            kernels,
            buffers: plan.sizes.iter().map(|&s| vec![0.0; s]).collect(),
            weights: bound,
            positions: (0..options.batch * seq).map(|i| (i % seq) as u32).collect(),
            output: plan.assignment[&out_node],
            output_shape: graph.node(out_node).shape.clone(),
            plan,
            pool,
        })
    }

    /// Runs one batch; returns the output `[batch, width]` row-major (see [`Program::output_shape`]).
    pub fn run(&mut self, input: &Batch) -> Result<Vec<f32>> {
        self.check(input)?;
        self.profile_or_run(input, None);
        let n: usize = self.output_shape.iter().product();
        Ok(self.buffers[self.output][..n].to_vec())
    }

    /// Runs `reps` batches, timing every kernel; returns each kernel's timing summary.
    pub fn profile(&mut self, input: &Batch, reps: usize) -> Result<Vec<crate::timing::Timing>> {
        self.check(input)?;
        let mut samples = vec![Vec::with_capacity(reps); self.kernels.len()];
        for _ in 0..reps.max(1) {
            self.profile_or_run(input, Some(&mut samples));
        }
        Ok(samples.iter_mut().map(|t| crate::timing::summarize(t)).collect())
    }

    /// Runs every kernel once (inside the thread pool), recording per-kernel milliseconds into
    /// `samples` when given.
    fn profile_or_run(&mut self, input: &Batch, mut samples: Option<&mut Vec<Vec<f64>>>) {
        let seq = self.arch.seq_len;
        let Program { kernels, buffers, weights, positions, threads, pool, .. } = self;
        let mut go = || {
            for (i, kernel) in kernels.iter().enumerate() {
                let start = samples.is_some().then(std::time::Instant::now);
                let mut out = std::mem::take(&mut buffers[kernel.output]);
                let env = Env { buffers, weights, positions, input, seq, threads: *threads };
                run_kernel(kernel, &env, &mut out);
                buffers[kernel.output] = out;
                if let (Some(start), Some(samples)) = (start, samples.as_deref_mut()) {
                    samples[i].push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        };
        match pool {
            Some(pool) => pool.install(go),
            None => go(),
        }
    }

    fn check(&self, input: &Batch) -> Result<()> {
        let want = self.batch * self.arch.seq_len;
        for (name, len) in [("ids", input.ids.len()), ("types", input.types.len()), ("mask", input.mask.len())] {
            if len != want {
                return Err(Error::Input(format!(
                    "{name} has {len} entries; the program was compiled for {} × {} = {want}",
                    self.batch, self.arch.seq_len
                )));
            }
        }
        if let Some((i, &id)) = input.ids.iter().enumerate().find(|&(_, &id)| id as usize >= self.arch.vocab_size) {
            return Err(Error::Input(format!(
                "token id {id} at position {i} is outside the vocabulary ({})",
                self.arch.vocab_size
            )));
        }
        if let Some((i, &t)) = input.types.iter().enumerate().find(|&(_, &t)| t as usize >= self.arch.type_vocab_size) {
            return Err(Error::Input(format!(
                "token type {t} at position {i} is outside 0..{}",
                self.arch.type_vocab_size
            )));
        }
        if let Some((i, m)) = input.mask.iter().enumerate().find(|&(_, &m)| m != 0.0 && m != 1.0) {
            return Err(Error::Input(format!("mask value {m} at position {i} is neither 0 nor 1")));
        }
        Ok(())
    }

    /// The kernels in execution order.
    pub fn kernels(&self) -> &[Kernel] {
        &self.kernels
    }
    /// The architecture compiled.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }
    /// Sequences per run.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Shape of [`Program::run`]'s output.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    /// Bytes of all activation buffers together (after reuse).
    pub fn peak_activation_bytes(&self) -> usize {
        self.plan.peak_bytes()
    }
    /// Floating-point operations of one run (GEMMs and attention products).
    pub fn flops(&self) -> u64 {
        self.kernels.iter().map(|k| k.key.flops()).sum()
    }
}

/// The process's worker pool for `threads` threads (pinned or not), started on first use. Programs
/// share it: a pool per program would leave the idle workers of one program spinning on the
/// cores that the next program to run needs.
fn shared_pool(threads: usize, pin: bool) -> Result<Arc<rayon::ThreadPool>> {
    /// Pools by (threads, pinned).
    type Pools = HashMap<(usize, bool), Arc<rayon::ThreadPool>>;
    static POOLS: std::sync::OnceLock<std::sync::Mutex<Pools>> = std::sync::OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = pools.lock().map_err(|_| Error::Options("worker pool registry poisoned".into()))?;
    if let Some(pool) = pools.get(&(threads, pin)) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("canao-worker-{i}"))
        .start_handler(move |i| {
            if pin {
                pin_to_cpu(i);
            }
        })
        .build()
        .map_err(|e| Error::Options(format!("cannot start {threads} worker threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert((threads, pin), pool.clone());
    Ok(pool)
}

/// Pins the calling thread to CPU `cpu` (modulo the CPUs available); best effort.
fn pin_to_cpu(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu % cpus, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing::debug!(cpu, "could not pin a worker thread");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

fn choose_plan(shape: GemmShape, tuning: &Tuning, pool: &Option<Arc<rayon::ThreadPool>>) -> GemmPlan {
    match tuning {
        Tuning::Off => GemmPlan::heuristic(shape.m, shape.n, shape.threads),
        Tuning::Auto { cache_file } => {
            let tune = || gemm_plan(shape, cache_file.as_deref());
            match pool {
                Some(pool) => pool.install(tune),
                None => tune(),
            }
        }
    }
}

/// Resolves a weight node against the checkpoint, concatenating merged projections.
fn bind(w: &WeightRef, specs: &HashMap<String, Vec<usize>>, weights: &Weights) -> Result<Arc<Vec<f32>>> {
    let expected = |name: &str| specs.get(name).cloned().unwrap_or_default();
    match w {
        WeightRef::Single(name) => Ok(weights.get(name, &expected(name))?.data.clone()),
        WeightRef::Concat(names) => {
            let mut data = Vec::new();
            for name in names {
                data.extend_from_slice(&weights.get(name, &expected(name))?.data);
            }
            Ok(Arc::new(data))
        }
    }
}

impl InputKind {
    /// Whether the input holds indices (ids, types, positions) rather than values.
    pub fn is_index(self) -> bool {
        !matches!(self, InputKind::Mask)
    }
}
