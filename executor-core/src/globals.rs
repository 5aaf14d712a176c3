//! The notebook's global names and their values.

use std::collections::HashMap;

use rhai::Dynamic;

/// Every public name the cells of a notebook have defined, with its value.
///
/// Containers (arrays, maps, blobs) are stored shared, so handing a value to
/// a cell clones a pointer, not the data: reading a million-element array in
/// a hundred cells costs what one read costs. A cell that mutates such a value
/// in place mutates the global, as in Python; isolating cells from each other
/// is the job of a strict lifecycle, which deep-copies.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    values: HashMap<String, Dynamic>,
}

impl Globals {
    /// An empty set of globals.
    pub fn new() -> Globals {
        Globals::default()
    }

    /// The value of `name`, if a cell defined it.
    pub fn get(&self, name: &str) -> Option<&Dynamic> {
        self.values.get(name)
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Defines `name` as `value`, replacing any previous value, and returns the previous one.
    pub fn set(&mut self, name: impl Into<String>, value: Dynamic) -> Option<Dynamic> {
        self.values.insert(name.into(), share_containers(value))
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Dynamic> {
        self.values.remove(name)
    }

    /// The defined names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The defined names and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Dynamic)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// How many names are defined.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no name is defined.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
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
}
