//! Built-ins that could escape a run's limits in one native call, replaced
//! by bounded ones.
//!
//! The memory limit and the cancel token are checked between Rhai
//! operations; a single native call runs to its end in between. So the
//! calls that allocate an amount their argument chooses (`blob(n)`,
//! `pad(n, ...)` on arrays, blobs and strings) are refused before they run
//! when that amount is over the limit, and `sleep` sleeps in slices,
//! checking the cancel token between them. Functions registered on the
//! engine take precedence over the standard package's of the same name and
//! types.

use std::time::{Duration, Instant};

use rhai::{
    Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext, Position, INT,
};

/// The bytes one element of an array takes, besides what it owns.
const SLOT: usize = std::mem::size_of::<Dynamic>();

/// What the message of a refused allocation names (the executor shows such
/// a message as it is).
pub(crate) const MEMORY_LIMIT: &str = "memory limit";

/// How long `sleep` sleeps before it looks at the cancel token again.
const SLICE: Duration = Duration::from_millis(5);

/// Whether the running cell was asked to stop.
pub(crate) type StopCheck = fn() -> bool;

/// Registers the bounded built-ins on `engine`: an allocation of more than
/// `max_bytes` (`0`: no bound) is an error before it happens, and `sleep`
/// returns early, as a termination, once `should_stop` says so.
pub(crate) fn register(engine: &mut Engine, max_bytes: usize, should_stop: StopCheck) {
    let check = move |what: &str, bytes: Option<usize>| -> Result<(), Box<EvalAltResult>> {
        match bytes {
            Some(bytes) if max_bytes == 0 || bytes <= max_bytes => Ok(()),
            _ => Err(too_large(what, bytes, max_bytes)),
        }
    };
    engine.register_fn(
        "blob",
        move |ctx: NativeCallContext, len: INT| -> Result<Blob, Box<EvalAltResult>> {
            new_blob(&ctx, len, 0, check)
        },
    );
    engine.register_fn(
        "blob",
        move |ctx: NativeCallContext, len: INT, value: INT| -> Result<Blob, Box<EvalAltResult>> {
            new_blob(&ctx, len, value, check)
        },
    );
    engine.register_fn(
        "pad",
        move |ctx: NativeCallContext,
              blob: &mut Blob,
              len: INT,
              value: INT|
              -> Result<(), Box<EvalAltResult>> {
            let Some(len) = positive(len) else {
                return Ok(());
            };
            if len <= blob.len() {
                return Ok(());
            }
            engine_limit(&ctx, "Size of BLOB", len, ctx.engine().max_array_size())?;
            check("pad", Some(len))?;
            blob.resize(len, (value & 0xff) as u8);
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |ctx: NativeCallContext,
              array: &mut Array,
              len: INT,
              item: Dynamic|
              -> Result<(), Box<EvalAltResult>> {
            let Some(len) = positive(len) else {
                return Ok(());
            };
            if len <= array.len() {
                return Ok(());
            }
            engine_limit(&ctx, "Size of array", len, ctx.engine().max_array_size())?;
            let added = len - array.len();
            let each = SLOT.saturating_add(owned_bytes(&item));
            check("pad", added.checked_mul(each))?;
            array.resize(len, item);
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |ctx: NativeCallContext,
              string: &mut ImmutableString,
              len: INT,
              character: char|
              -> Result<(), Box<EvalAltResult>> {
            pad_string(&ctx, string, len, &character.to_string(), check)
        },
    );
    engine.register_fn(
        "pad",
        move |ctx: NativeCallContext,
              string: &mut ImmutableString,
              len: INT,
              padding: &str|
              -> Result<(), Box<EvalAltResult>> {
            pad_string(&ctx, string, len, padding, check)
        },
    );
    engine.register_fn("sleep", move |seconds: INT| {
        sleep(seconds as f64, should_stop)
    });
    engine.register_fn("sleep", move |seconds: rhai::FLOAT| {
        sleep(seconds, should_stop)
    });
}

/// `len` as a size, or `None` when it asks for nothing.
fn positive(len: INT) -> Option<usize> {
    (len > 0).then(|| usize::try_from(len).unwrap_or(usize::MAX))
}

/// The bytes `value` owns outside its slot, counted one level deep.
fn owned_bytes(value: &Dynamic) -> usize {
    if let Some(text) = value.read_lock::<ImmutableString>() {
        text.len()
    } else if let Some(array) = value.read_lock::<Array>() {
        array.len().saturating_mul(SLOT)
    } else if let Some(blob) = value.read_lock::<Blob>() {
        blob.len()
    } else if let Some(map) = value.read_lock::<rhai::Map>() {
        map.len().saturating_mul(SLOT * 4)
    } else {
        0
    }
}

/// The engine's own size limit, as Rhai applies it when one is set.
fn engine_limit(
    _ctx: &NativeCallContext,
    what: &str,
    len: usize,
    limit: usize,
) -> Result<(), Box<EvalAltResult>> {
    if limit > 0 && len > limit {
        return Err(EvalAltResult::ErrorDataTooLarge(what.to_owned(), Position::NONE).into());
    }
    Ok(())
}

/// The error of a call that would allocate `bytes` (`None`: more than a
/// machine has) over `max_bytes`.
fn too_large(what: &str, bytes: Option<usize>, max_bytes: usize) -> Box<EvalAltResult> {
    let asked = bytes.map_or_else(
        || "more bytes than exist".to_owned(),
        |bytes| format!("{bytes} bytes"),
    );
    EvalAltResult::ErrorDataTooLarge(
        format!(
            "`{what}` would allocate {asked}, over the run's {MEMORY_LIMIT} of {max_bytes} bytes"
        ),
        Position::NONE,
    )
    .into()
}

fn new_blob(
    ctx: &NativeCallContext,
    len: INT,
    value: INT,
    check: impl Fn(&str, Option<usize>) -> Result<(), Box<EvalAltResult>>,
) -> Result<Blob, Box<EvalAltResult>> {
    let Some(len) = positive(len) else {
        return Ok(Blob::new());
    };
    engine_limit(ctx, "Size of BLOB", len, ctx.engine().max_array_size())?;
    check("blob", Some(len))?;
    Ok(vec![(value & 0xff) as u8; len])
}

fn pad_string(
    ctx: &NativeCallContext,
    string: &mut ImmutableString,
    len: INT,
    padding: &str,
    check: impl Fn(&str, Option<usize>) -> Result<(), Box<EvalAltResult>>,
) -> Result<(), Box<EvalAltResult>> {
    let Some(len) = positive(len) else {
        return Ok(());
    };
    engine_limit(ctx, "Length of string", len, ctx.engine().max_string_size())?;
    let n_chars = string.chars().count();
    if len <= n_chars || padding.is_empty() {
        return Ok(());
    }
    let widest = padding.chars().map(char::len_utf8).max().unwrap_or(1);
    check("pad", (len - n_chars).checked_mul(widest))?;
    let text = string.make_mut();
    text.extend(padding.chars().cycle().take(len - n_chars));
    let max = ctx.engine().max_string_size();
    if max > 0 && text.len() > max {
        return Err(EvalAltResult::ErrorDataTooLarge(
            "Length of string".to_owned(),
            Position::NONE,
        )
        .into());
    }
    Ok(())
}

/// Sleeps `seconds`, in slices, and stops early as a termination (the
/// cell's error then says why: a timeout, an interrupt) once the cell is
/// asked to stop.
fn sleep(seconds: f64, should_stop: StopCheck) -> Result<(), Box<EvalAltResult>> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Ok(());
    }
    // A sleep too long to represent lasts until the cell is stopped.
    let end = Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|length| Instant::now().checked_add(length));
    loop {
        if should_stop() {
            return Err(EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into());
        }
        let now = Instant::now();
        let left = match end {
            Some(end) if now >= end => return Ok(()),
            Some(end) => end - now,
            None => SLICE,
        };
        std::thread::sleep(left.min(SLICE));
    }
}
