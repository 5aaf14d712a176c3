//! The run queue: which cell runs next, and which queued cells a failure cancels.
//!
//! `SequentialScheduler` hands out one cell at a time from a queue normally
//! built by `DataflowGraph::run_order`. Removal is lazy: every queue entry
//! carries a key, and an entry counts only while its cell is queued under that
//! key, so moving a cell to the head or skipping a cancelled one never
//! searches the queue. Cancelling walks the graph's children and, between two
//! requeues, never expands a cell twice, so a whole run costs time linear in
//! the cells and edges.

use std::collections::VecDeque;

use executor_core::CellId;

use crate::graph::DataflowGraph;

/// Decides which cell runs next. Shaped so a parallel scheduler can be added
/// without changing callers, who loop
/// `while let Some(cell) = s.next() { ...; s.complete(cell) }`.
pub trait Scheduler {
    /// The next cell whose turn it is, removed from the queue. Cancelled cells
    /// are skipped (and leave the queue). `None` when the queue is empty or
    /// interrupted.
    fn next(&mut self) -> Option<CellId>;

    /// Reports that `cell`, returned by `next`, is done. A sequential
    /// scheduler has nothing to do.
    fn complete(&mut self, cell: CellId);

    /// Cancels every still-queued descendant of `raiser` (which has been
    /// popped) that is not already cancelled, recording `raiser` as the
    /// cause. Returns the newly cancelled cells in queue order.
    fn cancel(&mut self, raiser: CellId) -> Vec<CellId>;

    /// Puts `cells` back at the head of the queue in topological order
    /// (`DataflowGraph::topo_rank`), once each: a cell already queued further
    /// back is moved, not duplicated. The cells are un-cancelled, and so are
    /// the cells that were cancelled with one of them as the raiser; those
    /// keep their place in the queue.
    ///
    /// For example, with P → C: queue `[Y, P]` plus `{P, C}` gives
    /// `[P, C, Y]`; queue `[C]` plus `{P, C}` gives `[P, C]`; after
    /// `cancel(R)` cancelled `{D}`, requeueing `{R}` un-cancels R and D.
    fn requeue_for_rerun(&mut self, cells: &[CellId]);

    /// Halts the queue: `next` returns `None` from now on.
    fn interrupt(&mut self);

    /// Whether `interrupt` has been called.
    fn is_interrupted(&self) -> bool;

    /// The cell whose failure cancelled `cell`, if `cell` is cancelled.
    fn cancelled_by(&self, cell: CellId) -> Option<CellId>;

    /// The cells still queued and not cancelled, in queue order; after an
    /// interrupt, the cells that will not run.
    fn pending(&self) -> Vec<CellId>;
}

/// Cancels every queued, not yet cancelled descendant of `raiser`,
/// recording `raiser` as the cause; returns them in no particular order.
///
/// `handled[cell] == epoch` says that `cell` and every descendant of it are
/// known to be cancelled or not queued: such cells are not walked again, so
/// between two epochs every cell is expanded at most once. A cell is
/// stamped when first reached; by the end of the walk it and all of its
/// queued descendants are cancelled or not queued. The raiser should not be
/// queued any more; should it still be waiting to run, it is not stamped,
/// and a cycle leading back to it cancels it like any other descendant.
/// The walk goes through cells that are not queued, such as cells that
/// already ran or are not part of the run.
pub(crate) fn cancel_descendants(
    graph: &DataflowGraph,
    raiser: CellId,
    epoch: u64,
    handled: &mut [u64],
    cancelled_by: &mut [Option<CellId>],
    is_queued: impl Fn(CellId) -> bool,
) -> Vec<CellId> {
    let r = raiser.index();
    if handled[r] == epoch {
        return Vec::new();
    }
    if !is_queued(raiser) || cancelled_by[r].is_some() {
        handled[r] = epoch;
    }
    let mut newly = Vec::new();
    let mut stack = vec![raiser];
    while let Some(cell) = stack.pop() {
        for &child in graph.children(cell) {
            let c = child.index();
            if handled[c] == epoch {
                continue;
            }
            handled[c] = epoch;
            if is_queued(child) && cancelled_by[c].is_none() {
                cancelled_by[c] = Some(raiser);
                newly.push(child);
            }
            stack.push(child);
        }
    }
    newly
}

