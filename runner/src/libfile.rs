//! Plugin library files before they are loaded: the trust check on the
//! real path, and a structure check against the file's size.
//!
//! Loading a library maps its segments; a segment reaching past the end of a
//! truncated file is a SIGBUS on first touch, inside `dlopen`, with no
//! message. So a file is opened once, checked through that open file (its
//! owner and mode, then its ELF, Mach-O or PE headers against its size),
//! and, on Linux, loaded through `/proc/self/fd/N`: the file checked is the
//! file loaded, even if its name is replaced in between.
//!
//! The trust rule is ssh's and sudo's: the file and every directory on its
//! real path (symlinks resolved) must be owned by the caller or root, and
//! writable by nobody else; a sticky directory such as `/tmp` may be
//! writable by others, since they cannot rename or remove its entries.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a library file is not loaded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It fails the trust check (`--allow-untrusted-plugins` loads it anyway).
    Untrusted(String),
    /// It cannot be read or is not a complete library.
    Broken(String),
}

/// A library file opened for loading.
pub(crate) struct Opened {
    /// The path to hand to the dynamic loader: the open file itself where the
    /// system allows it, else the real path.
    load_path: PathBuf,
}

impl Opened {
    /// The path the loader must open.
    pub(crate) fn load_path(&self) -> &Path {
        &self.load_path
    }
}

/// Opens the library at `path`, checks that it is trusted (unless
/// `allow_untrusted`) and that its structure fits its size.
pub(crate) fn open(path: &Path, allow_untrusted: bool) -> Result<Opened, Refusal> {
    let real = std::fs::canonicalize(path)
        .map_err(|error| Refusal::Broken(format!("cannot resolve its path: {error}")))?;
    let file =
        File::open(&real).map_err(|error| Refusal::Broken(format!("cannot open it: {error}")))?;
    let metadata = file
        .metadata()
        .map_err(|error| Refusal::Broken(format!("cannot read its metadata: {error}")))?;
    if !metadata.is_file() {
        return Err(Refusal::Broken("it is not a regular file".to_owned()));
    }
    if !allow_untrusted {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let shown = if real == absolute {
            String::new()
        } else {
            format!(" (the real path of {})", path.display())
        };
        if let Some(reason) = distrust_metadata(&real, &metadata, false) {
            return Err(Refusal::Untrusted(format!("{reason}{shown}")));
        }
        if let Some(reason) = real.parent().and_then(distrust_ancestors) {
            return Err(Refusal::Untrusted(format!("{reason}{shown}")));
        }
    }
    check_structure(&file, metadata.len()).map_err(Refusal::Broken)?;
    Ok(Opened {
        load_path: load_path(file, &real),
    })
}

/// The path that loads exactly `file`; the file stays open for the life of
/// the process (plugins are never unloaded, and a reused descriptor number
/// would make the loader mistake a later library for an earlier one).
#[cfg(target_os = "linux")]
fn load_path(file: File, real: &Path) -> PathBuf {
    use std::os::fd::IntoRawFd;
    let through_fd = Path::new("/proc/self/fd");
    if through_fd.is_dir() {
        let fd = file.into_raw_fd();
        return through_fd.join(fd.to_string());
    }
    real.to_owned()
}

#[cfg(not(target_os = "linux"))]
fn load_path(_file: File, real: &Path) -> PathBuf {
    real.to_owned()
}

/// Why the directory `dir` must not be trusted with files cellrun loads or
/// reads back (plugins, cache entries), if it must not: it or a directory on
/// its real path is owned by another user than the caller or root, or
/// writable by others and not sticky.
pub(crate) fn distrust_dir(dir: &Path) -> Option<String> {
    match std::fs::canonicalize(dir) {
        Ok(real) => distrust_ancestors(&real),
        Err(error) => Some(format!("cannot resolve {}: {error}", dir.display())),
    }
}

/// The trust check of `dir`, already a real path, and of every directory
/// above it.
fn distrust_ancestors(dir: &Path) -> Option<String> {
    dir.ancestors()
        .find_map(|ancestor| match std::fs::metadata(ancestor) {
            Ok(metadata) => distrust_metadata(ancestor, &metadata, true),
            Err(error) => Some(format!(
                "cannot read the permissions of {}: {error}",
                ancestor.display()
            )),
        })
}

