//! `ReadyScheduler`: hands out every cell whose parents have finished, so
//! several cells can run at once.
//!
//! Each queued cell counts its parents in the run that have not completed;
//! a cell whose count reaches zero enters a min-heap keyed by file position,
//! so among the ready cells the earliest in the file goes first, as in the
//! sequential queue. Cancellation uses the sequential queue's walk and its
//! epoch stamps, so a whole run costs time linear in the cells and edges
//! (plus a logarithm for the heap).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use executor_core::CellId;

use crate::graph::DataflowGraph;
use crate::queue::{cancel_descendants, Scheduler};

/// Where a cell is in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not part of the run.
    Out,
    /// Waiting to be handed out.
    Queued,
    /// Handed out by `next`, not completed yet.
    Running,
    /// Completed.
    Done,
}

/// A scheduler for parallel runs: [`Scheduler::next`] returns a cell only
/// once every parent of it in the run has been completed (or, for the
/// cells at the head of the queue, at once), so the cells it hands out
/// before completing them are independent of each other.
///
/// `next` returns `None` when no cell is ready *now*; the caller completes
/// a running cell and asks again. Should no cell run and none be ready
/// while cells are still queued (a cycle the plan did not mark), the
/// earliest of them in queue order is handed out, as the sequential queue
/// would.
#[derive(Debug)]
pub struct ReadyScheduler<'g> {
    graph: &'g DataflowGraph,
    /// The run's cells in queue order.
    order: Vec<CellId>,
    /// Each cell's place in `order`.
    position: Vec<usize>,
    state: Vec<State>,
    /// Parents in the run each queued cell still waits for.
    waiting: Vec<usize>,
    /// Cells handed out first, whatever their parents (static errors).
    head: VecDeque<CellId>,
    /// Ready cells by file position; entries whose cell is no longer ready
    /// are skipped when popped.
    ready: BinaryHeap<Reverse<CellId>>,
    running: usize,
    /// Where the search for a blocked cell resumes in `order`.
    fallback: usize,
    cancelled_by: Vec<Option<CellId>>,
    /// The cells each raiser cancelled, so that rerunning it un-cancels them.
    cancelled: Vec<Vec<CellId>>,
    /// `handled[cell] == epoch` when `cell` and every descendant of it are
    /// known to be cancelled or not queued (see `SequentialScheduler`).
    handled: Vec<u64>,
    epoch: u64,
    interrupted: bool,
}

impl<'g> ReadyScheduler<'g> {
    /// A scheduler for the cells of `order` (normally a plan's order); the
    /// first `n_head` of them are handed out first, in order, without
    /// waiting for their parents (a plan puts its static errors there).
    ///
    /// # Panics
    /// When a cell of `order` is not in `graph`.
    pub fn new(graph: &'g DataflowGraph, order: Vec<CellId>, n_head: usize) -> Self {
        let n = graph.len();
        let mut state = vec![State::Out; n];
        let mut unique = Vec::with_capacity(order.len());
        for cell in order {
            if state[cell.index()] == State::Out {
                state[cell.index()] = State::Queued;
                unique.push(cell);
            }
        }
        let n_head = n_head.min(unique.len());
        let mut position = vec![usize::MAX; n];
        for (at, cell) in unique.iter().enumerate() {
            position[cell.index()] = at;
        }
        let mut scheduler = ReadyScheduler {
            graph,
            head: unique[..n_head].iter().copied().collect(),
            order: unique,
            position,
            state,
            waiting: vec![0; n],
            ready: BinaryHeap::new(),
            running: 0,
            fallback: 0,
            cancelled_by: vec![None; n],
            cancelled: vec![Vec::new(); n],
            handled: vec![0; n],
            epoch: 1,
            interrupted: false,
        };
        for at in n_head..scheduler.order.len() {
            let cell = scheduler.order[at];
            let waiting = scheduler.unfinished_parents(cell);
            scheduler.waiting[cell.index()] = waiting;
            if waiting == 0 {
                scheduler.ready.push(Reverse(cell));
            }
        }
        scheduler
    }

    /// How many parents of `cell` in the run have not completed.
    fn unfinished_parents(&self, cell: CellId) -> usize {
        self.graph
            .parents(cell)
            .iter()
            .filter(|parent| matches!(self.state[parent.index()], State::Queued | State::Running))
            .count()
    }

    /// Whether `cell` may be handed out.
    fn is_takeable(&self, cell: CellId) -> bool {
        self.state[cell.index()] == State::Queued && self.cancelled_by[cell.index()].is_none()
    }

