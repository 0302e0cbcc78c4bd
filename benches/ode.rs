//! Step throughput of the generic integrator on `y' = Ay` (2-D and 256-D, dense matvec) for
//! each adaptive solver, and the engine's own per-step overhead: the same solve with a
//! right-hand side that does no work, against one evaluation of the 256-D matvec.
//!
//! Run: `cargo bench --bench ode`. Throughput is reported in steps per second.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scoreprior_core::ode::test_models::LinearSystem;
use scoreprior_core::ode::{solve, solver_by_name, PidController, SolveOptions, StepDecision, StepSizeController};

/// Accepts every step at a fixed size but asks for the error estimate, so the engine does
/// all the work of an adaptive step (stages, solution, error norm) a known number of times.
struct FixedEstimating(f64);

impl StepSizeController for FixedEstimating {
    fn is_adaptive(&self) -> bool {
        true
    }
    fn tolerances(&self) -> (f64, f64) {
        (1e-6, 1e-8)
    }
    fn reset(&mut self) {}
    fn first_dt(&self) -> Option<f64> {
        Some(self.0)
    }
    fn adapt(&mut self, _dt: f64, _err: f64, _order: f64) -> scoreprior_core::Result<StepDecision> {
        Ok(StepDecision { accept: true, next_dt: self.0 })
    }
}

const ADAPTIVE: [&str; 5] = ["heun", "bosh3", "tsit5", "dopri5", "dopri8"];

fn adaptive_steps(c: &mut Criterion) {
    for dim in [2usize, 256] {
        let sys = LinearSystem::new(dim);
        let y0 = sys.initial_state();
        let mut group = c.benchmark_group(format!("adaptive_solve_{dim}d"));
        for name in ADAPTIVE {
            let solver = solver_by_name(name).unwrap();
            let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| sys.rhs(y, dy);
            let opts = SolveOptions { max_steps: 100_000, ..Default::default() };
            let probe = solve(&mut f, solver, &mut PidController::new(1e-6, 1e-8), 0.0, 10.0, &y0, &opts).unwrap();
            let steps = (probe.stats.accepted_steps + probe.stats.rejected_steps) as u64;
            group.throughput(Throughput::Elements(steps));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| sys.rhs(y, dy);
                    solve(&mut f, solver, &mut PidController::new(1e-6, 1e-8), 0.0, 10.0, black_box(&y0), &opts)
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

fn engine_overhead(c: &mut Criterion) {
    let dim = 256;
    let sys = LinearSystem::new(dim);
    let y0 = sys.initial_state();
    let mut dy = vec![0.0; dim];
    c.bench_function("rhs_eval_256d", |b| b.iter(|| sys.rhs(black_box(&y0), &mut dy)));
    let steps = 1000u64;
    let mut group = c.benchmark_group("engine_only_256d");
    group.throughput(Throughput::Elements(steps));
    for name in ADAPTIVE {
        let solver = solver_by_name(name).unwrap();
        let opts = SolveOptions { max_steps: 100_000, ..Default::default() };
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                // A right-hand side that costs nothing: what remains is the stepper's own
                // linear combinations and bookkeeping.
                let mut f = |_t: f64, _y: &Vec<f64>, _dy: &mut Vec<f64>| {};
                solve(&mut f, solver, &mut FixedEstimating(1.0 / steps as f64), 0.0, 1.0, black_box(&y0), &opts)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, adaptive_steps, engine_overhead);
criterion_main!(benches);
