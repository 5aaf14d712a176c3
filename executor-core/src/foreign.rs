//! Values that a plugin owns: opaque to the host, kept in the globals.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use rhai::Dynamic;

/// A value living outside Rhai (a Python object, a data frame in another
/// runtime, a remote handle), owned by the plugin that made it.
///
/// The host never looks inside: it stores the value in the [`Globals`]
/// like any other, hands it back to its owner on later reads, and asks the
/// value itself for what printing, `--strict` and `--cache` need. It stays
/// valid for the whole run, across cells.
///
/// # Overriding default impls
/// Only [`ForeignObject::type_name`], [`ForeignObject::owner`] and
/// [`ForeignObject::display`] are required. Without a JSON form the value's
/// display string stands in for it; without a deep copy `--strict` refuses
/// to hand the value to a cell that reads it; without a fingerprint or an
/// encoding `--cache` runs cells reading or making it live.
///
/// [`Globals`]: crate::Globals
pub trait ForeignObject: Send + Sync + 'static {
    /// The value's type, as its owner names it (`pandas.DataFrame`).
    fn type_name(&self) -> &str;

    /// The name of the plugin that owns the value.
    fn owner(&self) -> &str;

    /// A one-line human form of the value.
    fn display(&self) -> String;

    /// The value as JSON text, when it has a JSON form.
    fn to_json(&self) -> Option<String> {
        None
    }

    /// An independent copy, for `--strict`.
    fn deep_copy(&self) -> Option<ForeignValue> {
        None
    }

    /// Bytes that are equal exactly when the values are equal, for `--cache` keys.
    fn fingerprint(&self) -> Option<Vec<u8>> {
        None
    }

    /// A self-contained encoding its owner can decode, for `--cache` entries
    /// and remote execution.
    fn encode(&self) -> Option<Vec<u8>> {
        None
    }

    /// The object itself, so its owner can downcast it.
    fn as_any(&self) -> &dyn Any;
}

/// A shared handle to a [`ForeignObject`]; cloning it clones a pointer.
#[derive(Clone)]
pub struct ForeignValue(Arc<dyn ForeignObject>);

impl ForeignValue {
    /// Wraps `object`.
    pub fn new(object: impl ForeignObject) -> ForeignValue {
        ForeignValue(Arc::new(object))
    }

    /// Wraps an already shared object.
    pub fn from_arc(object: Arc<dyn ForeignObject>) -> ForeignValue {
        ForeignValue(object)
    }

    /// The object.
    pub fn object(&self) -> &dyn ForeignObject {
        &*self.0
    }

    /// The shared object.
    pub fn arc(&self) -> &Arc<dyn ForeignObject> {
        &self.0
    }

    /// The value as a Rhai value, to store in the globals or return as output.
    pub fn into_dynamic(self) -> Dynamic {
        Dynamic::from(self)
    }

    /// The foreign value inside `value`, if it holds one.
    pub fn from_dynamic(value: &Dynamic) -> Option<ForeignValue> {
        value.read_lock::<ForeignValue>().map(|value| value.clone())
    }
}

impl fmt::Debug for ForeignValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} {}>", self.0.type_name(), self.0.display())
    }
}

impl fmt::Display for ForeignValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Frame(u32);

    impl ForeignObject for Frame {
        fn type_name(&self) -> &str {
            "demo.Frame"
        }
        fn owner(&self) -> &str {
            "demo"
        }
        fn display(&self) -> String {
            format!("Frame({})", self.0)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn a_foreign_value_round_trips_through_a_rhai_value_without_copying() {
        let value = ForeignValue::new(Frame(7));
        let dynamic = value.clone().into_dynamic();
        let back = ForeignValue::from_dynamic(&dynamic).expect("a foreign value");
        assert!(Arc::ptr_eq(back.arc(), value.arc()));
        assert_eq!(back.object().as_any().downcast_ref::<Frame>().unwrap().0, 7);
        assert_eq!(back.to_string(), "Frame(7)");
        assert!(ForeignValue::from_dynamic(&Dynamic::from(1_i64)).is_none());
        assert!(
            value.object().deep_copy().is_none(),
            "no copy unless the owner gives one"
        );
    }
}
