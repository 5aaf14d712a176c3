//! [`Host`]: what the runner offers a plugin during one call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{ROption, RSlice, RStr, RString};

use super::{Outcome, PluginError};
use crate::{
    FfiHost2Mut, FfiHostMut, FfiLogLevel, FfiOwnedRef, FfiStep, FfiStopReason, FfiValue,
    FfiValueKind,
};

/// Why the cell must stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The user interrupted the run (Ctrl-C, SIGTERM).
    Interrupted,
    /// The cell ran past its time limit.
    Timeout,
    /// The run went over its memory limit.
    Memory,
}

impl StopReason {
    fn from_ffi(reason: FfiStopReason) -> Option<StopReason> {
        match reason {
            FfiStopReason::NONE => None,
            FfiStopReason::TIMEOUT => Some(StopReason::Timeout),
            FfiStopReason::MEMORY => Some(StopReason::Memory),
            _ => Some(StopReason::Interrupted),
        }
    }
}

/// Why the cell must stop, from any thread: see [`Host::stop_signal`].
///
/// It borrows the host, so it cannot outlive the call that received it.
#[derive(Clone, Copy)]
pub struct StopSignal<'h> {
    /// The `Host` this signal borrows, its lifetime erased.
    host: *const (),
    call: std::marker::PhantomData<&'h ()>,
}

// SAFETY: a `StopSignal` only calls the host's `stop_reason` (or
// `is_cancelled`), which every cellrun host answers from any thread by
// reading an atomic flag (see `Host::stop_signal`).
unsafe impl Send for StopSignal<'_> {}
// SAFETY: as for `Send`; the method takes `&self` and reads only.
unsafe impl Sync for StopSignal<'_> {}

impl StopSignal<'_> {
    /// Why the cell must stop, or `None` while it may run.
    pub fn reason(&self) -> Option<StopReason> {
        // SAFETY: `host` points at the `Host` this signal borrows, alive for
        // the signal's lifetime.
        unsafe { read_stop(self.host) }
    }
}

