//! Training, in two phases. Phase one fine-tunes the teacher (the full model) on the task.
//! Phase two trains the supernet from the fine-tuned teacher with the sandwich rule (the largest,
//! the smallest and `random` sampled subnets each step, their gradients summed) and knowledge
//! distillation from the teacher: soft logits at a temperature, plus hidden-state and attention
//! distillation as options. AdamW with linear warm-up and linear decay, gradient accumulation.
//!
//! A checkpoint (weights, optimizer state, RNG, data position) is written every
//! `checkpoint_every` steps through a temporary folder and a rename; [`Trainer::resume`] continues
//! from it exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arch::{Arch, SearchSpace};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::adamw::FusedAdamW;
use crate::data::{Label, Task};
use crate::eval::{Score, evaluate};
use crate::model::{Mode, ModelError, Output, Supernet};
use crate::tokens::{Batch, Encoded, plan};

/// Errors of training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("invalid training config: {0}")]
    Config(String),
    #[error("the loss is not finite ({loss}) at step {step}: lower the learning rate")]
    Diverged { step: usize, loss: f64 },
}

/// Phase two's settings: which subnets each step trains and what they distil.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sandwich {
    /// The subnets: the largest and smallest of this space and `random` samples of it.
    pub space: SearchSpace,
    /// Random subnets per step, besides the largest and the smallest.
    pub random: usize,
    /// Subnets trained at every step besides those (compact strings, `L4-H256-A4-F1024-D32`):
    /// sizes the search must serve well, which random samples of a large space rarely hit.
    pub fixed: Vec<String>,
    /// Weight of each `fixed` subnet's loss in the step's gradient (the others weigh 1): a larger
    /// share of the shared weights' updates for the sizes the search must serve.
    pub fixed_weight: f64,
    /// Augmentation of the training batches (Tang et al. 2019), which teacher and subnets then
    /// see alike: the probability that a word piece becomes `[MASK]`…
    pub augment_mask: f64,
    /// … and that a single sentence is cut to one of its n-grams (n in 1..=5 word pieces). Both
    /// leave the gold labels unfit, so they need `hard_weight: 0`.
    pub augment_ngram: f64,
    /// Softmax temperature of logit distillation.
    pub temperature: f64,
    /// Weight of the hard-label loss beside logit distillation (0: distillation only).
    pub hard_weight: f64,
    /// Weight of hidden-state distillation: the mean squared error of the subnet's last hidden
    /// state against the teacher's last, on the subnet's hidden dims, over real tokens.
    pub hidden_weight: f64,
    /// Weight of attention distillation: the squared error of the subnet's last-layer attention
    /// probabilities against the teacher's last-layer probabilities of the same heads (as MiniLM
    /// distils the last layer), summed over keys, averaged over heads and real queries.
    pub attention_weight: f64,
    /// Put the hidden dims, heads and FFN neurons of the starting model (and of the teacher) in
    /// importance order before training, so that narrow subnets keep the most important ones
    /// ([`crate::reorder`]). The full model is unchanged by it.
    pub reorder: bool,
    /// How `reorder` ranks them: by weight magnitude, or on training batches (DynaBERT).
    pub importance: crate::reorder::Importance,
    /// Whether `reorder` moves the hidden dims too (heads and FFN neurons always move). Data
    /// importance puts the teacher's few large-activation dims first, where every subnet's hidden
    /// slice and its hidden-state distillation see them.
    pub reorder_hidden: bool,
}

impl Sandwich {
    /// Whether training batches are augmented.
    pub fn augments(&self) -> bool {
        self.augment_mask > 0.0 || self.augment_ngram > 0.0
    }

    /// The `fixed` subnets, parsed; a string that is no arch is a config error naming it.
    pub fn fixed_archs(&self) -> Result<Vec<Arch>, TrainError> {
        self.fixed
            .iter()
            .map(|s| Arch::parse(s).map_err(|e| TrainError::Config(format!("sandwich.fixed: `{s}`: {e}"))))
            .collect()
    }
}

