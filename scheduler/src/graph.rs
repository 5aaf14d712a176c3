//! The dataflow graph of a notebook: which cell feeds which, the static errors
//! found in that wiring, and the orders in which cells may run.
//!
//! A cell is linked to the cells that read its public names (names that do
//! not start with `_`): there is an edge from every cell defining a name to
//! every other cell referring to it. The edges are kept as sorted adjacency
//! lists, and petgraph finds the strongly connected components, whose members
//! are on dependency cycles when a component holds two or more cells. Nothing
//! here recurses, so notebooks of any length are safe from stack overflow.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use executor_core::{CellId, Notebook};
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// A problem in how cells are wired together, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticError {
    /// The cell defines `name`, which `others` (file order) also define.
    MultipleDefinitions {
        /// The public name defined more than once.
        name: String,
        /// The other cells defining `name`, in file order.
        others: Vec<CellId>,
    },
    /// The cell is on a dependency cycle; `cycle` lists the cells of the
    /// strongly connected component in file order.
    Cycle {
        /// Every cell of the component, the erroring cell included, in file order.
        cycle: Vec<CellId>,
    },
}

impl fmt::Display for StaticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticError::MultipleDefinitions { name, others } => {
                write!(f, "`{name}` is also defined by ")?;
                write_cells(f, others)
            }
            StaticError::Cycle { cycle } => {
                write!(f, "on a dependency cycle through ")?;
                write_cells(f, cycle)
            }
        }
    }
}

/// Writes `cells` as a comma-separated list such as `#0, #3`.
fn write_cells(f: &mut fmt::Formatter<'_>, cells: &[CellId]) -> fmt::Result {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{cell}")?;
    }
    Ok(())
}

/// Adjacency lists in compressed form: the neighbours of cell `i` are
/// `targets[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone)]
struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<CellId>,
}

impl Adjacency {
    /// Empty lists for no cells; rows are added with `push` and `close_row`.
    fn new() -> Adjacency {
        Adjacency {
            offsets: vec![0],
            targets: Vec::new(),
        }
    }

