//! The notebook's global names and their values.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::CellNames;

use foldhash::fast::RandomState;
use rhai::Dynamic;

/// Every public name the cells of a notebook have defined, with its value.
///
/// Containers (arrays, maps, blobs) are stored shared, so handing a value to
/// a cell clones a pointer, not the data: reading a million-element array in
/// a hundred cells costs what one read costs. A cell that mutates such a value
/// in place mutates the global, as in Python; isolating cells from each other
/// is the job of a strict lifecycle, which deep-copies.
///
/// # Restriction
/// [`Globals::restrict`] narrows what readers see to a set of names, so a
/// lifecycle can limit a cell's body to the names it declared it reads,
/// whichever executor runs it. While restricted, [`get`](Globals::get),
/// [`contains`](Globals::contains), [`names`](Globals::names),
/// [`iter`](Globals::iter), [`len`](Globals::len) and
/// [`is_empty`](Globals::is_empty) see only the visible names plus the names
/// [`set`](Globals::set) since the restriction began; `set` and
/// [`remove`](Globals::remove) work as usual. Each of these costs what it
/// costs on a set of globals as large as the visible set, never a walk over
/// every global.
///
/// # Scope
/// [`Globals::scope_to`] narrows what readers see in the same way, for the
/// runner: a cell evaluated against the run's globals while other cells run
/// sees only the names it may read ([`Cell::scope_names`]). A scope is
/// taken as given (the cell's shared names, so it costs no allocation) and
/// a restriction nests inside it: a name is visible when both allow it.
///
/// [`Cell::scope_names`]: crate::Cell::scope_names
#[derive(Clone, Debug, Default)]
pub struct Globals {
    values: HashMap<String, Dynamic, RandomState>,
    visible: Option<HashSet<String, RandomState>>,
    scope: Option<Scope>,
}

/// The names a scope shows: a cell's, and the names set since.
#[derive(Clone, Debug)]
struct Scope {
    names: Arc<CellNames>,
    set: Vec<String>,
}

impl Scope {
    fn shows(&self, name: &str) -> bool {
        self.names.contains(name) || self.set.iter().any(|set| set == name)
    }
}

impl Globals {
    /// An empty set of globals.
    pub fn new() -> Globals {
        Globals::default()
    }

    /// An empty set of globals with room for `capacity` names.
    pub fn with_capacity(capacity: usize) -> Globals {
        Globals {
            values: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            visible: None,
            scope: None,
        }
    }

    /// The value of `name`, if a cell defined it and it is visible.
    pub fn get(&self, name: &str) -> Option<&Dynamic> {
        if self.is_hidden(name) {
            return None;
        }
        self.values.get(name)
    }

    /// Whether `name` is defined and visible.
    pub fn contains(&self, name: &str) -> bool {
        !self.is_hidden(name) && self.values.contains_key(name)
    }

    /// Defines `name` as `value`, replacing any previous value, and returns the previous one.
    ///
    /// While restricted, `name` becomes visible, and the previous value is
    /// returned even if it was hidden.
    pub fn set(&mut self, name: impl Into<String>, value: Dynamic) -> Option<Dynamic> {
        let name = name.into();
        if let Some(visible) = &mut self.visible {
            if !visible.contains(&name) {
                visible.insert(name.clone());
            }
        }
        if let Some(scope) = &mut self.scope {
            if !scope.shows(&name) {
                scope.set.push(name.clone());
            }
        }
        self.values.insert(name, share_containers(value))
    }

    /// Removes `name`, returning its value, even if it is hidden.
    pub fn remove(&mut self, name: &str) -> Option<Dynamic> {
        self.values.remove(name)
    }

    /// Removes `name`, returning it with its value, even if it is hidden.
    pub fn remove_entry(&mut self, name: &str) -> Option<(String, Dynamic)> {
        self.values.remove_entry(name)
    }