/// A scheduler that runs one cell at a time, in queue order.
#[derive(Debug)]
pub struct SequentialScheduler<'g> {
    graph: &'g DataflowGraph,
    /// Entries as `(key, cell)`, keys increasing from head to tail. An entry
    /// is live while its cell is queued and `key[cell]` is its key.
    entries: VecDeque<(i64, CellId)>,
    /// Whether each cell has a live entry.
    queued: Vec<bool>,
    /// The key of each queued cell's live entry.
    key: Vec<i64>,
    /// The key the next entry pushed at the head gets (then decremented).
    front_key: i64,
    /// The cause of each cancelled cell.
    cancelled_by: Vec<Option<CellId>>,
    /// The cells each raiser cancelled, so that rerunning it un-cancels them.
    /// An entry is stale when the cell's cause has changed since.
    cancelled: Vec<Vec<CellId>>,
    /// `handled[cell] == epoch` when `cell` and every descendant of it are
    /// known to be cancelled or not queued. Cancelling only adds
    /// cancellations and popping only removes queued cells, so this stays
    /// true until a requeue, which starts a new epoch.
    handled: Vec<u64>,
    epoch: u64,
    interrupted: bool,
}

impl<'g> SequentialScheduler<'g> {
    /// A queue holding `order` (normally `DataflowGraph::run_order`'s
    /// result); a cell listed twice keeps its first place.
    ///
    /// # Panics
    /// When a cell of `order` is not in `graph`.
    pub fn new(graph: &'g DataflowGraph, order: Vec<CellId>) -> Self {
        let n = graph.len();
        let mut scheduler = SequentialScheduler {
            graph,
            entries: VecDeque::with_capacity(order.len()),
            queued: vec![false; n],
            key: vec![0; n],
            front_key: -1,
            cancelled_by: vec![None; n],
            cancelled: vec![Vec::new(); n],
            handled: vec![0; n],
            epoch: 1,
            interrupted: false,
        };
        let mut back_key = 0;
        for cell in order {
            let i = cell.index();
            if !scheduler.queued[i] {
                scheduler.queued[i] = true;
                scheduler.key[i] = back_key;
                scheduler.entries.push_back((back_key, cell));
                back_key += 1;
            }
        }
        scheduler
    }

    /// Whether the queue entry `(key, cell)` is the cell's current place.
    fn is_live(&self, key: i64, cell: CellId) -> bool {
        self.queued[cell.index()] && self.key[cell.index()] == key
    }
}