#[cfg(unix)]
fn distrust_metadata(path: &Path, metadata: &std::fs::Metadata, is_dir: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    const STICKY: u32 = 0o1000;
    let sticky_dir = is_dir && metadata.mode() & STICKY != 0;
    if metadata.mode() & 0o022 != 0 && !sticky_dir {
        return Some(format!("{} is writable by group or others", path.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me && metadata.uid() != 0 {
        return Some(format!(
            "{} is owned by another user (uid {})",
            path.display(),
            metadata.uid()
        ));
    }
    None
}

#[cfg(not(unix))]
fn distrust_metadata(_path: &Path, _metadata: &std::fs::Metadata, _is_dir: bool) -> Option<String> {
    None
}

/// Reads `buf.len()` bytes at `offset`, or fails.
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
            .map_err(|error| format!("cannot read it: {error}"))
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.seek_read(&mut buf[done..], offset + done as u64) {
                Ok(0) => return Err("cannot read it: unexpected end of file".to_owned()),
                Ok(n) => done += n,
                Err(error) => return Err(format!("cannot read it: {error}")),
            }
        }
        Ok(())
    }
}

/// Reads an unsigned integer of `width` bytes (1, 2, 4 or 8).
fn uint(bytes: &[u8], at: usize, width: usize, little: bool) -> u64 {
    let field = &bytes[at..at + width];
    let mut value = 0u64;
    for index in 0..width {
        let byte = if little {
            field[width - 1 - index]
        } else {
            field[index]
        };
        value = (value << 8) | u64::from(byte);
    }
    value
}

/// `what` reaches past the end of a file of `size` bytes.
fn past_end(what: &str, end: Option<u64>, size: u64) -> Result<(), String> {
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(format!(
            "truncated or damaged library ({what} ends past its {size} bytes)"
        )),
    }
}

/// Checks that the headers of the library in `file` describe data that lies
/// inside its `size` bytes: ELF program and section headers and segments,
/// Mach-O load commands and segments, PE sections.
pub(crate) fn check_structure(file: &File, size: u64) -> Result<(), String> {
    let mut magic = [0u8; 4];
    if size < 4 {
        return Err(format!("not a shared library (only {size} bytes)"));
    }
    read_at(file, 0, &mut magic)?;
    match magic {
        [0x7f, b'E', b'L', b'F'] => check_elf(file, size),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => {
            check_macho(file, 0, size, size)
        }
        [0xca, 0xfe, 0xba, 0xbe] => check_fat(file, size),
        [b'M', b'Z', _, _] => check_pe(file, size),
        _ => Err("not a loadable library (no ELF, Mach-O or PE header)".to_owned()),
    }
}

fn check_elf(file: &File, size: u64) -> Result<(), String> {
    let mut ident = [0u8; 64];
    past_end("the ELF header", Some(52), size)?;
    let header_len = ident.len().min(size as usize);
    read_at(file, 0, &mut ident[..header_len])?;
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err("damaged ELF header (unknown class)".to_owned()),
    };
    let little = match ident[5] {
        1 => true,
        2 => false,
        _ => return Err("damaged ELF header (unknown byte order)".to_owned()),
    };
    if wide {
        past_end("the ELF header", Some(64), size)?;
    }
    let word = if wide { 8 } else { 4 };
    let (phoff, shoff) = if wide {
        (uint(&ident, 32, 8, little), uint(&ident, 40, 8, little))
    } else {
        (uint(&ident, 28, 4, little), uint(&ident, 32, 4, little))
    };
    let fields = if wide { 54 } else { 42 };
    let phentsize = uint(&ident, fields, 2, little);
    let phnum = uint(&ident, fields + 2, 2, little);
    let shentsize = uint(&ident, fields + 4, 2, little);
    let shnum = uint(&ident, fields + 6, 2, little);
    past_end(
        "the program header table",
        phentsize
            .checked_mul(phnum)
            .and_then(|len| len.checked_add(phoff)),
        size,
    )?;
    if shoff != 0 {
        past_end(
            "the section header table",
            shentsize
                .checked_mul(shnum)
                .and_then(|len| len.checked_add(shoff)),
            size,
        )?;
    }
    let min_entry = if wide { 56 } else { 32 };
    if phnum > 0 && phentsize < min_entry {
        return Err("damaged ELF header (program headers too small)".to_owned());
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    read_at(file, phoff, &mut table)?;
    for entry in table.chunks_exact(phentsize as usize) {
        let kind = uint(entry, 0, 4, little);
        // Loadable segments and the dynamic section are what the loader maps
        // and reads.
        const PT_LOAD: u64 = 1;
        const PT_DYNAMIC: u64 = 2;
        if kind != PT_LOAD && kind != PT_DYNAMIC {
            continue;
        }
        let (offset, filesz) = if wide {
            (uint(entry, 8, word, little), uint(entry, 32, word, little))
        } else {
            (uint(entry, 4, word, little), uint(entry, 16, word, little))
        };
        past_end("a segment", offset.checked_add(filesz), size)?;
    }
    Ok(())
}

