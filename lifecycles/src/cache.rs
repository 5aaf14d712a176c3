//! [`CachedLifecycle`]: reuse a cell's result when its code and inputs did not change.
//!
//! # Keys
//! An entry's key is a BLAKE3 hash of the format version, the cell's code,
//! the code of every cell defining a function the cell reaches (through its
//! inputs, transitively), and each visible global (sorted by name) with its
//! canonical encoding. A changed upstream value or function therefore
//! changes the key of every cell downstream.
//!
//! # Directory layout
//! An entry is the file `<key>.json` (the key as 64 lowercase hex digits):
//! a JSON object with the fields `format` (`"cellrun-cache-v1"`), `key`,
//! `output`, `stdout` and `defs` (the cell's definitions by name), values
//! in the encoding of the `value` module. Writers create a temporary file
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

use executor_core::{Cell, CellError, Globals, Lifecycle, Notebook, RunResult, Setup};
use rhai::Dynamic;
use serde_json::Value;

use crate::value::{decode, encode, Unsupported};
use crate::visible::{visible_names, Pending};

/// The version of the key derivation and of the entry format.
///
/// Changing either means changing this, so old entries are never misread.
const FORMAT: &str = "cellrun-cache-v1";

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
///   global is not storable (a closure, a timestamp, a custom type), the
///   cell runs live and uncached; the reason is logged at debug level.
/// - On a hit, setup writes the stored definitions into the globals and
///   skips the body with the stored output and printed text, marked
///   [`cached`](RunResult::cached).
/// - On a miss, the body runs and teardown stores the output, the printed
///   text and the cell's definitions, if they are all storable. Failed runs
///   are never stored.
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
    /// The key of each evaluation that missed, for its teardown.
    misses: Pending<blake3::Hash>,
}

/// A decoded entry.
struct Entry {
    output: Dynamic,
    stdout: String,
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
        Ok(CachedLifecycle {
            dir,
            fn_digests: fn_digests(notebook),
            misses: Pending::new(),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `cell`'s entry given the current `globals`, or why the
    /// cell cannot be cached.
    fn key(&self, cell: &Cell, globals: &Globals) -> Result<blake3::Hash, String> {
        let fn_digest = self
            .fn_digests
            .get(cell.id().index())
            .ok_or("the cell is not from the cache's notebook")?;
        let mut hasher = blake3::Hasher::new();
        hash_str(&mut hasher, FORMAT);
        hash_str(&mut hasher, cell.code());
        hasher.update(fn_digest.as_bytes());
        let mut names = visible_names(cell);
        names.sort_unstable();
        for name in names {
            hash_str(&mut hasher, name);
            let encoded = match globals.get(name) {
                Some(value) => {
                    encode(value).map_err(|reason| format!("`{name}` is not storable: {reason}"))?
                }
                // An absent name (a notebook function, or a missing input
                // that makes the body fail) still takes part in the key.
                None => Value::Null,
            };
            serde_json::to_writer(&mut hasher, &encoded)
                .map_err(|error| format!("cannot hash `{name}`: {error}"))?;
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
            Err(reason) => {
                tracing::debug!(cell = cell.name(), %reason, "cache: running the cell uncached");
                return Ok(Setup::Continue);
            }
        };
        let path = self.entry_path(&key);
        match read_entry(&path, &key, cell) {
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
                    display: None,
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
        let contents = match entry_contents(&key, cell, globals, result) {
            Ok(contents) => contents,
            Err(reason) => {
                tracing::debug!(cell = cell.name(), %reason, "cache: not storing the result");
                return Ok(());
            }
        };
        if let Err(error) = write_atomically(&self.dir, &key, &contents) {
            tracing::warn!(
                path = %self.entry_path(&key).display(),
                %error,
                "cache: cannot write an entry"
            );
        }
        Ok(())
    }
}

/// Feeds `text` to `hasher`, length first so consecutive strings cannot run together.
fn hash_str(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

/// For each cell of `notebook`, a digest of the code of the other cells
/// defining a function it reaches through its inputs, transitively.
fn fn_digests(notebook: &Notebook) -> Vec<blake3::Hash> {
    let cells = notebook.cells();
    let mut fn_definers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, cell) in cells.iter().enumerate() {
        for name in cell.fn_names() {
            fn_definers.entry(name.as_str()).or_default().push(index);
        }
    }
    cells
        .iter()
        .enumerate()
        .map(|(index, cell)| {
            let mut reached = BTreeSet::new();
            let mut pending: Vec<&str> = cell.inputs().iter().map(String::as_str).collect();
            while let Some(name) = pending.pop() {
                for &definer in fn_definers.get(name).into_iter().flatten() {
                    if definer != index && reached.insert(definer) {
                        pending.extend(cells[definer].inputs().iter().map(String::as_str));
                    }
                }
            }
            let mut hasher = blake3::Hasher::new();
            hasher.update(&(reached.len() as u64).to_le_bytes());
            for definer in reached {
                hash_str(&mut hasher, cells[definer].code());
            }
            hasher.finalize()
        })
        .collect()
}

/// Reads and decodes the entry at `path`, checking it belongs to `key` and `cell`.
fn read_entry(path: &Path, key: &blake3::Hash, cell: &Cell) -> Result<Entry, EntryError> {
    let bytes = fs::read(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => EntryError::Missing,
        _ => EntryError::Read(error),
    })?;
    let json: Value = serde_json::from_slice(&bytes).map_err(EntryError::Json)?;
    let invalid = |reason: &str| EntryError::Invalid(reason.to_owned());
    let object = json.as_object().ok_or_else(|| invalid("not an object"))?;
    if object.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(invalid("unknown format"));
    }
    if object.get("key").and_then(Value::as_str) != Some(key.to_hex().as_str()) {
        return Err(invalid("the key does not match the file name"));
    }
    let output = decode(object.get("output").ok_or_else(|| invalid("no output"))?)
        .map_err(|error| EntryError::Invalid(format!("output: {error}")))?;
    let stdout = object
        .get("stdout")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no stdout"))?
        .to_owned();
    let stored_defs = object
        .get("defs")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("no defs"))?;
    let mut defs = Vec::with_capacity(stored_defs.len());
    for (name, encoded) in stored_defs {
        if !cell.defs().contains(name) {
            return Err(EntryError::Invalid(format!(
                "defines `{name}`, which the cell does not define"
            )));
        }
        let value = decode(encoded)
            .map_err(|error| EntryError::Invalid(format!("def `{name}`: {error}")))?;
        defs.push((name.clone(), value));
    }
    Ok(Entry {
        output,
        stdout,
        defs,
    })
}