    /// Whether a cell could be handed out now.
    pub fn has_ready(&mut self) -> bool {
        if self.interrupted {
            return false;
        }
        while let Some(&cell) = self.head.front() {
            if self.is_takeable(cell) {
                return true;
            }
            self.head.pop_front();
        }
        while let Some(&Reverse(cell)) = self.ready.peek() {
            if self.is_takeable(cell) && self.waiting[cell.index()] == 0 {
                return true;
            }
            self.ready.pop();
        }
        false
    }

    /// How many cells were handed out and not completed yet.
    pub fn running(&self) -> usize {
        self.running
    }

    fn take(&mut self, cell: CellId) -> CellId {
        self.state[cell.index()] = State::Running;
        self.running += 1;
        cell
    }
}

impl Scheduler for ReadyScheduler<'_> {
    fn next(&mut self) -> Option<CellId> {
        if self.has_ready() {
            let cell = match self.head.pop_front() {
                Some(cell) => cell,
                None => self.ready.pop()?.0,
            };
            return Some(self.take(cell));
        }
        if self.interrupted || self.running > 0 {
            return None;
        }
        while let Some(&cell) = self.order.get(self.fallback) {
            if self.is_takeable(cell) {
                return Some(self.take(cell));
            }
            self.fallback += 1;
        }
        None
    }

    fn complete(&mut self, cell: CellId) {
        if self.state[cell.index()] != State::Running {
            return;
        }
        self.state[cell.index()] = State::Done;
        self.running -= 1;
        for &child in self.graph.children(cell) {
            if self.state[child.index()] == State::Queued {
                let waiting = &mut self.waiting[child.index()];
                *waiting = waiting.saturating_sub(1);
                if *waiting == 0 {
                    self.ready.push(Reverse(child));
                }
            }
        }
    }

    fn cancel(&mut self, raiser: CellId) -> Vec<CellId> {
        let state = &self.state;
        let mut newly = cancel_descendants(
            self.graph,
            raiser,
            self.epoch,
            &mut self.handled,
            &mut self.cancelled_by,
            |cell| state[cell.index()] == State::Queued,
        );
        newly.sort_unstable_by_key(|cell| self.position[cell.index()]);
        self.cancelled[raiser.index()].extend_from_slice(&newly);
        newly
    }

    fn requeue_for_rerun(&mut self, cells: &[CellId]) {
        let mut cells = cells.to_vec();
        cells.sort_unstable_by_key(|&cell| self.graph.topo_rank(cell));
        cells.dedup();
        for &cell in &cells {
            if self.state[cell.index()] == State::Out {
                self.position[cell.index()] = self.order.len();
                self.order.push(cell);
            }
            self.state[cell.index()] = State::Queued;
            self.cancelled_by[cell.index()] = None;
            for victim in std::mem::take(&mut self.cancelled[cell.index()]) {
                if self.cancelled_by[victim.index()] == Some(cell) {
                    self.cancelled_by[victim.index()] = None;
                }
            }
        }
        // Every queued cell waits for its queued parents again: the
        // requeued cells and the cells below them.
        for at in 0..self.order.len() {
            let cell = self.order[at];
            if self.state[cell.index()] == State::Queued {
                let waiting = self.unfinished_parents(cell);
                self.waiting[cell.index()] = waiting;
                if waiting == 0 {
                    self.ready.push(Reverse(cell));
                }
            }
        }
        self.head.clear();
        self.fallback = 0;
        self.epoch += 1;
    }

    fn interrupt(&mut self) {
        self.interrupted = true;
    }

    fn is_interrupted(&self) -> bool {
        self.interrupted
    }

    fn cancelled_by(&self, cell: CellId) -> Option<CellId> {
        self.cancelled_by[cell.index()]
    }

    fn pending(&self) -> Vec<CellId> {
        self.order
            .iter()
            .copied()
            .filter(|&cell| self.is_takeable(cell))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::testing::{graph_of, ids, random_dag, RandomDag};
    use crate::queue::SequentialScheduler;
    use proptest::prelude::*;

    /// The diamond 0 → {1, 2} → 3, plus an unrelated 4.
    fn diamond() -> DataflowGraph {
        graph_of(&[("a", ""), ("b", "a"), ("c", "a"), ("", "b c"), ("", "")])
    }

    /// Takes every ready cell.
    fn take_ready(scheduler: &mut ReadyScheduler<'_>) -> Vec<CellId> {
        std::iter::from_fn(|| scheduler.next()).collect()
    }

    #[test]
    fn cells_are_handed_out_once_their_parents_completed_earliest_first() {
        let graph = diamond();
        let order = graph.run_order(&ids(&[0, 1, 2, 3, 4]), &[]);
        let mut scheduler = ReadyScheduler::new(&graph, order, 0);
        assert_eq!(take_ready(&mut scheduler), ids(&[0, 4]));
        scheduler.complete(CellId::new(4));
        assert_eq!(take_ready(&mut scheduler), ids(&[]));
        scheduler.complete(CellId::new(0));
        assert_eq!(take_ready(&mut scheduler), ids(&[1, 2]));
        scheduler.complete(CellId::new(2));
        assert_eq!(take_ready(&mut scheduler), ids(&[]), "3 waits for 1");
        scheduler.complete(CellId::new(1));
        assert_eq!(take_ready(&mut scheduler), ids(&[3]));
        assert_eq!(scheduler.running(), 1);
        scheduler.complete(CellId::new(3));
        assert_eq!(scheduler.next(), None);
        assert_eq!(scheduler.pending(), ids(&[]));
    }

    #[test]
    fn head_cells_come_first_and_failures_cancel_queued_descendants_only() {
        let graph = diamond();
        let mut scheduler = ReadyScheduler::new(&graph, ids(&[2, 0, 1, 3, 4]), 1);
        assert_eq!(
            scheduler.next(),
            Some(CellId::new(2)),
            "the head ignores parents"
        );
        assert_eq!(scheduler.cancel(CellId::new(2)), ids(&[3]));
        scheduler.complete(CellId::new(2));
        assert_eq!(take_ready(&mut scheduler), ids(&[0, 4]));
        scheduler.complete(CellId::new(0));
        assert_eq!(take_ready(&mut scheduler), ids(&[1]));
        assert_eq!(scheduler.cancelled_by(CellId::new(3)), Some(CellId::new(2)));
        scheduler.interrupt();
        assert_eq!(scheduler.next(), None);
        assert_eq!(scheduler.pending(), ids(&[]));
    }

    #[test]
    fn requeue_makes_descendants_wait_again() {
        let graph = diamond();
        let order = graph.run_order(&ids(&[0, 1, 2, 3]), &[]);
        let mut scheduler = ReadyScheduler::new(&graph, order, 0);
        assert_eq!(take_ready(&mut scheduler), ids(&[0]));
        assert_eq!(scheduler.cancel(CellId::new(0)), ids(&[1, 2, 3]));
        scheduler.complete(CellId::new(0));
        scheduler.requeue_for_rerun(&ids(&[0]));
        assert_eq!(take_ready(&mut scheduler), ids(&[0]));
        scheduler.complete(CellId::new(0));
        assert_eq!(take_ready(&mut scheduler), ids(&[1, 2]));
    }

    /// Runs `dag` with `jobs` cells at a time, failing `failing`: completes
    /// the running cell chosen by `picks` each step. Returns each cell's
    /// fate ('r' ran, 'c' cancelled, '-' not run) and checks that no cell
    /// was handed out before its parents completed.
    fn simulate(dag: &RandomDag, failing: &[bool], jobs: usize, picks: &[usize]) -> Vec<char> {
        let graph = dag.build();
        let order = graph.run_order(&dag.all(), &[]);
        let mut fate = vec!['-'; dag.n];
        let mut done = vec![false; dag.n];
        let mut scheduler: Box<dyn Scheduler> = if jobs == 1 {
            Box::new(SequentialScheduler::new(&graph, order))
        } else {
            Box::new(ReadyScheduler::new(&graph, order, 0))
        };
        let mut running: Vec<CellId> = Vec::new();
        let mut step = 0;
        loop {
            while running.len() < jobs {
                let Some(cell) = scheduler.next() else { break };
                for parent in dag.parents(cell) {
                    assert!(
                        done[parent.index()],
                        "{cell} started before its parent {parent}"
                    );
                }
                fate[cell.index()] = 'r';
                running.push(cell);
            }
            if running.is_empty() {
                break;
            }
            let at = picks.get(step).copied().unwrap_or(0) % running.len();
            step += 1;
            let cell = running.swap_remove(at);
            if failing[cell.index()] {
                for cancelled in scheduler.cancel(cell) {
                    fate[cancelled.index()] = 'c';
                }
            }
            done[cell.index()] = true;
            scheduler.complete(cell);
        }
        fate
    }

    proptest! {
        #[test]
        fn parallel_runs_give_the_sequential_fates(
            dag in random_dag(24),
            failing in proptest::collection::vec(proptest::bool::weighted(0.2), 24),
            picks in proptest::collection::vec(0..8usize, 0..64),
        ) {
            let sequential = simulate(&dag, &failing, 1, &[]);
            for jobs in [2, 4] {
                prop_assert_eq!(&simulate(&dag, &failing, jobs, &picks), &sequential);
            }
        }
    }
}
