//! [`CachedLifecycle`]: reuse a cell's result when its code and inputs did not change.
//!
//! # Keys
//! An entry's key is a BLAKE3 hash of the format version, the cell's code,
//! the code of every cell defining a function the cell reaches (through its
//! inputs, transitively), and each visible global (sorted by name) with its
//! canonical encoding, streamed into the hash. A changed upstream value or
//! function therefore changes the key of every cell downstream. Function
//! pointers among the inputs add the code of the cells defining their
//! functions (and what those reach). A cell whose code hides what it
//! reaches (an `import`, `Fn(...)` of a computed name, there or in a cell
//! defining a function it reaches) has no key: it always runs live.
//!
//! A value a plugin owns (a Python object) takes part in the key as its
//! owner's fingerprint, and is stored as its owner's encoding; the entry
//! is read back through the decoder given with
//! [`CachedLifecycle::with_foreign_decoder`], which asks the owner. A value
//! whose owner gives no fingerprint or no encoding is not storable.
//!
//! # Directory layout
//! An entry is the file `<key>.json` (the key as 64 lowercase hex digits):
//! a JSON object with the fields `format` (`"cellrun-cache-v2"`), `key`,
//! `output`, `stdout`, `display` (the output's rich form, `null` or
//! `{"mime":...,"data":...}`) and `defs` (the cell's definitions by name),
//! values in the encoding of the `value` module. Writers create a temporary file
//! `<key>.json.<pid>-<thread>-<counter>-<nanos>.tmp` in the same directory
//! and rename it over the entry, so a reader sees a whole entry or none,
//! whenever a writer is killed and however many runs share the directory.
//! Readers ignore temporary files; [`cache_clear`] removes them. Files of
//! other names are never touched.
//!
//! Entries are not synced to disk before the rename: after a power loss an
//! entry may be empty, and an unusable entry is only a miss that the next
//! run rewrites.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use executor_core::wire::ForeignDecoder;
use executor_core::{Cell, CellError, Display, Globals, Lifecycle, Notebook, RunResult, Setup};
use rhai::Dynamic;

use crate::value::{DecodeSeed, EncodeError, Encoder, Purpose};
use crate::visible::{visible_names, Pending};

/// The version of the key derivation and of the entry format.
///
/// Changing either means changing this, so old entries are never misread.
const FORMAT: &str = "cellrun-cache-v2";

/// Suffix of entry files.
const ENTRY_SUFFIX: &str = ".json";

/// Suffix of temporary files, after `<key>.json.<unique>`.
const TEMP_SUFFIX: &str = ".tmp";

/// Hex digits in a key.
const KEY_HEX_LEN: usize = 64;

/// Failure to set up or inspect a cache directory.
///
/// Running cells never fails because of the cache: those problems are
/// logged and the cell runs live.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache directory cannot be created.
    #[error("cannot create cache directory {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The cache directory cannot be listed.
    #[error("cannot read cache directory {}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A cache file's size cannot be read.
    #[error("cannot inspect cache file {}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A cache file cannot be removed.
    #[error("cannot remove cache file {}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What a cache directory holds, as [`cache_info`] counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheInfo {
    /// How many entries.
    pub entries: usize,
    /// The entries' total size in bytes.
    pub bytes: u64,
    /// How many temporary files interrupted or concurrent writers left.
    pub temp_files: usize,
}

