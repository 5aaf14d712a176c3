//! Reading into a global along a path without copying the rest: the host's
//! side of the SDK's zero-copy views.

use executor_abi::{FfiStep, FfiValueKind};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

/// Runs `read` on the value at `path` inside `value`, looking through
/// shared cells; `None` when the path leads nowhere.
pub(crate) fn at_path<T>(
    value: &Dynamic,
    path: &[FfiStep],
    read: &mut dyn FnMut(&Dynamic) -> T,
) -> Option<T> {
    let Some((step, rest)) = path.split_first() else {
        return if value.is_shared() {
            let inner = value.read_lock::<Dynamic>()?;
            Some(read(&inner))
        } else {
            Some(read(value))
        };
    };
    match step.key.as_ref().into_option() {
        None => {
            let array = value.read_lock::<Array>()?;
            let item = array.get(usize::try_from(step.index).ok()?)?;
            at_path(item, rest, read)
        }
        Some(key) => {
            let map = value.read_lock::<Map>()?;
            let item = map.get(key.as_str())?;
            at_path(item, rest, read)
        }
    }
}

/// The kind of `value` as the SDK's views report it.
pub(crate) fn kind(value: &Dynamic) -> FfiValueKind {
    if value.is_unit() {
        FfiValueKind::UNIT
    } else if value.is_bool() {
        FfiValueKind::BOOL
    } else if value.is_int() {
        FfiValueKind::INT
    } else if value.is_float() {
        FfiValueKind::FLOAT
    } else if value.is_string() {
        FfiValueKind::STR
    } else if value.is_array() {
        FfiValueKind::ARRAY
    } else if value.is_map() {
        FfiValueKind::MAP
    } else if value.is_blob() {
        FfiValueKind::BLOB
    } else if value.is::<executor_core::ForeignValue>() {
        FfiValueKind::OWNED
    } else {
        FfiValueKind::OTHER
    }
}

/// The length of an array, map, string (bytes) or blob; 0 otherwise.
pub(crate) fn len(value: &Dynamic) -> u64 {
    if let Some(array) = value.read_lock::<Array>() {
        array.len() as u64
    } else if let Some(map) = value.read_lock::<Map>() {
        map.len() as u64
    } else if let Some(text) = value.read_lock::<ImmutableString>() {
        text.len() as u64
    } else if let Some(blob) = value.read_lock::<Blob>() {
        blob.len() as u64
    } else {
        0
    }
}

/// The keys of a map, sorted.
pub(crate) fn keys(value: &Dynamic) -> Vec<String> {
    let mut keys: Vec<String> = value
        .read_lock::<Map>()
        .map(|map| map.keys().map(|key| key.to_string()).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::ROption;

    use super::*;

    fn index(index: u64) -> FfiStep {
        FfiStep {
            index,
            key: ROption::RNone,
        }
    }

    #[test]
    fn paths_reach_through_shared_containers_without_copying() {
        let mut map = Map::new();
        map.insert(
            "xs".into(),
            Dynamic::from_array(vec![Dynamic::from_int(7)]).into_shared(),
        );
        let value = Dynamic::from_map(map).into_shared();
        let path = [
            FfiStep {
                index: 0,
                key: ROption::RSome("xs".into()),
            },
            index(0),
        ];
        assert_eq!(
            at_path(&value, &path, &mut |item| item.as_int()),
            Some(Ok(7))
        );
        assert_eq!(at_path(&value, &path[..1], &mut |item| len(item)), Some(1));
        assert_eq!(
            at_path(&value, &[], &mut |item| keys(item)),
            Some(vec!["xs".to_owned()])
        );
        assert_eq!(at_path(&value, &[index(3)], &mut |item| kind(item)), None);
    }
}
