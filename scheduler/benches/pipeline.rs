//! In-process benchmarks of the pipeline.
//!
//! - `pipeline_*`: the run loop (scheduler, hooks, evaluator) over 10,000
//!   trivial cells with an executor that does nothing, so no Rhai runs.
//! - `analysis_and_graph`: compiling, analysing and building the dataflow
//!   graph of 100,000 cells.

use std::sync::Arc;

use executor_core::{
    CancelToken, Cell, CellSource, Evaluator, Executor, Globals, Limits, Notebook, RunContext,
    RunResult,
};
use scheduler::{DataflowGraph, Hooks, Pipeline, Plan, Priority, RunControl, SequentialScheduler};

fn main() {
    divan::main();
}

/// Runs nothing: the cost left is the pipeline's own.
struct Noop;

impl Executor for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    fn execute(&self, _cell: &Cell, _globals: &mut Globals, _token: &CancelToken) -> RunResult {
        RunResult::default()
    }
}

fn sources(n: usize, fan: bool) -> Vec<CellSource> {
    (0..n)
        .map(|i| {
            let code = match (fan, i) {
                (false, 0) => "let x_0 = 0;".to_owned(),
                (false, i) => format!("let x_{i} = x_{} + 1;", i - 1),
                (true, 0) => "let root = 0;".to_owned(),
                (true, i) => format!("let c_{i} = root + {i};"),
            };
            CellSource {
                name: format!("c{i}"),
                code,
                first_line: 2 * i as u32 + 2,
                options: Vec::new(),
            }
        })
        .collect()
}

#[divan::bench(args = [false, true], sample_count = 20)]
fn pipeline_10k(bencher: divan::Bencher, fan: bool) {
    let notebook = Notebook::compile(sources(10_000, fan), &Limits::default());
    let graph = DataflowGraph::of(&notebook);
    let plan = Plan::new(&notebook, &graph, None);
    let evaluator = Evaluator::new(Arc::new(Noop), Vec::new());
    let control = RunControl::new(None);
    let pipeline = Pipeline {
        notebook: &notebook,
        graph: &graph,
        plan: &plan,
        evaluator: &evaluator,
        control: &control,
        context: &RunContext::default(),
    };
    bencher
        .counter(divan::counter::ItemsCount::new(10_000usize))
        .bench_local(|| {
            let mut hooks = Hooks::new();
            hooks.on_post_execution(Priority::Normal, |outcome| {
                divan::black_box(outcome.status);
            });
            let mut scheduler = SequentialScheduler::new(&graph, plan.order().to_vec());
            let mut globals = Globals::new();
            pipeline.run(&mut scheduler, &mut hooks, &mut globals)
        });
}

#[divan::bench(args = [false, true], sample_count = 5)]
fn analysis_and_graph_100k(bencher: divan::Bencher, fan: bool) {
    let limits = Limits::default();
    bencher
        .counter(divan::counter::ItemsCount::new(100_000usize))
        .with_inputs(|| sources(100_000, fan))
        .bench_local_values(|sources| {
            let notebook = Notebook::compile(sources, &limits);
            let graph = DataflowGraph::of(&notebook);
            Plan::new(&notebook, &graph, None)
        });
}
