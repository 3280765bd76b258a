//! Atomic file replacement, for every file in the state directory that a crash must never
//! leave half-written (the position file today; the snapshot's progress file next).
//!
//! Design note: write a temporary file beside the target, fsync it, rename it over the target,
//! then fsync the directory, because the rename is durable only once the directory is. A crash
//! at any instant leaves either the old file or the new one. Every error is returned: an fsync
//! that fails is never ignored, since the next write could not be trusted either.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably (see the module note).
///
/// The temporary file is named after the target and this process's id, so a stray one left by
/// an earlier crash is never reused; the name is cut so that it fits a file-name limit of 255
/// bytes whatever the target's length.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let tmp = dir.join(format!(".{}.{}.tmp", &name[..cut], std::process::id()));
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("p.json");
        write_atomically(&path, b"one\n").unwrap();
        write_atomically(&path, b"two\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["p.json"]);
        // A long name still gets a temporary name that fits.
        let long = dir.path().join(format!("{}.json", "x".repeat(250)));
        write_atomically(&long, b"{}").unwrap();
        assert_eq!(fs::read(&long).unwrap(), b"{}");
    }

    #[test]
    fn an_error_is_returned_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        // The parent is a file: nothing can be written under it.
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        assert!(write_atomically(&blocker.join("p.json"), b"x").is_err());
    }
}
