//! Conversions between the core types and their FFI mirrors: the one place
//! that knows both.

use abi_stable::std_types::{ROption, RString, RVec};
use executor_core::{Cell, CellError, CellId, ErrorKind, RunResult, Setup};
use rhai::Dynamic;

use executor_abi::{
    FfiCell, FfiCellError, FfiEntry, FfiErrorKind, FfiRunResult, FfiSetup, FfiValue,
};

/// Host-side values with no FFI form, handed to a plugin as
/// [`FfiValue::Handle`] ids.
///
/// One table lives for one call into a plugin; its ids mean nothing after.
#[derive(Debug, Default)]
pub struct HandleTable {
    values: Vec<Dynamic>,
}

impl HandleTable {
    /// An empty table.
    pub fn new() -> HandleTable {
        HandleTable::default()
    }

    /// The FFI form of `value`; values with none are kept here as a handle.
    ///
    /// Containers are copied deeply (their shared cells are read, not moved).
    pub fn to_ffi(&mut self, value: &Dynamic) -> FfiValue {
        if value.is_unit() {
            return FfiValue::Unit;
        }
        if let Ok(flag) = value.as_bool() {
            return FfiValue::Bool(flag);
        }
        if let Ok(int) = value.as_int() {
            return FfiValue::Int(int);
        }
        if let Ok(float) = value.as_float() {
            return FfiValue::Float(float);
        }
        if value.is_string() {
            if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
                return FfiValue::Str(RString::from(text.as_str()));
            }
        }
        if value.is_array() {
            if let Some(array) = value.read_lock::<rhai::Array>() {
                return FfiValue::Array(array.iter().map(|item| self.to_ffi(item)).collect());
            }
        }
        if value.is_map() {
            if let Some(map) = value.read_lock::<rhai::Map>() {
                return FfiValue::Map(
                    map.iter()
                        .map(|(key, item)| FfiEntry {
                            key: RString::from(key.as_str()),
                            value: self.to_ffi(item),
                        })
                        .collect(),
                );
            }
        }
        if value.is_blob() {
            if let Some(blob) = value.read_lock::<rhai::Blob>() {
                return FfiValue::Bytes(RVec::from(blob.as_slice()));
            }
        }
        let id = self.values.len() as u64;
        self.values.push(value.clone());
        FfiValue::Handle(id)
    }

    /// The Rhai value of `value`; an unknown handle becomes unit.
    pub fn to_dynamic(&self, value: &FfiValue) -> Dynamic {
        match value {
            FfiValue::Unit => Dynamic::UNIT,
            FfiValue::Bool(flag) => Dynamic::from_bool(*flag),
            FfiValue::Int(int) => Dynamic::from_int(*int),
            FfiValue::Float(float) => Dynamic::from_float(*float),
            FfiValue::Str(text) => Dynamic::from(text.as_str().to_owned()),
            FfiValue::Array(items) => {
                Dynamic::from_array(items.iter().map(|item| self.to_dynamic(item)).collect())
            }
            FfiValue::Map(entries) => Dynamic::from_map(
                entries
                    .iter()
                    .map(|entry| (entry.key.as_str().into(), self.to_dynamic(&entry.value)))
                    .collect(),
            ),
            FfiValue::Bytes(bytes) => Dynamic::from_blob(bytes.to_vec()),
            FfiValue::Handle(id) => usize::try_from(*id)
                .ok()
                .and_then(|index| self.values.get(index))
                .cloned()
                .unwrap_or(Dynamic::UNIT),
        }
    }

    /// The FFI form of `result`.
    pub fn result_to_ffi(&mut self, result: &RunResult) -> FfiRunResult {
        FfiRunResult {
            output: self.to_ffi(&result.output),
            stdout: RString::from(result.stdout.as_str()),
            error: result.error.as_ref().map(ffi_error).into(),
            cached: result.cached,
        }
    }

    /// The core form of `result`.
    pub fn result_from_ffi(&self, result: &FfiRunResult) -> RunResult {
        RunResult {
            output: self.to_dynamic(&result.output),
            stdout: result.stdout.as_str().to_owned(),
            error: result.error.as_ref().map(core_error).into_option(),
            cached: result.cached,
            display: None,
        }
    }

    /// The core form of a lifecycle's setup.
    pub fn setup_from_ffi(&self, setup: &FfiSetup) -> Setup {
        match setup {
            FfiSetup::Continue => Setup::Continue,
            FfiSetup::Skip(result) => Setup::Skip(self.result_from_ffi(result)),
        }
    }
}

/// The 1.0 FFI form of `cell`.
pub fn ffi_cell(cell: &Cell) -> FfiCell {
    {
        let strings = |names: &[String]| {
            names
                .iter()
                .map(|name| RString::from(name.as_str()))
                .collect()
        };
        FfiCell {
            id: cell.id().index() as u32,
            name: RString::from(cell.name()),
            code: RString::from(cell.code()),
            defs: strings(cell.defs()),
            refs: strings(cell.refs()),
            first_line: cell.first_line(),
        }
    }
}

