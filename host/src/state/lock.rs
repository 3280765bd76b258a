//! One running pipeline per state directory.
//!
//! Design note: two `sluice run` processes writing the same position file would each save
//! positions the other never acknowledged, and a restart of either could skip changes. So `run`
//! takes an exclusive advisory lock (`flock`) on `{state_dir}/sluice.lock` for the life of the
//! process and refuses to start when another process holds it. The kernel releases the lock when
//! the process exits, however it exits (`kill -9` included), so a stale lock never blocks a
//! restart. The file also records the holder's pid and tables, for the error message only.
//! `sluice check` reads the state directory without taking the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::StateError;

/// The lock file's name inside the state directory.
pub(crate) const LOCK_FILE: &str = "sluice.lock";

/// Held for as long as this process runs the pipeline; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the state directory's lock, creating the directory if needed. `owner` describes this
    /// pipeline (for instance its tables) in the message another instance would see.
    pub(crate) fn acquire(state_dir: &Path, owner: &str) -> Result<StateLock, StateError> {
        let path = state_dir.join(LOCK_FILE);
        let werr = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(werr)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(werr)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(StateError::Locked {
                    dir: state_dir.to_owned(),
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(werr(source)),
        }
        // Ours now: record who holds it. A failure here is cosmetic (the lock itself is held).
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "pid {} ({owner})", std::process::id()));
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "shop.orders").unwrap();
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just as another process would.
        let err = StateLock::acquire(dir.path(), "shop.other").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StateError::Locked { .. }), "{msg}");
        assert!(msg.contains("another Sluice instance"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("shop.orders"), "{msg}");
        drop(first);
        let _again = StateLock::acquire(dir.path(), "shop.other").unwrap();
        assert!(dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn creates_a_missing_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let _lock = StateLock::acquire(&nested, "t").unwrap();
        assert!(nested.join(LOCK_FILE).exists());
    }
}