/// A thin Mach-O image at `base` of `len` bytes, in a file of `size` bytes.
fn check_macho(file: &File, base: u64, len: u64, size: u64) -> Result<(), String> {
    past_end("the Mach-O header", base.checked_add(28), size)?;
    let mut header = [0u8; 32];
    let header_len = 32.min(len) as usize;
    read_at(file, base, &mut header[..header_len])?;
    let little = header[0] == 0xce || header[0] == 0xcf;
    let wide = header[0] == 0xcf || header[3] == 0xcf;
    let header_size = if wide { 32 } else { 28 };
    let ncmds = uint(&header, 16, 4, little);
    let sizeofcmds = uint(&header, 20, 4, little);
    past_end(
        "the load commands",
        sizeofcmds
            .checked_add(header_size)
            .filter(|end| *end <= len),
        len,
    )?;
    let mut commands = vec![0u8; sizeofcmds as usize];
    read_at(file, base + header_size, &mut commands)?;
    let mut at = 0usize;
    for _ in 0..ncmds {
        if at + 8 > commands.len() {
            return Err("damaged Mach-O load commands".to_owned());
        }
        let cmd = uint(&commands, at, 4, little);
        let cmdsize = uint(&commands, at + 4, 4, little) as usize;
        if cmdsize < 8 || at + cmdsize > commands.len() {
            return Err("damaged Mach-O load commands".to_owned());
        }
        const LC_SEGMENT: u64 = 0x1;
        const LC_SEGMENT_64: u64 = 0x19;
        let segment = match cmd {
            LC_SEGMENT_64 if cmdsize >= 56 => Some((
                uint(&commands, at + 40, 8, little),
                uint(&commands, at + 48, 8, little),
            )),
            LC_SEGMENT if cmdsize >= 40 => Some((
                uint(&commands, at + 32, 4, little),
                uint(&commands, at + 36, 4, little),
            )),
            _ => None,
        };
        if let Some((fileoff, filesize)) = segment {
            past_end("a segment", fileoff.checked_add(filesize), len)?;
        }
        at += cmdsize;
    }
    Ok(())
}

/// A universal Mach-O file: each architecture's image must lie inside it.
fn check_fat(file: &File, size: u64) -> Result<(), String> {
    let mut header = [0u8; 8];
    past_end("the universal header", Some(8), size)?;
    read_at(file, 0, &mut header)?;
    let narch = uint(&header, 4, 4, false);
    past_end(
        "the architecture table",
        narch.checked_mul(20).map(|len| len + 8),
        size,
    )?;
    let mut table = vec![0u8; (narch * 20) as usize];
    read_at(file, 8, &mut table)?;
    for arch in table.chunks_exact(20) {
        let offset = uint(arch, 8, 4, false);
        let len = uint(arch, 12, 4, false);
        past_end("an architecture's image", offset.checked_add(len), size)?;
        check_macho(file, offset, len, size)?;
    }
    Ok(())
}

fn check_pe(file: &File, size: u64) -> Result<(), String> {
    let mut dos = [0u8; 64];
    past_end("the DOS header", Some(64), size)?;
    read_at(file, 0, &mut dos)?;
    let pe = uint(&dos, 0x3c, 4, true);
    past_end("the PE header", pe.checked_add(24), size)?;
    let mut coff = [0u8; 24];
    read_at(file, pe, &mut coff)?;
    if &coff[..4] != b"PE\0\0" {
        return Err("not a shared library (damaged PE header)".to_owned());
    }
    let n_sections = uint(&coff, 6, 2, true);
    let optional = uint(&coff, 20, 2, true);
    let table_at = pe + 24 + optional;
    past_end("the section table", Some(table_at + n_sections * 40), size)?;
    let mut table = vec![0u8; (n_sections * 40) as usize];
    read_at(file, table_at, &mut table)?;
    for section in table.chunks_exact(40) {
        let raw_size = uint(section, 16, 4, true);
        let raw_at = uint(section, 20, 4, true);
        past_end("a section", raw_at.checked_add(raw_size), size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary is a complete ELF (or Mach-O, PE) file: every prefix
    /// of it that cuts a segment must be refused, the whole file accepted.
    #[test]
    fn truncated_copies_of_a_real_binary_are_refused() {
        let me = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&me).unwrap();
        let dir = std::env::temp_dir().join(format!("cellrun-libfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let whole = File::open(&me).unwrap();
        assert_eq!(check_structure(&whole, bytes.len() as u64), Ok(()));
        for cut in [
            0,
            3,
            16,
            100,
            2048,
            65_536,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let path = dir.join(format!("cut-{cut}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let file = File::open(&path).unwrap();
            let res = check_structure(&file, cut as u64);
            assert!(res.is_err(), "a copy cut at {cut} bytes passed");
        }
        let text = dir.join("text.so");
        std::fs::write(&text, "not a library at all").unwrap();
        assert_eq!(
            check_structure(&File::open(&text).unwrap(), 20),
            Err("not a loadable library (no ELF, Mach-O or PE header)".to_owned())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
