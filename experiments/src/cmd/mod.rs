//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod compile;
pub mod infer;
pub mod latency;
pub mod report;
pub mod run;
pub mod search;
pub mod train;