/// A persistent cache of cell results, like marimo's cached lifecycle.
///
/// - Setup computes the cell's key (see the module docs). If a visible
///   global is not storable (a closure, a timestamp, a custom type, a
///   plugin's value without a fingerprint), the cell runs live and
///   uncached, with a warning naming the value.
/// - On a hit, setup writes the stored definitions into the globals and
///   skips the body with the stored output and printed text, marked
///   [`cached`](RunResult::cached).
/// - On a miss, the body runs and teardown stores the output, its rich
///   display, the printed text and the cell's definitions, if they are all
///   storable; one that is not is named in a warning. Failed runs are never
///   stored.
/// - An entry that cannot be read or decoded is logged as a warning and
///   treated as a miss, so the run rewrites it. Failing to write an entry
///   is logged as a warning too; neither fails the cell.
///
/// The key covers the inputs when the cell starts: a cell that mutates an
/// input in place (without strict execution) does not replay the mutation
/// on a hit. Put a [`StrictLifecycle`](crate::StrictLifecycle) before this
/// one to make cells independent of such mutations.
///
/// One instance may serve several runs at once on different threads, each
/// with its own globals, and several processes may share a directory.
pub struct CachedLifecycle {
    dir: PathBuf,
    /// Per cell (by id): a digest of the code of the cells defining the
    /// functions the cell reaches.
    fn_digests: Vec<blake3::Hash>,
    /// Per cell (by id): why what it reaches cannot be known from the code,
    /// if so; such a cell is never cached.
    opaque: Vec<Option<String>>,
    /// Which cells define which functions, for functions reached through
    /// function pointers among the inputs.
    reach: Reach,
    /// The key of each evaluation that missed, for its teardown.
    misses: Pending<blake3::Hash>,
    /// Makes plugin-owned values from their stored encodings.
    foreign: Option<ForeignDecoder>,
}

/// A decoded entry.
struct Entry {
    output: Dynamic,
    stdout: String,
    display: Option<Display>,
    defs: Vec<(String, Dynamic)>,
}

/// Why an entry cannot be used.
enum EntryError {
    /// There is no entry: a plain miss.
    Missing,
    /// The file cannot be read.
    Read(io::Error),
    /// The file is not JSON (empty, truncated or garbage).
    Json(serde_json::Error),
    /// The JSON is not a valid entry for this key.
    Invalid(String),
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryError::Missing => f.write_str("no entry"),
            EntryError::Read(error) => write!(f, "cannot read it: {error}"),
            EntryError::Json(error) => write!(f, "not valid JSON: {error}"),
            EntryError::Invalid(reason) => write!(f, "not a valid entry: {reason}"),
        }
    }
}

impl CachedLifecycle {
    /// The lifecycle's name.
    pub const NAME: &'static str = "cache";