    /// The neighbours of `cell`.
    fn of(&self, cell: CellId) -> &[CellId] {
        let i = cell.index();
        &self.targets[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The reversed lists over `n` cells. Each reversed list comes out sorted,
    /// because sources are visited in file order; it is deduplicated when
    /// every list of `self` is.
    fn transpose(&self, n: usize) -> Adjacency {
        let mut offsets = vec![0usize; n + 1];
        for target in &self.targets {
            offsets[target.index() + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets[..n].to_vec();
        let mut targets = vec![CellId::new(0); self.targets.len()];
        for source in 0..n {
            let source = CellId::new(source);
            for target in self.of(source) {
                let slot = &mut fill[target.index()];
                targets[*slot] = source;
                *slot += 1;
            }
        }
        Adjacency { offsets, targets }
    }
}

/// How `run_order` treats a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// Not asked for.
    Out,
    /// Asked for and runnable: placed in topological order.
    Healthy,
    /// Asked for and reported as errored: placed first.
    Errored,
}

/// The dataflow graph of a notebook's cells.
///
/// Cell `i` of the graph is the cell with `CellId` `i`. Built once from each
/// cell's defined and referenced names; every query is read-only.
#[derive(Debug, Clone)]
pub struct DataflowGraph {
    parents: Adjacency,
    children: Adjacency,
    /// Interned public names: index into `definers`.
    name_ids: HashMap<String, usize>,
    /// For each interned name, the cells defining it, in file order.
    definers: Vec<Vec<CellId>>,
    static_errors: Vec<(CellId, StaticError)>,
    /// Position of each cell in the whole-graph order (see `topo_rank`).
    rank: Vec<usize>,
}

impl DataflowGraph {
    /// The graph of a compiled notebook: each cell's
    /// [`graph_defs`](executor_core::Cell::graph_defs) and
    /// [`inputs`](executor_core::Cell::inputs).
    pub fn of(notebook: &Notebook) -> DataflowGraph {
        let cells: Vec<(&[String], &[String])> = notebook
            .cells()
            .iter()
            .map(|cell| (cell.graph_defs(), cell.inputs()))
            .collect();
        DataflowGraph::build(&cells)
    }

    /// Builds the graph of a notebook: `cells[i]` holds the `(defs, refs)` of
    /// the cell with `CellId` `i`.
    ///
    /// Names starting with `_` are private and ignored. An edge goes from
    /// each cell defining a name to each other cell referring to it, also
    /// when several cells define the name. Runs in time linear in the cells,
    /// names and edges.
    ///
    /// # Panics
    /// When there are more cells than fit in a `CellId`.
    pub fn build<D: AsRef<str>, R: AsRef<str>>(cells: &[(&[D], &[R])]) -> DataflowGraph {
        let n = cells.len();

        // Intern the public names and record their definers in file order;
        // `own_names` keeps each cell's distinct public definitions.
        let mut name_ids: HashMap<String, usize> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        let mut definers: Vec<Vec<CellId>> = Vec::new();
        let mut own_names: Vec<usize> = Vec::new();
        let mut own_offsets: Vec<usize> = Vec::with_capacity(n + 1);
        own_offsets.push(0);
        for (i, (defs, _)) in cells.iter().enumerate() {
            let cell = CellId::new(i);
            for def in defs.iter() {
                let name = def.as_ref();
                if is_private(name) {
                    continue;
                }
                let id = match name_ids.get(name) {
                    Some(&id) => id,
                    None => {
                        let id = names.len();
                        name_ids.insert(name.to_owned(), id);
                        names.push(name);
                        definers.push(Vec::new());
                        id
                    }
                };
                // Cells are visited in order, so a repeated definition within
                // this cell is always the last definer of the name.
                if definers[id].last() != Some(&cell) {
                    definers[id].push(cell);
                    own_names.push(id);
                }
            }
            own_offsets.push(own_names.len());
        }

        // Collect each cell's parents, deduplicated with a per-cell stamp.
        let mut raw_parents = Adjacency::new();
        let mut stamp = vec![usize::MAX; n];
        for (j, (_, refs)) in cells.iter().enumerate() {
            for reference in refs.iter() {
                let name = reference.as_ref();
                if is_private(name) {
                    continue;
                }
                let Some(&id) = name_ids.get(name) else {
                    continue;
                };
                for &parent in &definers[id] {
                    let p = parent.index();
                    if p != j && stamp[p] != j {
                        stamp[p] = j;
                        raw_parents.targets.push(parent);
                    }
                }
            }
            raw_parents.offsets.push(raw_parents.targets.len());
        }
        let children = raw_parents.transpose(n);
        let parents = children.transpose(n);
        drop(raw_parents);

        // Petgraph finds the strongly connected components; node `i` is cell `i`.
        let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(n, children.targets.len());
        for _ in 0..n {
            graph.add_node(());
        }
        for p in 0..n {
            for child in children.of(CellId::new(p)) {
                graph.add_edge(NodeIndex::new(p), NodeIndex::new(child.index()), ());
            }
        }
        let mut cycles: Vec<Vec<CellId>> = Vec::new();
        let mut cycle_of: Vec<Option<usize>> = vec![None; n];
        for component in kosaraju_scc(&graph) {
            if component.len() < 2 {
                continue;
            }
            let mut cycle: Vec<CellId> = component
                .iter()
                .map(|node| CellId::new(node.index()))
                .collect();
            cycle.sort_unstable();
            for cell in &cycle {
                cycle_of[cell.index()] = Some(cycles.len());
            }
            cycles.push(cycle);
        }
        drop(graph);

        // Static errors, cell by cell: conflicting names in the order the
        // cell defines them, then the cycle.
        let mut static_errors = Vec::new();
        for i in 0..n {
            let cell = CellId::new(i);
            for &id in &own_names[own_offsets[i]..own_offsets[i + 1]] {
                let cells_defining = &definers[id];
                if cells_defining.len() > 1 {
                    let others = cells_defining
                        .iter()
                        .copied()
                        .filter(|&other| other != cell)
                        .collect();
                    let name = names[id].to_owned();
                    static_errors.push((cell, StaticError::MultipleDefinitions { name, others }));
                }
            }
            if let Some(k) = cycle_of[i] {
                let cycle = cycles[k].clone();
                static_errors.push((cell, StaticError::Cycle { cycle }));
            }
        }

        // Whole-graph order: the cells off cycles by the min-heap rule, then
        // the cycle members in file order.
        let on_cycle = |cell: CellId| cycle_of[cell.index()].is_some();
        let acyclic: Vec<CellId> = (0..n).map(CellId::new).filter(|&c| !on_cycle(c)).collect();
        let mut order = Vec::with_capacity(n);
        min_heap_order(&parents, &children, &acyclic, |c| !on_cycle(c), &mut order);
        order.extend((0..n).map(CellId::new).filter(|&c| on_cycle(c)));
        let mut rank = vec![0; n];
        for (position, cell) in order.iter().enumerate() {
            rank[cell.index()] = position;
        }

        DataflowGraph {
            parents,
            children,
            name_ids,
            definers,
            static_errors,
            rank,
        }
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.rank.len()
    }

    /// Whether the notebook has no cells.
    pub fn is_empty(&self) -> bool {
        self.rank.is_empty()
    }

    /// The cells whose definitions `cell` reads, in file order, without duplicates.
    ///
    /// # Panics
    /// When `cell` is not in the graph.
    pub fn parents(&self, cell: CellId) -> &[CellId] {
        self.parents.of(cell)
    }

    /// The cells reading definitions of `cell`, in file order, without duplicates.
    ///
    /// # Panics
    /// When `cell` is not in the graph.
    pub fn children(&self, cell: CellId) -> &[CellId] {
        self.children.of(cell)
    }

    /// The cells defining the public `name`, in file order; empty for an
    /// unknown or private name.
    pub fn definers(&self, name: &str) -> &[CellId] {
        match self.name_ids.get(name) {
            Some(&id) => &self.definers[id],
            None => &[],
        }
    }

    /// The static errors found at build, sorted by cell. Within a cell the
    /// multiple-definition errors come first, in the order the cell defines
    /// the names, then its cycle error. A cell may have both kinds.
    pub fn static_errors(&self) -> &[(CellId, StaticError)] {
        &self.static_errors
    }

    /// The seeds and every cell they depend on, directly or not, sorted.
    ///
    /// # Panics
    /// When a seed is not in the graph.
    pub fn ancestors(&self, seeds: &[CellId]) -> Vec<CellId> {
        self.closure(seeds, &self.parents)
    }

    /// The seeds and every cell depending on them, directly or not, sorted.
    ///
    /// # Panics
    /// When a seed is not in the graph.
    pub fn descendants(&self, seeds: &[CellId]) -> Vec<CellId> {
        self.closure(seeds, &self.children)
    }

    /// The run queue for `members` (any subset of the cells, in any order,
    /// duplicates allowed).
    ///
    /// First come the members listed in `errored` (static-error cells: cycle
    /// members, multiple definitions, syntax errors), in file order; cells of
    /// `errored` that are not members are ignored. Then come the other
    /// members in topological order of the subgraph they induce, ties broken
    /// by file position: among the cells whose member parents are all placed,
    /// the earliest in the file goes next. Should that subgraph still hold a
    /// cycle, its blocked cells come last, in file order, so every member is
    /// returned exactly once.
    ///
    /// # Panics
    /// When a cell is not in the graph.
    pub fn run_order(&self, members: &[CellId], errored: &[CellId]) -> Vec<CellId> {
        let mut membership = vec![Membership::Out; self.len()];
        for &cell in members {
            membership[cell.index()] = Membership::Healthy;
        }
        for &cell in errored {
            let state = &mut membership[cell.index()];
            if *state == Membership::Healthy {
                *state = Membership::Errored;
            }
        }
        let mut unique: Vec<CellId> = members.to_vec();
        unique.sort_unstable();
        unique.dedup();

        let mut order = Vec::with_capacity(unique.len());
        order.extend(
            unique
                .iter()
                .copied()
                .filter(|c| membership[c.index()] == Membership::Errored),
        );
        let healthy: Vec<CellId> = unique
            .into_iter()
            .filter(|c| membership[c.index()] == Membership::Healthy)
            .collect();
        min_heap_order(
            &self.parents,
            &self.children,
            &healthy,
            |c| membership[c.index()] == Membership::Healthy,
            &mut order,
        );
        order
    }

    /// The position of `cell` in the order of the whole graph computed by the
    /// same min-heap rule as `run_order`, with cycle members taken out and
    /// ranked after all other cells, in file order. Sorting any set of cells
    /// off cycles by rank sorts it topologically. Ranks are distinct.
    ///
    /// # Panics
    /// When `cell` is not in the graph.
    pub fn topo_rank(&self, cell: CellId) -> usize {
        self.rank[cell.index()]
    }

    /// The seeds and every cell reachable from them through `edges`, sorted.
    fn closure(&self, seeds: &[CellId], edges: &Adjacency) -> Vec<CellId> {
        let mut seen = vec![false; self.len()];
        let mut found = Vec::new();
        for &seed in seeds {
            if !seen[seed.index()] {
                seen[seed.index()] = true;
                found.push(seed);
            }
        }
        // `found` doubles as the work list: cells before `next` are expanded.
        let mut next = 0;
        while let Some(&cell) = found.get(next) {
            next += 1;
            for &neighbour in edges.of(cell) {
                if !seen[neighbour.index()] {
                    seen[neighbour.index()] = true;
                    found.push(neighbour);
                }
            }
        }
        found.sort_unstable();
        found
    }
}

/// Whether `name` is private to its cell.
fn is_private(name: &str) -> bool {
    name.starts_with('_')
}

/// Appends `cells` (sorted, distinct, all `included`) to `out` in topological
/// order of the subgraph induced by `included`, using Kahn's algorithm with a
/// min-heap so that the earliest ready cell in the file goes first. Cells that
/// never become ready, being on or behind a cycle, follow in file order.
fn min_heap_order(
    parents: &Adjacency,
    children: &Adjacency,
    cells: &[CellId],
    included: impl Fn(CellId) -> bool,
    out: &mut Vec<CellId>,
) {
    let n = parents.offsets.len() - 1;
    let mut waiting = vec![0usize; n];
    let mut ready = BinaryHeap::new();
    for &cell in cells {
        let count = parents.of(cell).iter().filter(|&&p| included(p)).count();
        waiting[cell.index()] = count;
        if count == 0 {
            ready.push(Reverse(cell));
        }
    }
    let start = out.len();
    while let Some(Reverse(cell)) = ready.pop() {
        out.push(cell);
        for &child in children.of(cell) {
            if included(child) {
                let count = &mut waiting[child.index()];
                *count -= 1;
                if *count == 0 {
                    ready.push(Reverse(child));
                }
            }
        }
    }
    if out.len() - start < cells.len() {
        out.extend(cells.iter().copied().filter(|c| waiting[c.index()] > 0));
    }
}

/// Builders and random graphs shared by the tests of this crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::DataflowGraph;
    use executor_core::CellId;
    use proptest::prelude::*;

    /// The ids with the given indices.
    pub(crate) fn ids(indices: &[usize]) -> Vec<CellId> {
        indices.iter().copied().map(CellId::new).collect()
    }

    /// Builds a graph from cells written as `("defs", "refs")`, each a
    /// whitespace-separated list of names.
    pub(crate) fn graph_of(cells: &[(&str, &str)]) -> DataflowGraph {
        let split: Vec<(Vec<&str>, Vec<&str>)> = cells
            .iter()
            .map(|(defs, refs)| {
                (
                    defs.split_whitespace().collect(),
                    refs.split_whitespace().collect(),
                )
            })
            .collect();
        let slices: Vec<(&[&str], &[&str])> = split
            .iter()
            .map(|(defs, refs)| (defs.as_slice(), refs.as_slice()))
            .collect();
        DataflowGraph::build(&slices)
    }

    /// A random notebook, acyclic unless made by `random_graph`, whose file
    /// order differs from its topological order.
    #[derive(Debug, Clone)]
    pub(crate) struct RandomDag {
        /// The number of cells.
        pub(crate) n: usize,
        /// Edges as (parent, child), in file positions.
        pub(crate) edges: Vec<(CellId, CellId)>,
    }

    /// Random DAGs of 1 to `max_cells` cells: edges go from lower to higher
    /// topological index, and topological indices are shuffled into file
    /// positions.
    pub(crate) fn random_dag(max_cells: usize) -> impl Strategy<Value = RandomDag> {
        (1..=max_cells, 0.0..0.5f64)
            .prop_flat_map(|(n, density)| {
                let pairs = n * (n - 1) / 2;
                (
                    Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                    proptest::collection::vec(proptest::bool::weighted(density), pairs),
                )
            })
            .prop_map(|(position, include)| {
                let n = position.len();
                let mut edges = Vec::new();
                let mut k = 0;
                for i in 0..n {
                    for j in i + 1..n {
                        if include[k] {
                            edges.push((CellId::new(position[i]), CellId::new(position[j])));
                        }
                        k += 1;
                    }
                }
                RandomDag { n, edges }
            })
    }

    /// Random graphs that may hold cycles: a random DAG plus up to `extra`
    /// edges between random cells (self edges dropped).
    pub(crate) fn random_graph(max_cells: usize, extra: usize) -> impl Strategy<Value = RandomDag> {
        (
            random_dag(max_cells),
            proptest::collection::vec((0..max_cells, 0..max_cells), 0..=extra),
        )
            .prop_map(|(mut dag, more)| {
                for (p, c) in more {
                    let (p, c) = (p % dag.n, c % dag.n);
                    let edge = (CellId::new(p), CellId::new(c));
                    if p != c && !dag.edges.contains(&edge) {
                        dag.edges.push(edge);
                    }
                }
                dag
            })
    }

    impl RandomDag {
        /// Every cell.
        pub(crate) fn all(&self) -> Vec<CellId> {
            (0..self.n).map(CellId::new).collect()
        }

        /// The graph, built from names: cell `i` defines `v{i}` and a private
        /// name, and refers to its parents' names, a private name and an
        /// undefined one.
        pub(crate) fn build(&self) -> DataflowGraph {
            let defs: Vec<Vec<String>> = (0..self.n)
                .map(|i| vec![format!("v{i}"), "_tmp".to_owned()])
                .collect();
            let mut refs: Vec<Vec<String>> = (0..self.n)
                .map(|_| vec!["_tmp".to_owned(), "print".to_owned()])
                .collect();
            for &(parent, child) in &self.edges {
                refs[child.index()].push(format!("v{}", parent.index()));
            }
            let cells: Vec<(&[String], &[String])> = defs
                .iter()
                .zip(&refs)
                .map(|(d, r)| (d.as_slice(), r.as_slice()))
                .collect();
            DataflowGraph::build(&cells)
        }

        /// The parents of `cell`, sorted, from the edge list.
        pub(crate) fn parents(&self, cell: CellId) -> Vec<CellId> {
            let mut parents: Vec<CellId> = self
                .edges
                .iter()
                .filter(|&&(_, c)| c == cell)
                .map(|&(p, _)| p)
                .collect();
            parents.sort_unstable();
            parents
        }

        /// Whether `descendant` is reachable from `ancestor` by one or more edges.
        pub(crate) fn reaches(&self, ancestor: CellId, descendant: CellId) -> bool {
            let mut seen = vec![false; self.n];
            let mut stack = vec![ancestor];
            while let Some(cell) = stack.pop() {
                for &(p, c) in &self.edges {
                    if p == cell && !seen[c.index()] {
                        if c == descendant {
                            return true;
                        }
                        seen[c.index()] = true;
                        stack.push(c);
                    }
                }
            }
            false
        }

        /// The reference order of `members` (sorted, distinct): repeatedly the
        /// smallest-index member whose member parents are all placed.
        pub(crate) fn reference_order(&self, members: &[CellId]) -> Vec<CellId> {
            let member = |c: CellId| members.contains(&c);
            let mut placed = vec![false; self.n];
            let mut order = Vec::new();
            while let Some(&next) = members.iter().find(|&&c| {
                !placed[c.index()]
                    && self
                        .edges
                        .iter()
                        .all(|&(p, child)| child != c || !member(p) || placed[p.index()])
            }) {
                placed[next.index()] = true;
                order.push(next);
            }
            order
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{graph_of, ids, random_dag};
    use super::*;
    use proptest::prelude::*;

    /// Asserts the parents and children of every cell, given as parent lists.
    fn assert_edges(graph: &DataflowGraph, parents: &[&[usize]]) {
        assert_eq!(graph.len(), parents.len());
        for (i, expected) in parents.iter().enumerate() {
            assert_eq!(
                graph.parents(CellId::new(i)),
                ids(expected),
                "parents of #{i}"
            );
            let children: Vec<usize> = (0..parents.len())
                .filter(|&j| parents[j].contains(&i))
                .collect();
            assert_eq!(
                graph.children(CellId::new(i)),
                ids(&children),
                "children of #{i}"
            );
        }
    }

    fn multiple(name: &str, others: &[usize]) -> StaticError {
        StaticError::MultipleDefinitions {
            name: name.to_owned(),
            others: ids(others),
        }
    }

    fn cycle(cells: &[usize]) -> StaticError {
        StaticError::Cycle { cycle: ids(cells) }
    }

    /// Asserts `run_order` for each `(members, errored, expected)` case.
    fn assert_run_orders(graph: &DataflowGraph, cases: &[(&[usize], &[usize], &[usize])]) {
        for (members, errored, expected) in cases {
            assert_eq!(
                graph.run_order(&ids(members), &ids(errored)),
                ids(expected),
                "members {members:?}, errored {errored:?}"
            );
        }
    }

    #[test]
    fn edges_and_parents() {
        let graph = graph_of(&[
            ("x", ""),
            ("y", "x"),
            ("", "y x x"),
            ("z", "x undefined"),
            ("", "z y"),
        ]);
        assert_edges(&graph, &[&[], &[0], &[0, 1], &[0], &[1, 3]]);
        assert!(graph.static_errors().is_empty());
        assert_eq!(graph.definers("x"), ids(&[0]));
        assert_eq!(graph.definers("undefined"), ids(&[]));
    }

    #[test]
    fn reading_its_own_definition_makes_no_self_edge() {
        let graph = graph_of(&[("x", "x"), ("y", "x y")]);
        assert_edges(&graph, &[&[], &[0]]);
        assert!(graph.static_errors().is_empty());
    }

    #[test]
    fn private_names_are_ignored() {
        let graph = graph_of(&[("_x x", "_y"), ("_x _y", "_x"), ("_y", "x _x")]);
        assert_edges(&graph, &[&[], &[], &[0]]);
        assert!(graph.static_errors().is_empty());
        assert_eq!(graph.definers("_x"), ids(&[]));
    }

    #[test]
    fn multiple_definitions_name_the_other_definers() {
        let graph = graph_of(&[("x", ""), ("x y", ""), ("", "x"), ("y x", ""), ("", "y")]);
        assert_eq!(
            graph.static_errors(),
            [
                (CellId::new(0), multiple("x", &[1, 3])),
                (CellId::new(1), multiple("x", &[0, 3])),
                (CellId::new(1), multiple("y", &[3])),
                (CellId::new(3), multiple("y", &[1])),
                (CellId::new(3), multiple("x", &[0, 1])),
            ]
        );
        // Readers still depend on every definer, so they can be cancelled.
        assert_edges(&graph, &[&[], &[], &[0, 1, 3], &[], &[1, 3]]);
        assert_eq!(graph.definers("x"), ids(&[0, 1, 3]));
    }

    #[test]
    fn defining_a_name_twice_in_one_cell_is_no_conflict() {
        let graph = graph_of(&[("x x", ""), ("", "x")]);
        assert!(graph.static_errors().is_empty());
        assert_eq!(graph.definers("x"), ids(&[0]));
        assert_edges(&graph, &[&[], &[0]]);
    }

    #[test]
    fn cycle_members_get_cycle_errors() {
        let graph = graph_of(&[
            ("a", "b"),
            ("b", "a"),
            ("", "a"),
            ("p", "r"),
            ("q", "p"),
            ("r", "q"),
            ("s", "q"),
        ]);
        assert_eq!(
            graph.static_errors(),
            [
                (CellId::new(0), cycle(&[0, 1])),
                (CellId::new(1), cycle(&[0, 1])),
                (CellId::new(3), cycle(&[3, 4, 5])),
                (CellId::new(4), cycle(&[3, 4, 5])),
                (CellId::new(5), cycle(&[3, 4, 5])),
            ]
        );
    }

    #[test]
    fn a_cell_may_have_both_kinds_of_errors() {
        let graph = graph_of(&[("a x", "b"), ("b", "a"), ("x", "")]);
        assert_eq!(
            graph.static_errors(),
            [
                (CellId::new(0), multiple("x", &[2])),
                (CellId::new(0), cycle(&[0, 1])),
                (CellId::new(1), cycle(&[0, 1])),
                (CellId::new(2), multiple("x", &[0])),
            ]
        );
    }

    #[test]
    fn static_errors_display() {
        assert_eq!(
            multiple("x", &[1, 3]).to_string(),
            "`x` is also defined by #1, #3"
        );
        assert_eq!(
            cycle(&[0, 2]).to_string(),
            "on a dependency cycle through #0, #2"
        );
    }

    #[test]
    fn run_order_examples() {
        // c0: y = x, c1: z = 1, c2: x = 0.
        let graph = graph_of(&[("y", "x"), ("z", ""), ("x", "")]);
        assert_run_orders(&graph, &[(&[0, 1, 2], &[], &[1, 2, 0])]);
        // a: x = 0, b: y = x, c: w = 1.
        let graph = graph_of(&[("x", ""), ("y", "x"), ("w", "")]);
        assert_run_orders(&graph, &[(&[2, 1, 0], &[], &[0, 1, 2])]);
    }

    #[test]
    fn run_order_is_min_heap_not_breadth_first() {
        // Breadth-first layers would give [0, 2, 1, 3].
        let graph = graph_of(&[("a", ""), ("b", "a"), ("c", ""), ("d", "b")]);
        assert_run_orders(&graph, &[(&[0, 1, 2, 3], &[], &[0, 1, 2, 3])]);
    }

    #[test]
    fn run_order_of_member_subsets() {
        // The diamond 0 → {1, 2} → 3.
        let graph = graph_of(&[("a", ""), ("b", "a"), ("c", "a"), ("", "b c")]);
        assert_run_orders(
            &graph,
            &[
                (&[1, 3], &[], &[1, 3]),
                (&[3, 1], &[], &[1, 3]),
                (&[3, 2, 3, 2], &[], &[2, 3]),
                (&[], &[], &[]),
                (&[3, 0], &[0], &[0, 3]),
                (&[1, 2, 3], &[0], &[1, 2, 3]),
            ],
        );
    }

    #[test]
    fn errored_members_come_first() {
        // c0 and c1 form a cycle; c3 defines `x` like c2; c4 reads `a` and `x`.
        let graph = graph_of(&[
            ("a", "b"),
            ("b", "a"),
            ("x", ""),
            ("x", ""),
            ("", "a x"),
            ("y", ""),
        ]);
        let errored: Vec<usize> = graph
            .static_errors()
            .iter()
            .map(|(c, _)| c.index())
            .collect();
        assert_eq!(errored, [0, 1, 2, 3]);
        assert_run_orders(
            &graph,
            &[
                (&[5, 4, 3, 2, 1, 0], &errored, &[0, 1, 2, 3, 4, 5]),
                (&[5, 4, 1], &errored, &[1, 4, 5]),
                (&[5, 4], &[5], &[5, 4]),
            ],
        );
    }

    #[test]
    fn run_order_returns_unreported_cycles_last() {
        let graph = graph_of(&[("", "a"), ("a", "b"), ("b", "a"), ("c", "")]);
        assert_run_orders(&graph, &[(&[0, 1, 2, 3], &[], &[3, 0, 1, 2])]);
    }

    #[test]
    fn topo_rank_puts_cycle_members_last() {
        let graph = graph_of(&[("a", "b"), ("y", "x"), ("b", "a"), ("x", ""), ("", "a y")]);
        let ranks: Vec<usize> = (0..5).map(|i| graph.topo_rank(CellId::new(i))).collect();
        // Off the cycle: 3, 1, 4 (cell 4 only waits for cell 1), then 0, 2.
        assert_eq!(ranks, [3, 1, 4, 0, 2]);
    }

    #[test]
    fn ancestors_and_descendants_include_the_seeds() {
        // 0 → 1 → 3, 2 → 3, 4 alone.
        let graph = graph_of(&[("a", ""), ("b", "a"), ("c", ""), ("", "b c"), ("e", "")]);
        assert_eq!(graph.ancestors(&ids(&[3])), ids(&[0, 1, 2, 3]));
        assert_eq!(graph.ancestors(&ids(&[1, 4, 1])), ids(&[0, 1, 4]));
        assert_eq!(graph.descendants(&ids(&[0])), ids(&[0, 1, 3]));
        assert_eq!(graph.descendants(&ids(&[4, 2])), ids(&[2, 3, 4]));
        assert_eq!(graph.descendants(&[]), ids(&[]));
    }

    #[test]
    fn empty_notebook() {
        let graph = graph_of(&[]);
        assert!(graph.is_empty());
        assert_eq!(graph.len(), 0);
        assert!(graph.static_errors().is_empty());
        assert_eq!(graph.run_order(&[], &[]), ids(&[]));
    }

    #[test]
    fn long_chain_builds_without_recursion() {
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
        assert!(graph.static_errors().is_empty());
        assert_eq!(graph.parents(CellId::new(N - 1)), [CellId::new(N - 2)]);
        assert_eq!(graph.run_order(&all, &[]), all);
        assert_eq!(graph.descendants(&all[..1]), all);
        assert_eq!(graph.ancestors(&all[N - 1..]), all);
        assert_eq!(graph.topo_rank(CellId::new(N - 1)), N - 1);
    }

    #[test]
    fn long_chain_behind_a_cycle() {
        const N: usize = 100_000;
        // Cells 0 and 1 read each other; every later cell reads the one before.
        let defs: Vec<[String; 1]> = (0..N).map(|i| [format!("v{i}")]).collect();
        let refs: Vec<[String; 1]> = (0..N)
            .map(|i| [format!("v{}", if i == 0 { 1 } else { i - 1 })])
            .collect();
        let cells: Vec<(&[String], &[String])> = defs
            .iter()
            .zip(&refs)
            .map(|(d, r)| (&d[..], &r[..]))
            .collect();
        let graph = DataflowGraph::build(&cells);
        assert_eq!(
            graph.static_errors(),
            [
                (CellId::new(0), cycle(&[0, 1])),
                (CellId::new(1), cycle(&[0, 1]))
            ]
        );
        let all: Vec<CellId> = (0..N).map(CellId::new).collect();
        assert_eq!(graph.run_order(&all, &all[..2]), all);
        assert_eq!(graph.topo_rank(CellId::new(2)), 0);
        assert_eq!(graph.topo_rank(CellId::new(0)), N - 2);
        assert_eq!(graph.descendants(&all[1..2]), all);
    }

    #[test]
    fn wide_fan_out_and_fan_in() {
        const N: usize = 100_000;
        // Cell 0 defines `x`; cells 1..N-1 read it and define their own
        // name; the last cell reads every name.
        let defs: Vec<Vec<String>> = (0..N)
            .map(|i| match i {
                0 => vec!["x".to_owned()],
                i if i == N - 1 => Vec::new(),
                i => vec![format!("v{i}")],
            })
            .collect();
        let refs: Vec<Vec<String>> = (0..N)
            .map(|i| match i {
                0 => Vec::new(),
                i if i == N - 1 => (1..N - 1).map(|j| format!("v{j}")).collect(),
                _ => vec!["x".to_owned()],
            })
            .collect();
        let cells: Vec<(&[String], &[String])> = defs
            .iter()
            .zip(&refs)
            .map(|(d, r)| (d.as_slice(), r.as_slice()))
            .collect();
        let graph = DataflowGraph::build(&cells);
        let all: Vec<CellId> = (0..N).map(CellId::new).collect();
        assert_eq!(graph.children(CellId::new(0)), &all[1..N - 1]);
        assert_eq!(graph.parents(CellId::new(N - 1)), &all[1..N - 1]);
        assert_eq!(graph.run_order(&all, &[]), all);
        assert_eq!(graph.descendants(&all[..1]), all);
        assert_eq!(graph.ancestors(&all[N - 1..]), all);
    }

    proptest! {
        #[test]
        fn run_order_is_the_min_heap_topological_order(dag in random_dag(40)) {
            let graph = dag.build();
            for cell in dag.all() {
                prop_assert_eq!(graph.parents(cell), dag.parents(cell));
            }
            prop_assert!(graph.static_errors().is_empty());
            let all = dag.all();
            let order = graph.run_order(&all, &[]);
            let mut position = vec![0; dag.n];
            for (k, cell) in order.iter().enumerate() {
                position[cell.index()] = k;
                prop_assert_eq!(graph.topo_rank(*cell), k);
            }
            for &(parent, child) in &dag.edges {
                prop_assert!(position[parent.index()] < position[child.index()]);
            }
            prop_assert_eq!(order, dag.reference_order(&all));
        }

        #[test]
        fn run_order_of_subsets(
            dag in random_dag(40),
            member_mask in proptest::collection::vec(any::<bool>(), 40),
            errored_mask in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let graph = dag.build();
            let members: Vec<CellId> = dag.all().into_iter().filter(|c| member_mask[c.index()]).collect();
            let errored: Vec<CellId> = dag.all().into_iter().filter(|c| errored_mask[c.index()]).collect();
            let mut expected: Vec<CellId> = members.iter().copied().filter(|c| errored.contains(c)).collect();
            let healthy: Vec<CellId> = members.iter().copied().filter(|c| !errored.contains(c)).collect();
            expected.extend(dag.reference_order(&healthy));
            let mut shuffled = members.clone();
            shuffled.reverse();
            prop_assert_eq!(graph.run_order(&shuffled, &errored), expected);
        }
    }
}