impl Default for Sandwich {
    fn default() -> Sandwich {
        Sandwich {
            space: SearchSpace::default(),
            random: 2,
            fixed: Vec::new(),
            fixed_weight: 1.0,
            augment_mask: 0.0,
            augment_ngram: 0.0,
            temperature: 1.0,
            hard_weight: 0.0,
            hidden_weight: 0.0,
            attention_weight: 0.0,
            reorder: false,
            importance: crate::reorder::Importance::Magnitude,
            reorder_hidden: true,
        }
    }
}

/// A training run's settings (RON or JSON; omitted fields take these defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub task: Task,
    /// Passes over the training split (fractions allowed).
    pub epochs: f64,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed into one step.
    pub accumulate: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Fraction of the steps spent warming the learning rate up linearly; it then decays
    /// linearly to zero.
    pub warmup: f64,
    pub weight_decay: f64,
    /// Gradient clipping by norm, per parameter tensor (burn's `GradientClipping::Norm`; PyTorch's
    /// `clip_grad_norm_` clips the global norm instead); 0: none.
    pub clip_norm: f32,
    /// Longest sequence in tokens (longer ones are truncated).
    pub max_len: usize,
    /// Dropout of the trained model (BERT's 0.1); the teacher of phase two runs without.
    pub dropout: f64,
    /// Label smoothing of the hard-label cross-entropy (Szegedy et al. 2016): the target puts
    /// `1 - ε` on the label and spreads `ε` evenly over all classes; 0: plain one-hot targets.
    /// Phase one's loss, and phase two's hard-label term when it has one.
    pub label_smoothing: f64,
    pub seed: u64,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: usize,
    /// Steps between dev evaluations of the largest subnet (0: only at the end).
    pub eval_every: usize,
    /// Train on the first `limit` examples only (smoke runs and tests).
    pub limit: Option<usize>,
    /// Phase two (supernet training) when set; phase one (the teacher) when not.
    pub sandwich: Option<Sandwich>,
    /// Keep an exponential moving average of the weights with this decay per step (0.999 is
    /// usual), and evaluate, checkpoint and keep the average instead of the last weights (see
    /// [`crate::average`]); `None`: the last weights.
    pub ema: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            task: Task::Sst2,
            epochs: 2.0,
            batch_size: 32,
            accumulate: 1,
            lr: 5e-5,
            warmup: 0.06,
            weight_decay: 0.01,
            clip_norm: 1.0,
            max_len: 128,
            dropout: 0.1,
            label_smoothing: 0.0,
            seed: 17,
            checkpoint_every: 500,
            eval_every: 0,
            limit: None,
            sandwich: None,
            ema: None,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: &str| Err(TrainError::Config(what.into()));
        if self.epochs.is_nan() || self.epochs <= 0.0 {
            return bad("`epochs` must be > 0");
        }
        if self.batch_size == 0 || self.accumulate == 0 {
            return bad("`batch_size` and `accumulate` must be ≥ 1");
        }
        if self.lr.is_nan() || self.lr <= 0.0 || !(0.0..1.0).contains(&self.warmup) {
            return bad("`lr` must be > 0 and `warmup` in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("`dropout` must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("`label_smoothing` must be in [0, 1)");
        }
        if self.ema.is_some_and(|d| !(d > 0.0 && d < 1.0)) {
            return bad("`ema` must be in (0, 1)");
        }
        if self.max_len < 3 {
            return bad("`max_len` must be ≥ 3 (two special tokens and one word)");
        }
        if let Some(s) = &self.sandwich {
            s.space.validate().map_err(|e| TrainError::Config(format!("sandwich.space: {e}")))?;
            if s.temperature.is_nan() || s.temperature <= 0.0 {
                return bad("`sandwich.temperature` must be > 0");
            }
            s.fixed_archs()?;
            if !(s.fixed_weight.is_finite() && s.fixed_weight >= 0.0) {
                return bad("`sandwich.fixed_weight` must be a finite number ≥ 0");
            }
            for (name, p) in [("augment_mask", s.augment_mask), ("augment_ngram", s.augment_ngram)] {
                if !(0.0..=1.0).contains(&p) {
                    return bad(&format!("`sandwich.{name}` is a probability: it must be in [0, 1]"));
                }
            }
            if s.augments() && s.hard_weight > 0.0 {
                return bad("`sandwich.augment_*` needs `hard_weight: 0`: an augmented sentence has no gold label");
            }
        }
        Ok(())
    }

    /// Optimizer steps of the whole run over `examples` training examples.
    pub fn total_steps(&self, examples: usize) -> usize {
        let per_epoch = examples.div_ceil(self.batch_size) as f64 / self.accumulate as f64;
        ((per_epoch * self.epochs).ceil() as usize).max(1)
    }

    /// The learning rate at `step` (0-based) of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warm = (self.warmup * total as f64).ceil().max(1.0);
        let s = step as f64 + 1.0;
        // Linear decay that would reach zero one step after the last, so that every step learns.
        if s <= warm {
            self.lr * s / warm
        } else {
            self.lr * ((total as f64 - s + 1.0) / (total as f64 - warm + 1.0)).max(0.0)
        }
    }
}