    /// The defined visible names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(name, _)| name)
    }

    /// The defined visible names and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Dynamic)> {
        let all = (self.visible.is_none() && self.scope.is_none())
            .then(|| self.values.iter())
            .into_iter()
            .flatten();
        // Under a scope, its names (a restriction inside it filters them);
        // else the restriction's.
        let scoped = self.scope.iter().flat_map(|scope| {
            scope
                .names
                .iter()
                .chain(&scope.set)
                .filter(|name| !self.is_restricted_away(name))
                .filter_map(|name| self.values.get_key_value(name.as_str()))
        });
        let visible = self
            .scope
            .is_none()
            .then_some(self.visible.iter().flatten())
            .into_iter()
            .flatten()
            .filter_map(|name| self.values.get_key_value(name));
        all.chain(scoped)
            .chain(visible)
            .map(|(name, value)| (name.as_str(), value))
    }

    /// How many visible names are defined.
    pub fn len(&self) -> usize {
        match (&self.visible, &self.scope) {
            (None, None) => self.values.len(),
            _ => self.iter().count(),
        }
    }

    /// Whether no visible name is defined.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Hides every name but `visible` from readers until [`Globals::unrestrict`].
    ///
    /// Names set while restricted become visible too. A new restriction
    /// replaces the current one; restrictions do not nest. Costs O(visible).
    pub fn restrict(&mut self, visible: impl IntoIterator<Item = String>) {
        self.visible = Some(visible.into_iter().collect());
    }

    /// Ends the restriction, if any: every name is visible again, or every
    /// name of the scope when one is in force.
    pub fn unrestrict(&mut self) {
        self.visible = None;
    }

    /// Whether a restriction is in force.
    pub fn is_restricted(&self) -> bool {
        self.visible.is_some()
    }

    /// Shows readers only `names` and the names set from now on, until
    /// [`Globals::unscope`]; a restriction may nest inside. A new scope
    /// replaces the current one. Costs nothing but the pointer: the names
    /// are shared.
    pub fn scope_to(&mut self, names: Arc<CellNames>) {
        self.scope = Some(Scope {
            names,
            set: Vec::new(),
        });
    }

    /// Ends the scope, if any.
    pub fn unscope(&mut self) {
        self.scope = None;
    }

    /// Whether a scope or a restriction hides `name`.
    fn is_hidden(&self, name: &str) -> bool {
        self.scope.as_ref().is_some_and(|scope| !scope.shows(name)) || self.is_restricted_away(name)
    }

    /// Whether a restriction hides `name`.
    fn is_restricted_away(&self, name: &str) -> bool {
        self.visible
            .as_ref()
            .is_some_and(|visible| !visible.contains(name))
    }
}

