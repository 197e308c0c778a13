//! venvbake's own locks, kept in the build host's runtime directory
//! (`/run/venvbake`), never in the target: a refused or read-only run leaves
//! nothing in an image, and a lock file can never outlive the lock.
//!
//! - The **venv lock**, one per venv path of a target, is held for a whole
//!   apply, rollback or gc. Two runs for one path never interleave, whichever
//!   profiles they come from, so the check that a path has one owner cannot
//!   race.
//! - The **target lock**, one per target, is held only while outputs that
//!   every profile of the target shares (the Ansible fact, another profile's
//!   entries in it) are read, changed and written, so concurrent applies of
//!   different profiles lose no update.
//!
//! Both are `flock`s: the kernel drops them when venvbake exits, even after
//! `kill -9`. Always take the venv lock first and the target lock second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::target::Target;

/// A lock held until dropped.
#[derive(Debug)]
pub struct Held {
    _file: std::fs::File,
}

/// Where the lock files live: the host's runtime directory (a tmpfs, gone at
/// boot), or the temporary directory where there is none.
fn dir() -> PathBuf {
    if Path::new("/run").is_dir() {
        PathBuf::from("/run/venvbake")
    } else {
        std::env::temp_dir().join("venvbake-locks")
    }
}

/// A short, stable name for what a lock covers (the target's canonical
/// root, and the venv path): paths may be long and hold any byte.
fn key(parts: &[&Path]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
    }
    h.finalize()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The venv lock of `venv_path` on `target`; calls `on_wait` once if
/// another run holds it, and gives up after `timeout`.
pub fn venv(
    target: &Target,
    venv_path: &Path,
    timeout: Duration,
    on_wait: impl FnOnce(),
) -> Result<Held> {
    let file = dir().join(format!("venv-{}.lock", key(&[&target.root, venv_path])));
    take(&file, venv_path, timeout, on_wait)
}

/// The target lock of `target`, for outputs every profile shares.
pub fn target(target: &Target, timeout: Duration) -> Result<Held> {
    let file = dir().join(format!("target-{}.lock", key(&[&target.root])));
    take(&file, &target.root, timeout, || {})
}

fn take(file: &Path, covers: &Path, timeout: Duration, on_wait: impl FnOnce()) -> Result<Held> {
    let parent = file.parent().unwrap_or(Path::new("/"));
    crate::sys::fsutil::create_dirs(parent)?;
    let handle = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file)
        .map_err(|e| Error::io("open lock file", file, e))?;
    let deadline = Instant::now() + timeout;
    let mut on_wait = Some(on_wait);
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(Held { _file: handle }),
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Err(Error::Busy {
                        path: covers.to_path_buf(),
                        timeout_s: timeout.as_secs(),
                    });
                }
                if let Some(f) = on_wait.take() {
                    f();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", file, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_root_and_path_and_never_hold_the_path() {
        let a = key(&[Path::new("/t1"), Path::new("/opt/v")]);
        let b = key(&[Path::new("/t2"), Path::new("/opt/v")]);
        let c = key(&[Path::new("/t1"), Path::new("/opt/w")]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn a_held_venv_lock_makes_the_second_run_wait_then_give_up() {
        let root = tempfile::tempdir().unwrap();
        let t = Target::new(Some(root.path())).unwrap();
        let venv_path = Path::new("/opt/venvs/lock-test");
        let first = venv(&t, venv_path, Duration::ZERO, || {}).unwrap();
        let mut waited = false;
        let second = venv(&t, venv_path, Duration::from_millis(120), || waited = true);
        assert!(waited, "the second run says it waits");
        match second {
            Err(Error::Busy { path, .. }) => assert_eq!(path, venv_path),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        venv(&t, venv_path, Duration::ZERO, || {}).unwrap();
        assert!(
            std::fs::read_dir(root.path()).unwrap().next().is_none(),
            "nothing is created in the target"
        );
    }
}