/// One line of the training log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// Training tokens (unpadded) per second over the steps since the last multiple of
    /// [`RATE_WINDOW`] (evaluations and checkpoints excluded).
    pub tokens_per_s: f64,
    /// Dev score of the largest subnet, when evaluated at this step.
    pub dev: Option<f64>,
    /// Phase two: the loss of each subnet of the step (largest, smallest, then the random ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<f64>,
}

/// Where a run stands: enough, with the weights and the optimizer, to resume exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    /// Epoch and the next batch within its plan.
    pub epoch: usize,
    pub batch: usize,
    /// The generator of the sandwich's random subnets.
    pub rng: ChaCha8Rng,
    pub log: Vec<LogEntry>,
}

/// A training run over encoded data.
pub struct Trainer {
    pub config: TrainConfig,
    pub model: Supernet,
    /// The moving average of the weights, when `config.ema` is set.
    average: Option<Supernet>,
    optim: ModuleOptimizer,
    teacher: Option<Supernet>,
    pub progress: Progress,
    train: Vec<Encoded>,
    dev: Vec<Encoded>,
    pad: u32,
    /// `[MASK]`'s id, for masking augmentation.
    mask_token: Option<u32>,
    dir: PathBuf,
}

const CHECKPOINT: &str = "checkpoint";
/// The moving average's weights in a checkpoint.
pub(crate) const AVERAGE: &str = "average.bpk";

/// Steps over which [`LogEntry::tokens_per_s`] is measured.
pub const RATE_WINDOW: usize = 10;