/// Wraps containers in a shared cell so later clones are O(1).
///
/// Scalars and strings are already cheap to clone and stay as they are.
fn share_containers(value: Dynamic) -> Dynamic {
    if value.is_shared() || !(value.is_array() || value.is_map() || value.is_blob()) {
        value
    } else {
        value.into_shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_shared_so_reads_do_not_copy() {
        let mut globals = Globals::new();
        let array: rhai::Array = (0..10).map(Dynamic::from).collect();
        globals.set("xs", Dynamic::from_array(array));
        globals.set("n", Dynamic::from(3_i64));
        assert!(globals.get("xs").unwrap().is_shared());
        assert!(!globals.get("n").unwrap().is_shared());
        let mut copy = globals.get("xs").unwrap().clone();
        copy.write_lock::<rhai::Array>()
            .unwrap()
            .push(Dynamic::from(10_i64));
        let len = globals
            .get("xs")
            .unwrap()
            .read_lock::<rhai::Array>()
            .unwrap()
            .len();
        assert_eq!(len, 11, "a clone of a shared value is the same value");
    }

    /// Globals holding `names` (each bound to its index), restricted to `visible`.
    fn restricted(names: &[&str], visible: &[&str]) -> Globals {
        let mut globals = Globals::new();
        for (index, name) in names.iter().enumerate() {
            globals.set(*name, Dynamic::from(index as i64));
        }
        globals.restrict(visible.iter().map(|name| (*name).to_owned()));
        globals
    }

    fn sorted_names(globals: &Globals) -> Vec<&str> {
        let mut names: Vec<&str> = globals.names().collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn restriction_hides_names_outside_the_visible_set() {
        let globals = restricted(&["a", "b", "c"], &["a", "c", "missing"]);
        assert!(globals.is_restricted());
        assert!(globals.get("b").is_none());
        assert!(!globals.contains("b"));
        assert!(!globals.contains("missing"));
        assert_eq!(globals.get("c").unwrap().as_int(), Ok(2));
        assert_eq!(sorted_names(&globals), ["a", "c"]);
        assert_eq!(globals.iter().count(), 2);
        assert_eq!(globals.len(), 2);
        assert!(!globals.is_empty());
    }

    #[test]
    fn names_set_while_restricted_become_visible() {
        let mut globals = restricted(&["a", "b"], &[]);
        assert!(globals.is_empty());
        let previous = globals.set("b", Dynamic::from(10_i64));
        assert_eq!(
            previous.unwrap().as_int(),
            Ok(1),
            "set returns the hidden previous value"
        );
        globals.set("new", Dynamic::from(11_i64));
        assert_eq!(sorted_names(&globals), ["b", "new"]);
        assert_eq!(
            globals.remove("a").unwrap().as_int(),
            Ok(0),
            "remove reaches hidden names"
        );
        globals.unrestrict();
        assert!(!globals.is_restricted());
        assert_eq!(sorted_names(&globals), ["b", "new"]);
    }

    #[test]
    fn unrestrict_shows_every_name_again() {
        let mut globals = restricted(&["a", "b", "c"], &["a"]);
        globals.unrestrict();
        assert_eq!(sorted_names(&globals), ["a", "b", "c"]);
        assert_eq!(globals.len(), 3);
        assert!(globals.get("b").is_some());
    }

    #[test]
    fn a_scope_shows_its_names_and_those_set_since_and_a_restriction_nests_inside() {
        let mut globals = Globals::new();
        for (index, name) in ["a", "b", "c", "d"].iter().enumerate() {
            globals.set(*name, Dynamic::from(index as i64));
        }
        let names = Arc::new(crate::cell::CellNames::for_test(&["a"], &["c", "missing"]));
        globals.scope_to(names);
        assert!(globals.get("b").is_none() && !globals.contains("d"));
        assert_eq!(globals.get("c").unwrap().as_int(), Ok(2));
        assert_eq!(sorted_names(&globals), ["a", "c"]);
        assert_eq!(globals.len(), 2);
        globals.set("new", Dynamic::from(9_i64));
        assert_eq!(sorted_names(&globals), ["a", "c", "new"]);
        globals.restrict(["c".to_owned(), "d".to_owned()]);
        assert_eq!(
            sorted_names(&globals),
            ["c"],
            "a name must be in the scope and in the restriction"
        );
        assert!(globals.get("d").is_none() && globals.get("a").is_none());
        globals.unrestrict();
        assert_eq!(sorted_names(&globals), ["a", "c", "new"]);
        globals.unscope();
        assert_eq!(sorted_names(&globals), ["a", "b", "c", "d", "new"]);
    }

    #[test]
    fn a_scope_over_many_names_shows_each_once() {
        let mut globals = Globals::new();
        let refs: Vec<String> = (0..30).map(|index| format!("n{index}")).collect();
        for name in refs.iter().chain(["hidden".to_owned()].iter()) {
            globals.set(name.as_str(), Dynamic::from(1_i64));
        }
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        // `n0` is read and defined: a cell rebinding what it reads.
        globals.scope_to(Arc::new(crate::cell::CellNames::for_test(&refs, &["n0"])));
        assert_eq!(globals.len(), 30);
        assert!(globals.contains("n29") && !globals.contains("hidden"));
        let mut small = Globals::new();
        small.set("a", Dynamic::from(1_i64));
        small.scope_to(Arc::new(crate::cell::CellNames::for_test(&["a"], &["a"])));
        assert_eq!(sorted_names(&small), ["a"]);
    }

    #[test]
    fn a_new_restriction_replaces_the_previous_one() {
        let mut globals = restricted(&["a", "b"], &["a"]);
        globals.restrict(["b".to_owned()]);
        assert_eq!(sorted_names(&globals), ["b"]);
    }
}