/// The FFI form of `kind`.
pub(crate) fn ffi_kind(kind: ErrorKind) -> FfiErrorKind {
    {
        match kind {
            ErrorKind::Syntax => FfiErrorKind::SYNTAX,
            ErrorKind::Runtime => FfiErrorKind::RUNTIME,
            ErrorKind::Cycle => FfiErrorKind::CYCLE,
            ErrorKind::MultipleDefinitions => FfiErrorKind::MULTIPLE_DEFINITIONS,
            ErrorKind::Timeout => FfiErrorKind::TIMEOUT,
            ErrorKind::Interrupted => FfiErrorKind::INTERRUPTED,
            ErrorKind::Cancelled => FfiErrorKind::CANCELLED,
            ErrorKind::Strict => FfiErrorKind::STRICT,
            ErrorKind::Internal => FfiErrorKind::INTERNAL,
            _ => FfiErrorKind::PLUGIN,
        }
    }
}

/// The core form of `kind`; an unknown kind is `plugin`.
pub(crate) fn core_kind(kind: FfiErrorKind) -> ErrorKind {
    {
        match kind {
            FfiErrorKind::SYNTAX => ErrorKind::Syntax,
            FfiErrorKind::RUNTIME => ErrorKind::Runtime,
            FfiErrorKind::CYCLE => ErrorKind::Cycle,
            FfiErrorKind::MULTIPLE_DEFINITIONS => ErrorKind::MultipleDefinitions,
            FfiErrorKind::TIMEOUT => ErrorKind::Timeout,
            FfiErrorKind::INTERRUPTED => ErrorKind::Interrupted,
            FfiErrorKind::CANCELLED => ErrorKind::Cancelled,
            FfiErrorKind::STRICT => ErrorKind::Strict,
            FfiErrorKind::INTERNAL => ErrorKind::Internal,
            _ => ErrorKind::Plugin,
        }
    }
}

/// The FFI form of `error`.
pub fn ffi_error(error: &CellError) -> FfiCellError {
    {
        FfiCellError {
            kind: ffi_kind(error.kind),
            message: RString::from(error.message.as_str()),
            line: error.line.into(),
            column: error.column.into(),
            blamed: error.blamed.map(|id| id.index() as u32).into(),
            missing_name: error.missing_name.as_deref().map(RString::from).into(),
        }
    }
}

/// The core form of `error`.
pub fn core_error(error: &FfiCellError) -> CellError {
    {
        let mut core = CellError::new(core_kind(error.kind), error.message.as_str())
            .at(error.line.into_option(), error.column.into_option());
        if let ROption::RSome(index) = error.blamed {
            core = core.blaming(CellId::new(index as usize));
        }
        core.missing_name = error
            .missing_name
            .as_ref()
            .map(|name| name.as_str().to_owned())
            .into_option();
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn round_trip(value: Dynamic) -> Dynamic {
        let mut table = HandleTable::new();
        let ffi = table.to_ffi(&value);
        table.to_dynamic(&ffi)
    }

    #[test]
    fn scalars_strings_and_containers_round_trip() {
        assert!(round_trip(Dynamic::UNIT).is_unit());
        assert_eq!(round_trip(Dynamic::from_bool(true)).as_bool(), Ok(true));
        assert_eq!(round_trip(Dynamic::from_int(-7)).as_int(), Ok(-7));
        assert_eq!(round_trip(Dynamic::from_float(1.5)).as_float(), Ok(1.5));
        assert_eq!(
            round_trip(Dynamic::from("hé".to_owned()))
                .into_string()
                .unwrap(),
            "hé"
        );
        let mut map = rhai::Map::new();
        map.insert("k".into(), Dynamic::from_array(vec![Dynamic::from_int(1)]));
        let back = round_trip(Dynamic::from_map(map).into_shared());
        assert_eq!(back.to_string(), r#"#{"k": [1]}"#);
        let blob = round_trip(Dynamic::from_blob(vec![1, 2, 3]));
        assert_eq!(blob.into_blob().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn values_without_ffi_form_round_trip_through_a_handle() {
        let mut table = HandleTable::new();
        let pointer = Dynamic::from(rhai::FnPtr::new("f").unwrap());
        let ffi = table.to_ffi(&pointer);
        assert_eq!(ffi, FfiValue::Handle(0));
        let back = table.to_dynamic(&FfiValue::Array(RVec::from(vec![ffi])));
        let inner = back.into_array().unwrap();
        assert!(inner[0].is::<rhai::FnPtr>());
        assert!(
            table.to_dynamic(&FfiValue::Handle(9)).is_unit(),
            "unknown handles are unit"
        );
    }

    #[test]
    fn cell_errors_round_trip() {
        let mut error = CellError::new(ErrorKind::Runtime, "boom")
            .at(Some(3), Some(4))
            .blaming(CellId::new(2));
        error.missing_name = Some("x".to_owned());
        assert_eq!(core_error(&ffi_error(&error)), error);
        let unknown = FfiCellError {
            kind: FfiErrorKind(200),
            ..ffi_error(&error)
        };
        assert_eq!(core_error(&unknown).kind, ErrorKind::Plugin);
    }
}