/// Reads the stop reason of the `Host` behind `host`.
///
/// # Safety
/// `host` points at a live `Host`.
unsafe fn read_stop(host: *const ()) -> Option<StopReason> {
    // SAFETY: the caller passes a live `Host`.
    unsafe { &*host.cast::<Host<'_>>() }.stop_reason()
}

enum Inner<'a> {
    Current(FfiHost2Mut<'a>),
    Legacy(FfiHostMut<'a>),
}

/// The host during one call: globals, the built-in evaluation, the stop
/// reason and logging. Valid for that call only.
///
/// A 1.2 host offers everything here. When a 1.2 plugin is loaded by an
/// older cellrun (1.0 or 1.1), the calls that need 1.2 return an error or
/// nothing, as each says.
pub struct Host<'a> {
    inner: Inner<'a>,
}

impl<'a> Host<'a> {
    /// Wraps the 1.2 host object of a call.
    pub fn new(inner: FfiHost2Mut<'a>) -> Host<'a> {
        Host {
            inner: Inner::Current(inner),
        }
    }

    /// Wraps the host object an older cellrun passes.
    pub fn legacy(inner: FfiHostMut<'a>) -> Host<'a> {
        Host {
            inner: Inner::Legacy(inner),
        }
    }

    /// A copy of the value of a visible global.
    ///
    /// For large values prefer [`Host::view`], which copies nothing.
    pub fn get(&self, name: &str) -> Option<FfiValue> {
        let name = RStr::from_str(name);
        match &self.inner {
            Inner::Current(host) => host.get(name).into_option(),
            Inner::Legacy(host) => host.get(name).into_option(),
        }
    }

    /// Defines a global.
    pub fn set(&mut self, name: &str, value: FfiValue) {
        let name = RStr::from_str(name);
        match &mut self.inner {
            Inner::Current(host) => host.set(name, value),
            Inner::Legacy(host) => {
                host.set(name, value);
            }
        }
    }

    /// Removes a global; whether it was defined.
    pub fn remove(&mut self, name: &str) -> bool {
        let name = RStr::from_str(name);
        match &mut self.inner {
            Inner::Current(host) => host.remove(name),
            Inner::Legacy(host) => host.remove(name).is_some(),
        }
    }

    /// The visible global names, in no particular order.
    pub fn names(&self) -> Vec<String> {
        let names = match &self.inner {
            Inner::Current(host) => host.names(),
            Inner::Legacy(host) => host.names(),
        };
        names.into_iter().map(RString::into_string).collect()
    }

    /// A zero-copy view of global `name`, if it is defined.
    ///
    /// Reading through a view copies only what is read: the length of a
    /// million-element array costs what the length of a small one costs.
    /// On an older host the view is of a copy.
    pub fn view(&self, name: &str) -> Option<View<'_, 'a>> {
        let view = View {
            host: self,
            name: name.to_owned(),
            path: Vec::new(),
        };
        (view.kind() != FfiValueKind::MISSING).then_some(view)
    }

    /// The wire form of global `name` (JSON text, see [`super::wire`]).
    ///
    /// # Errors
    /// When the value has no wire form (the message names it), or on an older host.
    pub fn get_wire(&self, name: &str) -> Result<Option<String>, PluginError> {
        match &self.inner {
            Inner::Current(host) => host
                .get_wire(RStr::from_str(name))
                .into_result()
                .map(|wire| wire.into_option().map(RString::into_string))
                .map_err(|error| PluginError::new(error.message)),
            Inner::Legacy(_) => Err(needs_1_2("get_wire")),
        }
    }

    /// Defines global `name` from its wire form.
    ///
    /// # Errors
    /// When `wire` is not a valid wire form, or on an older host.
    pub fn set_wire(&mut self, name: &str, wire: &str) -> Result<(), PluginError> {
        match &mut self.inner {
            Inner::Current(host) => host
                .set_wire(RStr::from_str(name), RStr::from_str(wire))
                .into_result()
                .map_err(|error| PluginError::new(error.message)),
            Inner::Legacy(_) => Err(needs_1_2("set_wire")),
        }
    }

    /// The id of global `name` when it is a value this plugin owns.
    pub fn get_owned(&self, name: &str) -> Option<u64> {
        match &self.inner {
            Inner::Current(host) => host
                .get_owned(RStr::from_str(name))
                .into_option()
                .map(|owned| owned.id),
            Inner::Legacy(_) => None,
        }
    }

    /// Defines global `name` as the value this plugin owns under `id`
    /// (see [`super::OwnedValues`]).
    ///
    /// # Errors
    /// On an older host, which cannot hold plugin-owned values.
    pub fn set_owned(&mut self, name: &str, id: u64, type_name: &str) -> Result<(), PluginError> {
        match &mut self.inner {
            Inner::Current(host) => {
                host.set_owned(
                    RStr::from_str(name),
                    FfiOwnedRef {
                        id,
                        type_name: type_name.into(),
                    },
                );
                Ok(())
            }
            Inner::Legacy(_) => Err(needs_1_2("set_owned")),
        }
    }

    /// Why the cell must stop, or `None` while it may run.
    pub fn stop_reason(&self) -> Option<StopReason> {
        match &self.inner {
            Inner::Current(host) => StopReason::from_ffi(host.stop_reason()),
            Inner::Legacy(host) => host.is_cancelled().then_some(StopReason::Interrupted),
        }
    }

    /// Whether the cell was asked to stop; return promptly when it was.
    pub fn is_cancelled(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// The stop reason, readable from any thread for as long as this call
    /// lasts: a thread of the plugin's watches it while the calling thread
    /// is busy (in an embedded runtime's code, say) and cannot poll.
    ///
    /// Every cellrun host answers `stop_reason` (`is_cancelled` before 1.2)
    /// by reading an atomic flag, without locks and without touching the
    /// rest of the host, which is what makes this sound.
    pub fn stop_signal(&self) -> StopSignal<'_> {
        StopSignal {
            host: std::ptr::from_ref(self).cast(),
            call: std::marker::PhantomData,
        }
    }

    /// Runs the cell's body with the host's built-in evaluation.
    ///
    /// # Errors
    /// Outside an executor's `execute`. A failing body is not an error: it
    /// is an outcome whose error is set.
    pub fn run_default(&mut self) -> Result<Outcome, PluginError> {
        self.run_default_until(None)
    }

    /// Runs the cell's body with the built-in evaluation, stopping it at
    /// `deadline` (or at the cell's own deadline, whichever comes first):
    /// the outcome then has an error of kind `timeout`.
    ///
    /// # Errors
    /// As [`Host::run_default`]; on an older host a deadline is an error.
    pub fn run_default_until(
        &mut self,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, PluginError> {
        match &mut self.inner {
            Inner::Current(host) => host
                .run_default_until(deadline.map(unix_ms).into())
                .into_result()
                .map(Outcome::from_ffi)
                .map_err(|error| PluginError::new(error.message)),
            Inner::Legacy(host) => {
                if deadline.is_some() {
                    return Err(needs_1_2("run_default_until"));
                }
                host.run_default()
                    .into_result()
                    .map(Outcome::from_result)
                    .map_err(|error| PluginError::new(error.message))
            }
        }
    }

    /// Emits `message` at `level` through the runner's log.
    pub fn log(&self, level: FfiLogLevel, message: &str) {
        let message = RStr::from_str(message);
        match &self.inner {
            Inner::Current(host) => host.log(level, message),
            Inner::Legacy(host) => host.log(level, message),
        }
    }

    fn value_kind(&self, name: &str, path: &[FfiStep]) -> FfiValueKind {
        match &self.inner {
            Inner::Current(host) => host.value_kind(RStr::from_str(name), RSlice::from_slice(path)),
            Inner::Legacy(host) => {
                let value = host.get(RStr::from_str(name)).into_option();
                value
                    .as_ref()
                    .and_then(|value| walk(value, path))
                    .map_or(FfiValueKind::MISSING, kind_of)
            }
        }
    }

    fn value_len(&self, name: &str, path: &[FfiStep]) -> u64 {
        match &self.inner {
            Inner::Current(host) => host.value_len(RStr::from_str(name), RSlice::from_slice(path)),
            Inner::Legacy(_) => self.value_get(name, path).map_or(0, |value| len_of(&value)),
        }
    }

    fn value_keys(&self, name: &str, path: &[FfiStep]) -> Vec<String> {
        match &self.inner {
            Inner::Current(host) => host
                .value_keys(RStr::from_str(name), RSlice::from_slice(path))
                .into_iter()
                .map(RString::into_string)
                .collect(),
            Inner::Legacy(_) => match self.value_get(name, path) {
                Some(FfiValue::Map(entries)) => {
                    let mut keys: Vec<String> = entries
                        .iter()
                        .map(|entry| entry.key.as_str().to_owned())
                        .collect();
                    keys.sort();
                    keys
                }
                _ => Vec::new(),
            },
        }
    }

    fn value_get(&self, name: &str, path: &[FfiStep]) -> Option<FfiValue> {
        match &self.inner {
            Inner::Current(host) => host
                .value_get(RStr::from_str(name), RSlice::from_slice(path))
                .into_option(),
            Inner::Legacy(host) => {
                let value = host.get(RStr::from_str(name)).into_option()?;
                walk(&value, path).cloned()
            }
        }
    }
}

fn needs_1_2(call: &str) -> PluginError {
    PluginError::new(format!(
        "{call} needs cellrun's executor-abi 1.2 or later; this cellrun is older"
    ))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The value at `path` inside `value`.
pub(crate) fn walk<'v>(value: &'v FfiValue, path: &[FfiStep]) -> Option<&'v FfiValue> {
    let mut here = value;
    for step in path {
        here = match (here, step.key.as_ref().into_option()) {
            (FfiValue::Array(items), None) => items.get(usize::try_from(step.index).ok()?)?,
            (FfiValue::Map(entries), Some(key)) => {
                &entries.iter().find(|entry| entry.key == *key)?.value
            }
            _ => return None,
        };
    }
    Some(here)
}

/// The kind of `value`.
pub(crate) fn kind_of(value: &FfiValue) -> FfiValueKind {
    match value {
        FfiValue::Unit => FfiValueKind::UNIT,
        FfiValue::Bool(_) => FfiValueKind::BOOL,
        FfiValue::Int(_) => FfiValueKind::INT,
        FfiValue::Float(_) => FfiValueKind::FLOAT,
        FfiValue::Str(_) => FfiValueKind::STR,
        FfiValue::Array(_) => FfiValueKind::ARRAY,
        FfiValue::Map(_) => FfiValueKind::MAP,
        FfiValue::Bytes(_) => FfiValueKind::BLOB,
        FfiValue::Handle(_) => FfiValueKind::OTHER,
    }
}

/// The length of a container, string (in bytes) or blob; 0 otherwise.
pub(crate) fn len_of(value: &FfiValue) -> u64 {
    match value {
        FfiValue::Str(text) => text.len() as u64,
        FfiValue::Array(items) => items.len() as u64,
        FfiValue::Map(entries) => entries.len() as u64,
        FfiValue::Bytes(bytes) => bytes.len() as u64,
        _ => 0,
    }
}

/// A place inside a global: read it without copying the rest.
///
/// Each read walks from the global to this place, so it costs the depth of
/// the path, never the size of the value.
pub struct View<'h, 'a> {
    host: &'h Host<'a>,
    name: String,
    path: Vec<FfiStep>,
}

impl<'h, 'a> View<'h, 'a> {
    /// The kind of the value here.
    pub fn kind(&self) -> FfiValueKind {
        self.host.value_kind(&self.name, &self.path)
    }

    /// The length of the array, map, string (bytes) or blob here; 0 otherwise.
    pub fn len(&self) -> u64 {
        self.host.value_len(&self.name, &self.path)
    }

    /// Whether [`View::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of the map here, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.host.value_keys(&self.name, &self.path)
    }

    /// The item at `index` of the array here.
    pub fn index(&self, index: u64) -> View<'h, 'a> {
        self.step(FfiStep {
            index,
            key: ROption::RNone,
        })
    }

    /// The value under `key` of the map here.
    pub fn key(&self, key: &str) -> View<'h, 'a> {
        self.step(FfiStep {
            index: 0,
            key: ROption::RSome(key.into()),
        })
    }

    /// A copy of the value here (of this part only).
    pub fn get(&self) -> Option<FfiValue> {
        self.host.value_get(&self.name, &self.path)
    }

    /// The integer here, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.get()? {
            FfiValue::Int(value) => Some(value),
            _ => None,
        }
    }

    /// The float here, if it is one.
    pub fn as_float(&self) -> Option<f64> {
        match self.get()? {
            FfiValue::Float(value) => Some(value),
            _ => None,
        }
    }

    fn step(&self, step: FfiStep) -> View<'h, 'a> {
        let mut path = self.path.clone();
        path.push(step);
        View {
            host: self.host,
            name: self.name.clone(),
            path,
        }
    }
}