impl Trainer {
    /// A new run writing its checkpoints under `dir`. `model` must be on an autodiff device;
    /// `teacher` (phase two) on any device.
    pub fn new(
        config: TrainConfig,
        model: Supernet,
        teacher: Option<Supernet>,
        mut train: Vec<Encoded>,
        dev: Vec<Encoded>,
        pad: u32,
        dir: &Path,
    ) -> Result<Trainer, TrainError> {
        config.validate()?;
        if config.sandwich.is_some() && teacher.is_none() {
            return Err(TrainError::Config("phase two (sandwich) needs the fine-tuned teacher".into()));
        }
        if !model.device().is_autodiff() {
            return Err(TrainError::Config("the trained model must be on an autodiff device".into()));
        }
        let want = config.task.outputs();
        let head = model.max.task.output_width(model.max.hidden);
        if head != want || (config.task.is_regression() != (model.max.task == arch::TaskHead::Regression)) {
            return Err(TrainError::Config(format!(
                "the model's head ({:?}) does not fit the task {} ({want} outputs)",
                model.max.task, config.task
            )));
        }
        if config.max_len > model.max.max_positions {
            return Err(TrainError::Config(format!(
                "`max_len` {} exceeds the model's {} positions",
                config.max_len, model.max.max_positions
            )));
        }
        if let Some(limit) = config.limit {
            train.truncate(limit);
        }
        if train.is_empty() {
            return Err(TrainError::Config("no training examples".into()));
        }
        if let Some(s) = &config.sandwich {
            for arch in [s.space.largest(), s.space.smallest()].into_iter().chain(s.fixed_archs()?) {
                model.check(&arch)?;
            }
        }
        let total_steps = config.total_steps(train.len());
        let optim = optimizer(&config);
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5a5a);
        let progress = Progress { step: 0, total_steps, epoch: 0, batch: 0, rng, log: vec![] };
        let average = config.ema.map(|_| model.valid());
        let dir = dir.to_path_buf();
        Ok(Trainer { config, model, average, optim, teacher, progress, train, dev, pad, mask_token: None, dir })
    }

    /// Sets `[MASK]`'s id (see [`crate::Encoder::mask`]); a config that masks needs one.
    pub fn with_mask_token(mut self, id: Option<u32>) -> Result<Trainer, TrainError> {
        if id.is_none() && self.config.sandwich.as_ref().is_some_and(|s| s.augment_mask > 0.0) {
            return Err(TrainError::Config(
                "`sandwich.augment_mask` needs a [MASK] token, and the tokenizer has none".into(),
            ));
        }
        self.mask_token = id;
        Ok(self)
    }

    /// Continues the run checkpointed under `dir` (its config, weights, optimizer, RNG and data
    /// position); `model` is a freshly built supernet of the same shape on an autodiff device.
    pub fn resume(
        dir: &Path,
        model: Supernet,
        teacher: Option<Supernet>,
        train: Vec<Encoded>,
        dev: Vec<Encoded>,
        pad: u32,
    ) -> Result<Trainer, TrainError> {
        // A crash between the two renames of `checkpoint` leaves only the previous one.
        let ck = match dir.join(CHECKPOINT) {
            ck if ck.is_dir() => ck,
            _ => dir.join(format!(".{CHECKPOINT}.old")),
        };
        let err = |path: PathBuf, message: String| TrainError::Checkpoint { path, message };
        let read = |name: &str| -> Result<String, TrainError> {
            let path = ck.join(name);
            std::fs::read_to_string(&path).map_err(|e| err(path, e.to_string()))
        };
        let config: TrainConfig =
            serde_json::from_str(&read("config.json")?).map_err(|e| err(ck.join("config.json"), e.to_string()))?;
        let progress: Progress =
            serde_json::from_str(&read("progress.json")?).map_err(|e| err(ck.join("progress.json"), e.to_string()))?;
        let mut trainer = Trainer::new(config, model, teacher, train, dev, pad, dir)?;
        if trainer.progress.total_steps != progress.total_steps {
            return Err(err(ck, "the training data differ from the checkpointed run's".into()));
        }
        let weights = ck.join("model.bpk");
        trainer.model = trainer.model.clone().try_load_file(&weights).map_err(|e| err(weights, e.to_string()))?;
        let optim_path = ck.join("optimizer.bpk");
        trainer.optim = optimizer(&trainer.config).load(&optim_path).map_err(|e| err(optim_path, e.to_string()))?;
        if let Some(average) = trainer.average.take() {
            let path = ck.join(AVERAGE);
            trainer.average = Some(average.try_load_file(&path).map_err(|e| err(path, e.to_string()))?);
        }
        trainer.progress = progress;
        Ok(trainer)
    }

    /// Whether every step has run.
    pub fn done(&self) -> bool {
        self.progress.step >= self.progress.total_steps
    }

    /// Runs the remaining steps (at most `max_steps` of them), with a progress bar unless
    /// `quiet`, checkpointing as configured and at the end.
    pub fn run(&mut self, max_steps: Option<usize>, quiet: bool) -> Result<(), TrainError> {
        let phase = if self.config.sandwich.is_some() { "supernet" } else { "teacher" };
        let _span = info_span!("train", phase, task = %self.config.task).entered();
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(self.progress.total_steps as u64) };
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps, {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(phase);
        bar.set_position(self.progress.step as u64);
        let end =
            max_steps.map_or(self.progress.total_steps, |m| (self.progress.step + m).min(self.progress.total_steps));
        let mut epoch_plan = plan(&self.train, self.config.batch_size, Some(self.epoch_seed()));
        let (mut tokens, mut clock) = (0usize, Instant::now());
        while self.progress.step < end {
            let step = self.progress.step;
            let lr = self.config.lr_at(step, self.progress.total_steps);
            let mut accumulator = GradientsAccumulator::<Supernet>::new();
            let mut subnets: Vec<f64> = Vec::new();
            for _ in 0..self.config.accumulate {
                if self.progress.batch >= epoch_plan.len() {
                    self.progress.epoch += 1;
                    self.progress.batch = 0;
                    epoch_plan = plan(&self.train, self.config.batch_size, Some(self.epoch_seed()));
                }
                let batch = Batch::new(&self.train, epoch_plan[self.progress.batch].clone(), self.pad);
                self.progress.batch += 1;
                tokens += batch.tokens();
                let (losses, grads) = self.micro_step(&batch)?;
                subnets.resize(losses.len(), 0.0);
                for (sum, l) in subnets.iter_mut().zip(losses) {
                    *sum += l / self.config.accumulate as f64;
                }
                accumulator.accumulate(&self.model, grads);
            }
            let loss: f64 = subnets.iter().sum();
            if !loss.is_finite() {
                return Err(TrainError::Diverged { step, loss });
            }
            self.model = self.optim.step(lr, self.model.clone(), accumulator.grads());
            self.progress.step += 1;
            if let (Some(decay), Some(average)) = (self.config.ema, self.average.take()) {
                let decay = crate::average::decay_at(decay, self.progress.step);
                self.average = Some(crate::average::blend(average, &self.model, decay));
            }
            let secs = clock.elapsed().as_secs_f64();
            let tokens_per_s = tokens as f64 / secs.max(1e-9);
            if self.config.sandwich.is_none() {
                subnets.clear();
            }
            let mut entry = LogEntry { step: self.progress.step, loss, lr, tokens_per_s, dev: None, subnets };
            let last = self.progress.step == self.progress.total_steps;
            if (self.config.eval_every > 0 && self.progress.step.is_multiple_of(self.config.eval_every)) || last {
                let _eval = info_span!("eval").entered();
                entry.dev = Some(self.evaluate_largest()?.value);
                (tokens, clock) = (0, Instant::now());
            }
            bar.set_message(match entry.dev {
                Some(dev) => format!("loss {loss:.4}, {tokens_per_s:.0} tokens/s, dev {dev:.4}"),
                None => format!("loss {loss:.4}, {tokens_per_s:.0} tokens/s"),
            });
            bar.set_position(self.progress.step as u64);
            // Without a terminal (a log file), a line every 50 steps stands in for the bar.
            let say = |line: String| if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) };
            if bar.is_hidden() && !quiet && self.progress.step.is_multiple_of(50) {
                say(format!(
                    "{phase} step {}/{}: loss {loss:.4}, lr {lr:.2e}, {tokens_per_s:.0} tokens/s",
                    self.progress.step, self.progress.total_steps
                ));
            }
            if let Some(dev) = entry.dev.filter(|_| !quiet) {
                say(format!("step {}: dev {} {dev:.4}", self.progress.step, self.config.task.metric_name()));
            }
            self.progress.log.push(entry);
            if self.progress.step.is_multiple_of(RATE_WINDOW) {
                (tokens, clock) = (0, Instant::now());
            }
            let every = self.config.checkpoint_every;
            if (every > 0 && self.progress.step.is_multiple_of(every)) || self.progress.step == end {
                let _ck = info_span!("checkpoint").entered();
                self.checkpoint()?;
                (tokens, clock) = (0, Instant::now());
            }
        }
        bar.finish();
        Ok(())
    }

    fn epoch_seed(&self) -> u64 {
        self.config.seed.wrapping_add(self.progress.epoch as u64 * 0x9e37_79b9)
    }

    /// The loss of each subnet on one micro-batch, and the gradients summed over the subnets (the
    /// sandwich rule) and scaled by `1 / accumulate` (a step averages its micro-batches).
    fn micro_step(&mut self, batch: &Batch) -> Result<(Vec<f64>, GradientsParams), TrainError> {
        let task = self.config.task;
        let share = 1.0 / self.config.accumulate as f64;
        // Dropout masks are a function of the seed and the data position: a resumed run draws
        // the same ones.
        let position = ((self.progress.epoch as u64) << 32) | self.progress.batch as u64;
        let seed = self.config.seed ^ position.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let train = Mode { dropout: self.config.dropout, seed, ..Mode::default() };
        let Some(sandwich) = self.config.sandwich.clone() else {
            let out = self.model.forward(batch, &self.model.max, train)?;
            let loss = task_loss(task, out.logits, &batch.labels, self.config.label_smoothing);
            let value = scalar(&loss);
            return Ok((vec![value], GradientsParams::from_grads(loss.mul_scalar(share).backward(), &self.model)));
        };
        let augmented;
        let batch = if sandwich.augments() {
            // Drawn, like the dropout masks, from the seed and the data position.
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa0a0_5e5e);
            let id = match (self.mask_token, sandwich.augment_mask > 0.0) {
                (Some(id), _) => id,
                (None, false) => self.pad,
                (None, true) => return Err(TrainError::Config("masking augmentation without a [MASK] token".into())),
            };
            augmented = batch.augmented(&mut rng, id, sandwich.augment_mask, sandwich.augment_ngram, self.pad);
            &augmented
        } else {
            batch
        };
        let mask = Tensor::<2>::from_data(
            TensorData::new(batch.mask.clone(), [batch.rows * batch.seq, 1]),
            &self.model.device(),
        );
        let keep = Mode {
            hidden: sandwich.hidden_weight > 0.0,
            attention: sandwich.attention_weight > 0.0,
            ..Mode::default()
        };
        let teacher = self.teacher.as_ref().ok_or_else(|| TrainError::Config("no teacher".into()))?;
        // The teacher runs without autodiff: its outputs are constants of the students' losses.
        let target = teacher.forward(batch, &teacher.max, keep)?;
        let mut archs = vec![sandwich.space.largest(), sandwich.space.smallest()];
        for _ in 0..sandwich.random {
            archs.push(sandwich.space.sample(&mut self.progress.rng));
        }
        let first_fixed = archs.len();
        archs.extend(sandwich.fixed_archs()?);
        let mut accumulator = GradientsAccumulator::<Supernet>::new();
        let mut losses = Vec::with_capacity(archs.len());
        for (i, mut arch) in archs.into_iter().enumerate() {
            arch.task = self.model.max.task;
            let mode = Mode { dropout: self.config.dropout, seed: seed.wrapping_add(i as u64), ..keep };
            let out = self.model.forward(batch, &arch, mode)?;
            let loss =
                distill_loss(task, &sandwich, self.config.label_smoothing, &arch, out, &target, &batch.labels, &mask);
            losses.push(scalar(&loss));
            let weight = if i >= first_fixed { sandwich.fixed_weight } else { 1.0 };
            let grads = loss.mul_scalar(share * weight).backward();
            accumulator.accumulate(&self.model, GradientsParams::from_grads(grads, &self.model));
        }
        Ok((losses, accumulator.grads()))
    }

    /// The trained model without autodiff: the moving average of the weights when `ema` is
    /// set, else the last weights.
    pub fn trained(&self) -> Supernet {
        match &self.average {
            Some(average) => average.clone(),
            None => self.model.valid(),
        }
    }

    /// The dev score of the largest subnet (of the moving average when `ema` is set).
    pub fn evaluate_largest(&self) -> Result<Score, TrainError> {
        let valid = self.trained();
        let arch = match &self.config.sandwich {
            Some(s) => s.space.largest(),
            None => valid.max.clone(),
        };
        Ok(evaluate(&valid, &arch, self.config.task, &self.dev, self.pad, 128)?)
    }

    /// Writes the checkpoint through a temporary folder and a rename.
    pub fn checkpoint(&self) -> Result<(), TrainError> {
        let ck = self.dir.join(CHECKPOINT);
        let tmp = self.dir.join(format!(".{CHECKPOINT}.tmp"));
        let err = |path: &Path, message: String| TrainError::Checkpoint { path: path.to_path_buf(), message };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e.to_string()))?;
        self.model.clone().save_file(tmp.join("model.bpk")).map_err(|e| err(&tmp, e.to_string()))?;
        self.optim.save(tmp.join("optimizer.bpk")).map_err(|e| err(&tmp, e.to_string()))?;
        if let Some(average) = &self.average {
            average.clone().save_file(tmp.join(AVERAGE)).map_err(|e| err(&tmp, e.to_string()))?;
        }
        let shape =
            serde_json::to_string_pretty(&(&self.model.max, self.model.eps)).map_err(|e| err(&tmp, e.to_string()))?;
        std::fs::write(tmp.join("max.json"), shape).map_err(|e| err(&tmp, e.to_string()))?;
        let config = serde_json::to_string_pretty(&self.config).map_err(|e| err(&tmp, e.to_string()))?;
        std::fs::write(tmp.join("config.json"), config).map_err(|e| err(&tmp, e.to_string()))?;
        let progress = serde_json::to_string_pretty(&self.progress).map_err(|e| err(&tmp, e.to_string()))?;
        std::fs::write(tmp.join("progress.json"), progress).map_err(|e| err(&tmp, e.to_string()))?;
        let old = self.dir.join(format!(".{CHECKPOINT}.old"));
        let _ = std::fs::remove_dir_all(&old);
        if ck.exists() {
            std::fs::rename(&ck, &old).map_err(|e| err(&ck, e.to_string()))?;
        }
        std::fs::rename(&tmp, &ck).map_err(|e| err(&ck, e.to_string()))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let clip = (config.clip_norm > 0.0).then_some(config.clip_norm);
    FusedAdamW::new(1e-8, config.weight_decay as f32, clip).init()
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().into_scalar::<f32>() as f64
}