    /// A cache for the cells of `notebook` stored in `dir`, which is created if needed.
    ///
    /// The lifecycle must only evaluate cells of `notebook`; it runs any
    /// other cell live.
    ///
    /// # Errors
    /// [`CacheError::CreateDir`] when `dir` cannot be created.
    pub fn new(dir: PathBuf, notebook: &Notebook) -> Result<CachedLifecycle, CacheError> {
        fs::create_dir_all(&dir).map_err(|source| CacheError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let reach = Reach::new(notebook);
        let (fn_digests, opaque) = notebook
            .cells()
            .iter()
            .map(|cell| {
                let reached = reach.definers(cell.inputs(), Some(cell.id().index()));
                let opaque = cell
                    .opaque()
                    .map(str::to_owned)
                    .or_else(|| reach.opaque(&reached));
                (reach.digest(&reached), opaque)
            })
            .unzip();
        Ok(CachedLifecycle {
            dir,
            fn_digests,
            opaque,
            reach,
            misses: Pending::new(),
            foreign: None,
        })
    }

    /// The same cache, reading plugin-owned values back from entries with
    /// `decode` (owner, type name, the owner's encoding), which asks their
    /// owner. Without it an entry holding such a value is unusable (a
    /// warning, and the cell runs live).
    pub fn with_foreign_decoder(mut self, decode: ForeignDecoder) -> CachedLifecycle {
        self.foreign = Some(decode);
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `cell`'s entry given the current `globals`, or why the
    /// cell cannot be cached.
    fn key(&self, cell: &Cell, globals: &Globals) -> Result<blake3::Hash, Uncached> {
        let fn_digest = self.fn_digests.get(cell.id().index()).ok_or_else(|| {
            Uncached::Opaque("the cell is not from the cache's notebook".to_owned())
        })?;
        if let Some(reason) = &self.opaque[cell.id().index()] {
            return Err(Uncached::Opaque(format!(
                "what the cell reaches is not known from its code: {reason}"
            )));
        }
        let mut hasher = blake3::Hasher::new();
        hash_str(&mut hasher, FORMAT);
        hash_str(&mut hasher, cell.code());
        hasher.update(fn_digest.as_bytes());
        let mut names = visible_names(cell);
        names.sort_unstable();
        // Values stream into the hash: a large input costs no copy.
        let mut encoder = Encoder::new(&mut hasher, Purpose::Key, 0, usize::MAX);
        for name in names {
            hash_str(encoder.out(), name);
            match globals.get(name) {
                Some(value) => encoder.value(value).map_err(|reason| {
                    Uncached::Value(format!("its input `{name}` is not storable: {reason}"))
                })?,
                // An absent name (a notebook function, or a missing input
                // that makes the body fail) still takes part in the key.
                None => {
                    encoder.out().update(b"null");
                }
            }
        }
        // A function pointer among the inputs reaches its function's code.
        let pointed = encoder.fn_names().to_vec();
        drop(encoder);
        if !pointed.is_empty() {
            let reached = self.reach.definers(&pointed, None);
            if let Some(reason) = self.reach.opaque(&reached) {
                return Err(Uncached::Opaque(format!(
                    "what the cell reaches is not known from its code: {reason}"
                )));
            }
            hasher.update(self.reach.digest(&reached).as_bytes());
        }
        Ok(hasher.finalize())
    }

    fn entry_path(&self, key: &blake3::Hash) -> PathBuf {
        self.dir.join(format!("{}{ENTRY_SUFFIX}", key.to_hex()))
    }
}

impl Lifecycle for CachedLifecycle {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError> {
        let key = match self.key(cell, globals) {
            Ok(key) => key,
            Err(Uncached::Opaque(reason)) => {
                tracing::debug!(cell = cell.name(), %reason, "cache: running the cell uncached");
                return Ok(Setup::Continue);
            }
            Err(Uncached::Value(reason)) => {
                tracing::warn!("cache: cell `{}` runs live: {reason}", cell.name());
                return Ok(Setup::Continue);
            }
        };
        let path = self.entry_path(&key);
        match read_entry(&path, &key, cell, self.foreign.as_ref()) {
            Ok(entry) => {
                tracing::debug!(cell = cell.name(), key = %key, "cache: hit");
                for (name, value) in entry.defs {
                    globals.set(name, value);
                }
                return Ok(Setup::Skip(RunResult {
                    output: entry.output,
                    stdout: entry.stdout,
                    error: None,
                    cached: true,
                    display: entry.display,
                }));
            }
            Err(EntryError::Missing) => {
                tracing::debug!(cell = cell.name(), key = %key, "cache: miss");
            }
            Err(error) => {
                tracing::warn!(
                    path = %path.display(),
                    reason = %error,
                    "cache: ignoring an unusable entry; the cell runs and rewrites it"
                );
            }
        }
        self.misses.insert(cell.id(), key);
        Ok(Setup::Continue)
    }

    fn teardown(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        result: &RunResult,
    ) -> Result<(), CellError> {
        let Some(key) = self.misses.take(cell.id()) else {
            return Ok(());
        };
        if !result.is_ok() || result.cached {
            return Ok(());
        }
        match write_atomically(&self.dir, &key, |out| {
            write_entry(out, &key, cell, globals, result)
        }) {
            Ok(()) => {}
            Err(EncodeError::Io(error)) => tracing::warn!(
                path = %self.entry_path(&key).display(),
                %error,
                "cache: cannot write an entry"
            ),
            Err(reason) => {
                tracing::warn!(
                    "cache: not storing the result of cell `{}`, which runs live on the next run too: {reason}",
                    cell.name()
                );
            }
        }
        Ok(())
    }
}

/// Why a cell has no key and runs live.
enum Uncached {
    /// What the cell reaches is not known from its code, as documented: a
    /// debug line.
    Opaque(String),
    /// One of its inputs is not storable: a warning.
    Value(String),
}

/// Feeds `text` to `hasher`, length first so consecutive strings cannot run together.
fn hash_str(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

/// Which cells define which functions, and what each cell reaches.
struct Reach {
    fn_definers: HashMap<String, Vec<usize>>,
    inputs: Vec<Vec<String>>,
    codes: Vec<String>,
    opaque: Vec<Option<String>>,
    names: Vec<String>,
}

impl Reach {
    fn new(notebook: &Notebook) -> Reach {
        let cells = notebook.cells();
        let mut fn_definers: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, cell) in cells.iter().enumerate() {
            for name in cell.fn_names() {
                fn_definers.entry(name.clone()).or_default().push(index);
            }
        }
        Reach {
            fn_definers,
            inputs: cells.iter().map(|cell| cell.inputs().to_vec()).collect(),
            codes: cells.iter().map(|cell| cell.code().to_owned()).collect(),
            opaque: cells
                .iter()
                .map(|cell| cell.opaque().map(str::to_owned))
                .collect(),
            names: cells.iter().map(|cell| cell.name().to_owned()).collect(),
        }
    }

    /// The cells (but `skip`) defining a function among `names` or reached
    /// from one, transitively.
    fn definers(&self, names: &[String], skip: Option<usize>) -> BTreeSet<usize> {
        let mut reached = BTreeSet::new();
        let mut pending: Vec<&str> = names.iter().map(String::as_str).collect();
        while let Some(name) = pending.pop() {
            for &definer in self.fn_definers.get(name).into_iter().flatten() {
                if Some(definer) != skip && reached.insert(definer) {
                    pending.extend(self.inputs[definer].iter().map(String::as_str));
                }
            }
        }
        reached
    }

    /// Why one of the `reached` cells hides what it reaches, if one does.
    fn opaque(&self, reached: &BTreeSet<usize>) -> Option<String> {
        reached.iter().find_map(|&definer| {
            self.opaque[definer]
                .as_ref()
                .map(|reason| format!("{reason} in cell `{}`", self.names[definer]))
        })
    }

    /// A digest of the code of the `reached` cells.
    fn digest(&self, reached: &BTreeSet<usize>) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(reached.len() as u64).to_le_bytes());
        for &definer in reached {
            hash_str(&mut hasher, &self.codes[definer]);
        }
        hasher.finalize()
    }
}