impl Scheduler for SequentialScheduler<'_> {
    fn next(&mut self) -> Option<CellId> {
        if self.interrupted {
            return None;
        }
        while let Some((key, cell)) = self.entries.pop_front() {
            if !self.is_live(key, cell) {
                continue;
            }
            self.queued[cell.index()] = false;
            if self.cancelled_by[cell.index()].is_none() {
                return Some(cell);
            }
        }
        None
    }

    fn complete(&mut self, _cell: CellId) {}

    fn cancel(&mut self, raiser: CellId) -> Vec<CellId> {
        let queued = &self.queued;
        let mut newly = cancel_descendants(
            self.graph,
            raiser,
            self.epoch,
            &mut self.handled,
            &mut self.cancelled_by,
            |cell| queued[cell.index()],
        );
        newly.sort_unstable_by_key(|cell| self.key[cell.index()]);
        self.cancelled[raiser.index()].extend_from_slice(&newly);
        newly
    }

    fn requeue_for_rerun(&mut self, cells: &[CellId]) {
        let mut cells = cells.to_vec();
        cells.sort_unstable_by_key(|&cell| self.graph.topo_rank(cell));
        cells.dedup();
        for &cell in cells.iter().rev() {
            // Any older entry of the cell goes stale with the new key.
            self.queued[cell.index()] = true;
            self.key[cell.index()] = self.front_key;
            self.entries.push_front((self.front_key, cell));
            self.front_key -= 1;
        }
        for &cell in &cells {
            self.cancelled_by[cell.index()] = None;
            for victim in std::mem::take(&mut self.cancelled[cell.index()]) {
                if self.cancelled_by[victim.index()] == Some(cell) {
                    self.cancelled_by[victim.index()] = None;
                }
            }
        }
        // Cells are queued or un-cancelled again, so no cell is known to have
        // only cancelled queued descendants any more.
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
        self.entries
            .iter()
            .filter(|&&(key, cell)| {
                self.is_live(key, cell) && self.cancelled_by[cell.index()].is_none()
            })
            .map(|&(_, cell)| cell)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::testing::{graph_of, ids, random_dag, random_graph, RandomDag};
    use proptest::prelude::*;

    /// The diamond 0 → {1, 2} → 3.
    fn diamond() -> DataflowGraph {
        graph_of(&[("a", ""), ("b", "a"), ("c", "a"), ("", "b c")])
    }

    /// Pops every remaining cell, completing each.
    fn drain(scheduler: &mut impl Scheduler) -> Vec<CellId> {
        let mut ran = Vec::new();
        while let Some(cell) = scheduler.next() {
            ran.push(cell);
            scheduler.complete(cell);
        }
        ran
    }

    /// Runs `order` on `graph`, failing the cells in `failing`; returns the
    /// cells run and the result of each `cancel`.
    fn run(
        graph: &DataflowGraph,
        order: &[usize],
        failing: &[usize],
    ) -> (Vec<CellId>, Vec<(CellId, Vec<CellId>)>) {
        let mut scheduler = SequentialScheduler::new(graph, ids(order));
        let mut ran = Vec::new();
        let mut cancels = Vec::new();
        while let Some(cell) = scheduler.next() {
            ran.push(cell);
            if failing.contains(&cell.index()) {
                cancels.push((cell, scheduler.cancel(cell)));
            }
            scheduler.complete(cell);
        }
        (ran, cancels)
    }

    #[test]
    fn requeue_moves_cells_to_the_head_in_topological_order() {
        // P = #0 defines p, C = #1 reads it, Y = #2 is unrelated.
        let graph = graph_of(&[("p", ""), ("", "p"), ("y", "")]);
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[2, 0]));
        scheduler.requeue_for_rerun(&ids(&[1, 0]));
        assert_eq!(scheduler.pending(), ids(&[0, 1, 2]));
        assert_eq!(drain(&mut scheduler), ids(&[0, 1, 2]));
    }

    #[test]
    fn requeue_moves_a_queued_cell_instead_of_duplicating_it() {
        let graph = graph_of(&[("p", ""), ("", "p")]);
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[1]));
        scheduler.requeue_for_rerun(&ids(&[1, 0, 1]));
        assert_eq!(drain(&mut scheduler), ids(&[0, 1]));
    }

    #[test]
    fn requeue_uncancels_the_cells_the_raiser_cancelled() {
        // R = #0 → D = #1; E = #2 is cancelled by another raiser, Q = #3.
        let graph = graph_of(&[("r", ""), ("", "r"), ("", "q"), ("q", "")]);
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 3, 1, 2]));
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert_eq!(scheduler.cancel(CellId::new(0)), ids(&[1]));
        assert_eq!(scheduler.next(), Some(CellId::new(3)));
        assert_eq!(scheduler.cancel(CellId::new(3)), ids(&[2]));
        assert_eq!(scheduler.cancelled_by(CellId::new(1)), Some(CellId::new(0)));
        assert_eq!(scheduler.pending(), ids(&[]));
        scheduler.requeue_for_rerun(&ids(&[0]));
        assert_eq!(scheduler.cancelled_by(CellId::new(1)), None);
        assert_eq!(scheduler.cancelled_by(CellId::new(2)), Some(CellId::new(3)));
        assert_eq!(drain(&mut scheduler), ids(&[0, 1]));
    }

    #[test]
    fn requeue_of_a_cancelled_cell_uncancels_it() {
        let graph = graph_of(&[("r", ""), ("d", "r"), ("", "d")]);
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 1, 2]));
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert_eq!(scheduler.cancel(CellId::new(0)), ids(&[1, 2]));
        scheduler.requeue_for_rerun(&ids(&[1]));
        assert_eq!(scheduler.pending(), ids(&[1]));
        assert_eq!(scheduler.cancelled_by(CellId::new(2)), Some(CellId::new(0)));
        // Cancelling again reaches #1's queued descendants anew.
        assert_eq!(scheduler.cancel(CellId::new(0)), ids(&[1]));
        assert_eq!(drain(&mut scheduler), ids(&[]));
    }

    #[test]
    fn cancel_marks_exactly_the_queued_descendants() {
        let graph = diamond();
        let (ran, cancels) = run(&graph, &[0, 1, 2, 3], &[1]);
        assert_eq!(ran, ids(&[0, 1, 2]));
        assert_eq!(cancels, [(CellId::new(1), ids(&[3]))]);

        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 1, 2, 3]));
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert_eq!(scheduler.next(), Some(CellId::new(1)));
        assert_eq!(scheduler.cancel(CellId::new(1)), ids(&[3]));
        assert_eq!(scheduler.cancelled_by(CellId::new(3)), Some(CellId::new(1)));
        assert_eq!(scheduler.cancelled_by(CellId::new(2)), None);
        assert_eq!(scheduler.pending(), ids(&[2]));
        assert_eq!(drain(&mut scheduler), ids(&[2]));
        // A cancelled cell stays cancelled after it is skipped.
        assert_eq!(scheduler.cancelled_by(CellId::new(3)), Some(CellId::new(1)));
    }

    #[test]
    fn cancel_returns_cells_in_queue_order_and_once() {
        let graph = diamond();
        let (ran, cancels) = run(&graph, &[0, 2, 1, 3], &[0, 2, 1]);
        assert_eq!(ran, ids(&[0]));
        assert_eq!(cancels, [(CellId::new(0), ids(&[2, 1, 3]))]);
        // Two failing parents: the second finds nothing left to cancel.
        let (ran, cancels) = run(&graph, &[0, 1, 2, 3], &[1, 2]);
        assert_eq!(ran, ids(&[0, 1, 2]));
        assert_eq!(
            cancels,
            [(CellId::new(1), ids(&[3])), (CellId::new(2), ids(&[]))]
        );
    }

    #[test]
    fn cancel_walks_through_cells_that_are_not_queued() {
        // The chain 0 → 1 → 2 where only 0 and 2 are queued.
        let graph = graph_of(&[("a", ""), ("b", "a"), ("", "b")]);
        let (ran, cancels) = run(&graph, &[0, 2], &[0]);
        assert_eq!(ran, ids(&[0]));
        assert_eq!(cancels, [(CellId::new(0), ids(&[2]))]);
    }

    #[test]
    fn cancel_terminates_on_cycles() {
        // #0 and #1 form a cycle that #2 reads; errored cells run first.
        let graph = graph_of(&[("a", "b"), ("b", "a"), ("", "a"), ("d", "")]);
        let order = graph.run_order(&ids(&[0, 1, 2, 3]), &ids(&[0, 1]));
        assert_eq!(order, ids(&[0, 1, 2, 3]));
        let (ran, cancels) = run(&graph, &[0, 1, 2, 3], &[0, 1]);
        assert_eq!(ran, ids(&[0, 3]));
        assert_eq!(cancels, [(CellId::new(0), ids(&[1, 2]))]);
    }

    #[test]
    fn interrupt_halts_next_and_pending_reports_the_rest() {
        let graph = diamond();
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 1, 2, 3]));
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert!(!scheduler.is_interrupted());
        scheduler.interrupt();
        assert!(scheduler.is_interrupted());
        assert_eq!(scheduler.next(), None);
        assert_eq!(scheduler.next(), None);
        assert_eq!(scheduler.pending(), ids(&[1, 2, 3]));
    }

    #[test]
    fn pending_after_interrupt_leaves_out_cancelled_cells() {
        let graph = diamond();
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 1, 2, 3]));
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert_eq!(scheduler.next(), Some(CellId::new(1)));
        assert_eq!(scheduler.cancel(CellId::new(1)), ids(&[3]));
        scheduler.interrupt();
        assert_eq!(scheduler.next(), None);
        assert_eq!(scheduler.pending(), ids(&[2]));
    }

    #[test]
    fn new_keeps_the_first_place_of_a_repeated_cell() {
        let graph = diamond();
        let mut scheduler = SequentialScheduler::new(&graph, ids(&[0, 2, 0, 1, 2]));
        assert_eq!(scheduler.pending(), ids(&[0, 2, 1]));
        assert_eq!(drain(&mut scheduler), ids(&[0, 2, 1]));
    }

    #[test]
    fn a_long_chain_cancelled_one_cell_at_a_time() {
        const N: usize = 100_000;
        let defs: Vec<[String; 1]> = (0..N).map(|i| [format!("v{i}")]).collect();
        let refs: Vec<Vec<String>> = (0..N)
            .map(|i| {
                if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("v{}", i - 1)]
                }
            })
            .collect();
        let cells: Vec<(&[String], &[String])> = defs
            .iter()
            .zip(&refs)
            .map(|(d, r)| (&d[..], r.as_slice()))
            .collect();
        let graph = DataflowGraph::build(&cells);
        let all: Vec<CellId> = (0..N).map(CellId::new).collect();
        // Every other cell is left out, so each cancel walks through one
        // cell that is not queued; the first failure cancels everything.
        let queued: Vec<CellId> = all.iter().copied().step_by(2).collect();
        let mut scheduler = SequentialScheduler::new(&graph, queued.clone());
        assert_eq!(scheduler.next(), Some(CellId::new(0)));
        assert_eq!(scheduler.cancel(CellId::new(0)), &queued[1..]);
        for &cell in &all {
            assert!(scheduler.cancel(cell).is_empty());
        }
        assert_eq!(scheduler.next(), None);
    }

    /// One step of a random session.
    #[derive(Debug, Clone)]
    enum Op {
        Next,
        Cancel(usize),
        Requeue(Vec<bool>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Next),
            2 => (0..40usize).prop_map(Op::Cancel),
            1 => proptest::collection::vec(proptest::bool::weighted(0.2), 40).prop_map(Op::Requeue),
        ]
    }

    /// A naive scheduler: a plain list as queue and full descendant walks.
    struct Model<'a> {
        dag: &'a RandomDag,
        graph: &'a DataflowGraph,
        queue: Vec<CellId>,
        cancelled_by: Vec<Option<CellId>>,
    }

    impl Model<'_> {
        fn next(&mut self) -> Option<CellId> {
            while !self.queue.is_empty() {
                let cell = self.queue.remove(0);
                if self.cancelled_by[cell.index()].is_none() {
                    return Some(cell);
                }
            }
            None
        }

        fn cancel(&mut self, raiser: CellId) -> Vec<CellId> {
            let newly: Vec<CellId> = self
                .queue
                .iter()
                .copied()
                .filter(|&c| self.cancelled_by[c.index()].is_none() && self.dag.reaches(raiser, c))
                .collect();
            for &cell in &newly {
                self.cancelled_by[cell.index()] = Some(raiser);
            }
            newly
        }

        fn requeue(&mut self, cells: &[CellId]) {
            let mut cells = cells.to_vec();
            cells.sort_by_key(|&c| self.graph.topo_rank(c));
            self.queue.retain(|c| !cells.contains(c));
            self.queue.splice(0..0, cells.iter().copied());
            for cause in &mut self.cancelled_by {
                if cause.is_some_and(|c| cells.contains(&c)) {
                    *cause = None;
                }
            }
            for cell in cells {
                self.cancelled_by[cell.index()] = None;
            }
        }

        fn pending(&self) -> Vec<CellId> {
            self.queue
                .iter()
                .copied()
                .filter(|c| self.cancelled_by[c.index()].is_none())
                .collect()
        }
    }

    proptest! {
        #[test]
        fn failures_cancel_exactly_their_queued_descendants(
            dag in random_dag(40),
            fail_mask in proptest::collection::vec(proptest::bool::weighted(0.2), 40),
        ) {
            let graph = dag.build();
            let all = dag.all();
            let failing = |c: CellId| fail_mask[c.index()];
            let mut scheduler = SequentialScheduler::new(&graph, graph.run_order(&all, &[]));
            // The queue as the test sees it, and when each cell ran.
            let mut expected_queue = graph.run_order(&all, &[]);
            let mut cancelled: Vec<Option<CellId>> = vec![None; dag.n];
            let mut ran_at: Vec<Option<usize>> = vec![None; dag.n];
            let mut ran = Vec::new();
            while let Some(cell) = scheduler.next() {
                let skipped = expected_queue.iter().position(|&c| c == cell);
                prop_assert!(skipped.is_some(), "{} was not queued", cell);
                let removed: Vec<CellId> = expected_queue.drain(..=skipped.unwrap_or(0)).collect();
                for &c in &removed[..removed.len() - 1] {
                    prop_assert!(cancelled[c.index()].is_some(), "{} was skipped", c);
                }
                ran_at[cell.index()] = Some(ran.len());
                ran.push(cell);
                if failing(cell) {
                    let expected: Vec<CellId> = expected_queue
                        .iter()
                        .copied()
                        .filter(|&c| cancelled[c.index()].is_none() && dag.reaches(cell, c))
                        .collect();
                    let newly = scheduler.cancel(cell);
                    prop_assert_eq!(&newly, &expected);
                    for c in newly {
                        cancelled[c.index()] = Some(cell);
                    }
                }
                scheduler.complete(cell);
            }
            prop_assert!(expected_queue.iter().all(|c| cancelled[c.index()].is_some()));
            for cell in all {
                let cause = scheduler.cancelled_by(cell);
                prop_assert_eq!(cause, cancelled[cell.index()]);
                match (ran_at[cell.index()], cause) {
                    (Some(at), None) => {
                        // No failing ancestor: it would have cancelled the cell.
                        for &earlier in &ran[..at] {
                            prop_assert!(!(failing(earlier) && dag.reaches(earlier, cell)));
                        }
                    }
                    (None, Some(raiser)) => {
                        prop_assert!(failing(raiser));
                        prop_assert!(ran_at[raiser.index()].is_some());
                        prop_assert!(dag.reaches(raiser, cell));
                    }
                    (at, cause) => prop_assert!(false, "{} ran at {:?}, cancelled by {:?}", cell, at, cause),
                }
            }
        }

        #[test]
        fn matches_a_naive_model_under_requeues(
            dag in random_dag(40),
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            check_against_model(&dag, ops)?;
        }

        #[test]
        fn matches_a_naive_model_on_cyclic_graphs(
            dag in random_graph(40, 4),
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            check_against_model(&dag, ops)?;
        }
    }

    /// Applies `ops` to a `SequentialScheduler` and to the model, comparing
    /// every answer and the whole state after each step.
    fn check_against_model(dag: &RandomDag, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let graph = dag.build();
        let order = graph.run_order(&dag.all(), &[]);
        let mut scheduler = SequentialScheduler::new(&graph, order.clone());
        let mut model = Model {
            dag,
            graph: &graph,
            queue: order,
            cancelled_by: vec![None; dag.n],
        };
        for op in ops {
            match op {
                Op::Next => prop_assert_eq!(scheduler.next(), model.next()),
                Op::Cancel(raiser) => {
                    let raiser = CellId::new(raiser % dag.n);
                    prop_assert_eq!(scheduler.cancel(raiser), model.cancel(raiser));
                }
                Op::Requeue(mask) => {
                    let cells: Vec<CellId> = dag
                        .all()
                        .into_iter()
                        .filter(|c| mask[c.index()])
                        .rev()
                        .collect();
                    scheduler.requeue_for_rerun(&cells);
                    model.requeue(&cells);
                }
            }
            prop_assert_eq!(scheduler.pending(), model.pending());
            for cell in dag.all() {
                prop_assert_eq!(
                    scheduler.cancelled_by(cell),
                    model.cancelled_by[cell.index()]
                );
            }
        }
        Ok(())
    }
}