/// Cross-entropy (classification) or mean squared error (regression) against the labels; a
/// classification target is smoothed by `smoothing` (see [`TrainConfig::label_smoothing`]).
pub fn task_loss(task: Task, logits: Tensor<2>, labels: &[Label], smoothing: f64) -> Tensor<1> {
    let [rows, width] = logits.dims();
    let device = logits.device();
    if task.is_regression() {
        let y: Vec<f32> = labels.iter().map(|l| if let Label::Score(s) = l { *s } else { 0.0 }).collect();
        let y = Tensor::<2>::from_data(TensorData::new(y, [rows, 1]), &device);
        return (logits.narrow(1, 0, 1) - y).powi_scalar(2).mean();
    }
    let spread = (smoothing / width as f64) as f32;
    let mut target = vec![spread; rows * width];
    for (r, l) in labels.iter().enumerate() {
        if let Label::Class(c) = l {
            target[r * width + c] += (1.0 - smoothing) as f32;
        }
    }
    let target = Tensor::<2>::from_data(TensorData::new(target, [rows, width]), &device);
    (log_softmax(logits, 1) * target).sum_dim(1).mean().neg()
}

/// The distillation loss of one subnet against the teacher's outputs. `mask` is the batch's
/// `[rows · seq, 1]` attention mask: padded positions do not count.
fn distill_loss(
    task: Task,
    s: &Sandwich,
    smoothing: f64,
    arch: &Arch,
    out: Output,
    target: &Output,
    labels: &[Label],
    mask: &Tensor<2>,
) -> Tensor<1> {
    let mut loss = if task.is_regression() {
        (out.logits.clone() - target.logits.clone()).powi_scalar(2).mean()
    } else {
        let t = s.temperature;
        let soft = softmax(target.logits.clone().div_scalar(t), 1);
        (log_softmax(out.logits.clone().div_scalar(t), 1) * soft).sum_dim(1).mean().neg().mul_scalar(t * t)
    };
    if s.hard_weight > 0.0 {
        loss = loss + task_loss(task, out.logits, labels, smoothing).mul_scalar(s.hard_weight);
    }
    let real = mask.clone().sum().clamp_min(1.0);
    // Only the last layers are compared: shared layer `l` belongs to subnets of every depth, so
    // matching intermediate layers would pull it towards different teacher layers at once.
    if s.hidden_weight > 0.0
        && let (Some(h), Some(t)) = (out.hidden.last(), target.hidden.last())
    {
        let t = t.clone().narrow(1, 0, arch.hidden);
        let se = ((h.clone() - t).powi_scalar(2) * mask.clone()).sum() / (real.clone() * arch.hidden as f64);
        loss = loss + se.mul_scalar(s.hidden_weight);
    }
    if s.attention_weight > 0.0
        && let (Some(a), Some(t)) = (out.attention.last(), target.attention.last())
    {
        let [rows, heads, seq, _] = a.dims();
        let t = t.clone().narrow(1, 0, heads);
        let queries = mask.clone().reshape([rows, 1, seq, 1]);
        let se = ((a.clone() - t).powi_scalar(2) * queries).sum() / (real * heads as f64);
        loss = loss + se.mul_scalar(s.attention_weight);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_towards_zero() {
        let c = TrainConfig { lr: 1.0, warmup: 0.1, ..TrainConfig::default() };
        assert!((c.lr_at(0, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9, 100) - 1.0).abs() < 1e-12);
        assert!(c.lr_at(50, 100) < 1.0 && c.lr_at(50, 100) > c.lr_at(60, 100));
        let last = c.lr_at(99, 100);
        assert!(last > 0.0 && last < 0.02, "the last step still learns, a little: {last}");
    }

    #[test]
    fn fixed_subnets_are_parsed_and_a_bad_one_is_named() {
        let config = |fixed: &[&str]| TrainConfig {
            sandwich: Some(Sandwich { fixed: fixed.iter().map(|s| s.to_string()).collect(), ..Sandwich::default() }),
            ..TrainConfig::default()
        };
        let good = config(&["L4-H256-A4-F1024-D32", "L2-H128-A2-F512-D32"]);
        assert!(good.validate().is_ok());
        let archs = good.sandwich.as_ref().unwrap().fixed_archs().unwrap();
        assert_eq!(archs[1].layers, 2);
        let err = config(&["L2-H128-A0-F512"]).validate().unwrap_err().to_string();
        assert!(err.contains("sandwich.fixed") && err.contains("L2-H128-A0-F512"), "{err}");
    }

    #[test]
    fn label_smoothing_mixes_the_one_hot_target_with_the_uniform_one() {
        let device = burn::tensor::Device::flex();
        let rows = [[2.0f32, -1.0, 0.5], [0.0, 0.3, -0.7]];
        let labels = [Label::Class(0), Label::Class(2)];
        let logits = Tensor::<2>::from_data(TensorData::new(rows.concat(), [2, 3]), &device);
        // -log softmax by hand, per row and class.
        let nll: Vec<[f64; 3]> = rows
            .iter()
            .map(|r| {
                let lse = r.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
                [lse - r[0] as f64, lse - r[1] as f64, lse - r[2] as f64]
            })
            .collect();
        let hard = (nll[0][0] + nll[1][2]) / 2.0;
        let uniform = nll.iter().map(|n| n.iter().sum::<f64>() / 3.0).sum::<f64>() / 2.0;
        for eps in [0.0, 0.1, 0.5] {
            let got = scalar(&task_loss(Task::Trec, logits.clone(), &labels, eps));
            let want = (1.0 - eps) * hard + eps * uniform;
            assert!((got - want).abs() < 1e-5, "ε = {eps}: {got} vs {want}");
        }
        let bad = TrainConfig { label_smoothing: 1.0, ..TrainConfig::default() }.validate().unwrap_err();
        assert!(bad.to_string().contains("label_smoothing"), "{bad}");
    }

    #[test]
    fn bad_weights_and_augmentations_are_config_errors() {
        let with = |s: Sandwich| TrainConfig { sandwich: Some(s), ..TrainConfig::default() }.validate();
        for (sandwich, field) in [
            (Sandwich { fixed_weight: -1.0, ..Sandwich::default() }, "fixed_weight"),
            (Sandwich { fixed_weight: f64::NAN, ..Sandwich::default() }, "fixed_weight"),
            (Sandwich { augment_mask: 1.5, ..Sandwich::default() }, "augment_mask"),
            (Sandwich { augment_ngram: -0.1, ..Sandwich::default() }, "augment_ngram"),
            (Sandwich { augment_ngram: 0.2, hard_weight: 0.5, ..Sandwich::default() }, "hard_weight"),
        ] {
            let err = with(sandwich).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        assert!(
            with(Sandwich { fixed_weight: 3.0, augment_mask: 0.1, augment_ngram: 0.25, ..Sandwich::default() }).is_ok()
        );
    }
}