/// An entry as stored, its values decoded straight from the file's text
/// (plugin-owned values through their owner's decoder).
struct StoredEntry {
    format: String,
    key: String,
    output: Dynamic,
    stdout: String,
    display: Option<Display>,
    defs: Vec<(String, Dynamic)>,
}

/// Reads a [`StoredEntry`] with the decoder of plugin-owned values.
struct EntrySeed<'a>(Option<&'a ForeignDecoder>);

impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = StoredEntry;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<StoredEntry, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntrySeed<'_> {
    type Value = StoredEntry;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cache entry")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StoredEntry, A::Error> {
        use serde::de::Error;
        let seed = DecodeSeed::new(self.0);
        let (mut format, mut key, mut output, mut stdout, mut display, mut defs) =
            (None, None, None, None, None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "format" => format = Some(map.next_value::<String>()?),
                "key" => key = Some(map.next_value::<String>()?),
                "output" => output = Some(map.next_value_seed(seed)?),
                "stdout" => stdout = Some(map.next_value::<String>()?),
                "display" => {
                    display =
                        Some(
                            map.next_value::<Option<StoredDisplay>>()?
                                .map(|display| Display {
                                    mime: display.mime,
                                    data: display.data,
                                }),
                        );
                }
                "defs" => defs = Some(map.next_value_seed(DefsSeed(seed))?),
                other => return Err(A::Error::unknown_field(other, ENTRY_FIELDS)),
            }
        }
        let missing = |name: &'static str| A::Error::missing_field(name);
        // The format comes first in the check, so an entry of another
        // format is reported as such rather than by a missing field.
        let format = format.ok_or_else(|| missing("format"))?;
        Ok(StoredEntry {
            format,
            key: key.ok_or_else(|| missing("key"))?,
            output: output.ok_or_else(|| missing("output"))?,
            stdout: stdout.ok_or_else(|| missing("stdout"))?,
            display: display.ok_or_else(|| missing("display"))?,
            defs: defs.ok_or_else(|| missing("defs"))?,
        })
    }
}

const ENTRY_FIELDS: &[&str] = &["defs", "display", "format", "key", "output", "stdout"];