/// The bytes of the entry for a successful run of `cell`, or why it cannot be stored.
/// The deepest nesting an entry may have: serde_json reads up to 128 levels.
const MAX_ENTRY_DEPTH: usize = 120;

/// How deeply `value` nests arrays and objects.
fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        match value {
            serde_json::Value::Array(items) => {
                pending.extend(items.iter().map(|item| (item, level + 1)))
            }
            serde_json::Value::Object(map) => {
                pending.extend(map.values().map(|item| (item, level + 1)))
            }
            _ => {}
        }
    }
    deepest
}

fn entry_contents(
    key: &blake3::Hash,
    cell: &Cell,
    globals: &Globals,
    result: &RunResult,
) -> Result<Vec<u8>, String> {
    let not_storable =
        |what: &str, reason: Unsupported| format!("{what} is not storable: {reason}");
    let mut defs = serde_json::Map::new();
    for name in cell.defs() {
        if let Some(value) = globals.get(name) {
            let encoded =
                encode(value).map_err(|reason| not_storable(&format!("`{name}`"), reason))?;
            defs.insert(name.clone(), encoded);
        }
    }
    let output = encode(&result.output).map_err(|reason| not_storable("the output", reason))?;
    let entry = serde_json::json!({
        "format": FORMAT,
        "key": key.to_hex().as_str(),
        "output": output,
        "stdout": result.stdout,
        "defs": defs,
    });
    // The reader stops at serde_json's nesting limit; an entry it could
    // never read back would be rewritten on every run.
    if depth(&entry) > MAX_ENTRY_DEPTH {
        return Err(format!(
            "the values nest deeper than {MAX_ENTRY_DEPTH} levels"
        ));
    }
    let mut contents =
        serde_json::to_vec(&entry).map_err(|error| format!("cannot serialize: {error}"))?;
    contents.push(b'\n');
    Ok(contents)
}

/// Writes `contents` as the entry for `key` in `dir`: into a temporary file
/// of a name no other writer uses, then renamed over the entry.
fn write_atomically(dir: &Path, key: &blake3::Hash, contents: &[u8]) -> io::Result<()> {
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
        .and_then(|mut file| file.write_all(contents))
        .and_then(|()| fs::rename(&temp, dir.join(format!("{key}{ENTRY_SUFFIX}"))));
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