/// An output's rich form as stored.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredDisplay {
    mime: String,
    data: String,
}

/// Reads an entry's definitions, by name.
struct DefsSeed<'a>(DecodeSeed<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for DefsSeed<'_> {
    type Value = Vec<(String, Dynamic)>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Vec<(String, Dynamic)>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DefsSeed<'_> {
    type Value = Vec<(String, Dynamic)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("definitions by name")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Vec<(String, Dynamic)>, A::Error> {
        let mut defs = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            defs.push((name, map.next_value_seed(self.0)?));
        }
        Ok(defs)
    }
}

/// Reads and decodes the entry at `path`, checking it belongs to `key` and `cell`.
fn read_entry(
    path: &Path,
    key: &blake3::Hash,
    cell: &Cell,
    foreign: Option<&ForeignDecoder>,
) -> Result<Entry, EntryError> {
    use serde::de::DeserializeSeed;
    let bytes = fs::read(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => EntryError::Missing,
        _ => EntryError::Read(error),
    })?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let stored = EntrySeed(foreign)
        .deserialize(&mut deserializer)
        .and_then(|stored| deserializer.end().map(|()| stored))
        .map_err(|error| {
            if error.is_data() {
                EntryError::Invalid(error.to_string())
            } else {
                EntryError::Json(error)
            }
        })?;
    let invalid = |reason: &str| EntryError::Invalid(reason.to_owned());
    if stored.format != FORMAT {
        return Err(invalid("unknown format"));
    }
    if stored.key != key.to_hex().as_str() {
        return Err(invalid("the key does not match the file name"));
    }
    for (name, _) in &stored.defs {
        if !cell.defs().contains(name) {
            return Err(EntryError::Invalid(format!(
                "defines `{name}`, which the cell does not define"
            )));
        }
    }
    Ok(Entry {
        output: stored.output,
        stdout: stored.stdout,
        display: stored.display,
        defs: stored.defs,
    })
}

/// The deepest nesting of JSON arrays and objects an entry may have:
/// serde_json reads up to 128 levels.
const MAX_ENTRY_DEPTH: usize = 120;

/// Writes the entry for a successful run of `cell` to `out`, values
/// streamed from the globals; fails when one is not storable.
fn write_entry(
    out: &mut impl Write,
    key: &blake3::Hash,
    cell: &Cell,
    globals: &Globals,
    result: &RunResult,
) -> Result<(), EncodeError> {
    let not_storable = |what: &str, error: EncodeError| match error {
        EncodeError::Value(reason) => EncodeError::Value(crate::value::Unsupported::Kind(format!(
            "{what} is not storable: {reason}"
        ))),
        other => other,
    };
    let mut names: Vec<&String> = cell.defs().iter().collect();
    names.sort_unstable();
    // The reader stops at serde_json's nesting limit; an entry it could
    // never read back would be rewritten on every run.
    let mut encoder = Encoder::new(out, Purpose::Entry, 2, MAX_ENTRY_DEPTH);
    encoder.out().write_all(b"{\"defs\":{")?;
    let mut first = true;
    for name in names {
        if let Some(value) = globals.get(name) {
            if !first {
                encoder.out().write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(encoder.out(), name).map_err(io::Error::from)?;
            encoder.out().write_all(b":")?;
            encoder
                .value(value)
                .map_err(|error| not_storable(&format!("`{name}`"), error))?;
        }
    }
    let out = encoder.finish();
    out.write_all(b"},\"display\":")?;
    match &result.display {
        Some(display) => {
            out.write_all(b"{\"mime\":")?;
            serde_json::to_writer(&mut *out, &display.mime).map_err(io::Error::from)?;
            out.write_all(b",\"data\":")?;
            serde_json::to_writer(&mut *out, &display.data).map_err(io::Error::from)?;
            out.write_all(b"}")?;
        }
        None => out.write_all(b"null")?,
    }
    write!(
        out,
        ",\"format\":\"{FORMAT}\",\"key\":\"{}\",\"output\":",
        key.to_hex()
    )?;
    let mut encoder = Encoder::new(out, Purpose::Entry, 1, MAX_ENTRY_DEPTH);
    encoder
        .value(&result.output)
        .map_err(|error| not_storable("the output", error))?;
    let out = encoder.finish();
    out.write_all(b",\"stdout\":")?;
    serde_json::to_writer(&mut *out, &result.stdout).map_err(io::Error::from)?;
    out.write_all(b"}\n")?;
    Ok(())
}

/// Writes the entry for `key` in `dir` with `contents`: into a temporary
/// file of a name no other writer uses, then renamed over the entry.
fn write_atomically(
    dir: &Path,
    key: &blake3::Hash,
    contents: impl FnOnce(&mut io::BufWriter<fs::File>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = key.to_hex();
    let thread =
        BuildHasherDefault::<DefaultHasher>::default().hash_one(std::thread::current().id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let temp = dir.join(format!(
        "{key}{ENTRY_SUFFIX}.{}-{thread:016x}-{}-{nanos}{TEMP_SUFFIX}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(EncodeError::Io)
        .and_then(|file| {
            let mut out = io::BufWriter::with_capacity(1 << 16, file);
            contents(&mut out)?;
            out.into_inner()
                .map_err(|error| EncodeError::Io(error.into_error()))?;
            Ok(())
        })
        .and_then(|()| {
            fs::rename(&temp, dir.join(format!("{key}{ENTRY_SUFFIX}"))).map_err(EncodeError::Io)
        });
    if written.is_err() {
        // Best effort: a leftover temporary file is harmless and cleared by `cache_clear`.
        let _ = fs::remove_file(&temp);
    }
    written
}

/// What a file in a cache directory is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Entry,
    Temp,
    Other,
}

fn classify(name: &str) -> FileKind {
    let Some((key, rest)) = name.split_at_checked(KEY_HEX_LEN) else {
        return FileKind::Other;
    };
    if !key
        .bytes()
        .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return FileKind::Other;
    }
    if rest == ENTRY_SUFFIX {
        FileKind::Entry
    } else if rest.len() > ENTRY_SUFFIX.len() + 1 + TEMP_SUFFIX.len()
        && rest.starts_with(ENTRY_SUFFIX)
        && rest[ENTRY_SUFFIX.len()..].starts_with('.')
        && rest.ends_with(TEMP_SUFFIX)
    {
        FileKind::Temp
    } else {
        FileKind::Other
    }
}

/// The cache's files in `dir` with their kinds; none when `dir` does not exist.
fn cache_files(dir: &Path) -> Result<Vec<(PathBuf, FileKind)>, CacheError> {
    let read_dir_error = |source| CacheError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(read_dir_error(error)),
    };
    let mut files = Vec::new();
    for item in listing {
        let item = item.map_err(read_dir_error)?;
        let kind = item.file_name().to_str().map_or(FileKind::Other, classify);
        if kind != FileKind::Other {
            files.push((item.path(), kind));
        }
    }
    Ok(files)
}

/// Counts the entries of the cache in `dir` and their size.
///
/// Only files named like entries or temporary files count. A missing
/// directory is an empty cache.
///
/// # Errors
/// When `dir` cannot be listed or an entry's size cannot be read.
pub fn cache_info(dir: &Path) -> Result<CacheInfo, CacheError> {
    let mut info = CacheInfo::default();
    for (path, kind) in cache_files(dir)? {
        match kind {
            FileKind::Entry => {
                let bytes = match fs::metadata(&path) {
                    Ok(metadata) => metadata.len(),
                    // Another run removed it since the listing.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(CacheError::Metadata { path, source }),
                };
                info.entries += 1;
                info.bytes += bytes;
            }
            FileKind::Temp => info.temp_files += 1,
            FileKind::Other => {}
        }
    }
    Ok(info)
}

/// Removes every entry and temporary file of the cache in `dir`, returning
/// how many files were removed.
///
/// Files of other names, and the directory itself, stay. A missing
/// directory is an empty cache.
///
/// # Errors
/// When `dir` cannot be listed or a cache file cannot be removed.
pub fn cache_clear(dir: &Path) -> Result<usize, CacheError> {
    let mut removed = 0;
    for (path, _) in cache_files(dir)? {
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Remove { path, source }),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
