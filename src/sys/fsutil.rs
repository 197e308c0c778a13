//! Small file-system primitives that must be right every time: atomic writes
//! (temp file in the same directory, fsync, rename, fsync of the directory)
//! and the cleanup of what a killed writer left, atomic symlink switches,
//! writing a whole file system to disk before a switch (`syncfs`), read-ahead
//! hints for cold caches, and RFC 3339 timestamps that honour
//! `SOURCE_DATE_EPOCH`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A file-system operation that failed: what, where and why. The crate's
/// error wraps it as an I/O error (exit 8), keeping its hint.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} `{}`: {source}", path.display())]
pub struct FsError {
    pub action: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        FsError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

type Result<T> = std::result::Result<T, FsError>;

/// Write `bytes` to `path` atomically with `mode`, creating parent directories (0755).
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    create_dirs(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir, &name);
    let tmp = temp_path(dir, &name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(FsError::new("write", path, e));
    }
    Ok(())
}

/// Copy the file `src` to `dest` atomically (a hard link when both are on
/// one file system, else a copy beside `dest`, then a rename), mode 0644.
pub fn copy_in(src: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = temp_path(dir, &name);
    let _ = fs::remove_file(&tmp);
    let result = fs::hard_link(src, &tmp)
        .or_else(|_| {
            fs::copy(src, &tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| fs::rename(&tmp, dest));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(FsError::new("write", dest, e));
    }
    Ok(())
}

/// What marks venvbake's temporary files: `.NAME` + this + the writer's PID.
pub const TEMP_MARK: &str = ".venvbake-tmp-";

/// This process's temporary file for writing `dir/name`: `.NAME.venvbake-tmp-PID`.
pub fn temp_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

/// Remove what a killed writer of `name` in `dir` left behind (an
/// [`atomic_write`], a `bundle -o`): a `.NAME.venvbake-tmp-PID` whose process
/// is gone. A live writer's file is left alone (only one apply of a profile
/// runs at a time, but `fetch` and other profiles share directories). Best
/// effort: a failure changes nothing.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}{TEMP_MARK}");
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let gone = pid
            .parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The directories an operation may create on its way to `dir` (those of
/// `dir` and its ancestors below `stop` that do not exist yet). Unless
/// [`NewDirs::keep`] is called, dropping it removes those that are empty
/// again, deepest first: a refused build leaves nothing behind it, and a
/// directory something else wrote into meanwhile is never removed.
#[derive(Debug)]
pub struct NewDirs {
    dirs: Vec<std::path::PathBuf>,
}

impl NewDirs {
    pub fn note(stop: &Path, dir: &Path) -> Self {
        let mut dirs = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at {
            if d == stop || !d.starts_with(stop) || fs::symlink_metadata(d).is_ok() {
                break;
            }
            dirs.push(d.to_path_buf());
            at = d.parent();
        }
        NewDirs { dirs }
    }

    /// The operation succeeded: what it created stays.
    pub fn keep(mut self) {
        self.dirs.clear();
    }
}

impl Drop for NewDirs {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Only empty directories go (`rmdir`); anything else stays.
            let _ = fs::remove_dir(d);
        }
    }
}

pub fn create_dirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))
}

/// Remove `dir` and everything under it.
pub fn remove_dirs(dir: &Path) -> Result<()> {
    fs::remove_dir_all(dir).map_err(|e| FsError::new("remove", dir, e))
}

/// Write everything the file system holding `path` has in the page cache to
/// disk (`syncfs(2)`): one call for a generation's thousands of files, where
/// an `fsync` per file would cost a journal commit each.
pub fn sync_fs(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| nix::unistd::syncfs(&f).map_err(std::io::Error::from))
        .map_err(|e| FsError::new("write to disk", path, e))
}

/// Ask the kernel to start reading `paths` into the page cache, on a thread
/// of its own, and return at once: each file, and under each directory the
/// compiled modules and extensions (`.pyc`, `.so`). A hint, so every error
/// is ignored. An image build starts with cold caches; the interpreter's
/// standard library is then read piecemeal by every Python process the
/// build starts, each read waiting for the disk.
pub fn prefetch(paths: Vec<std::path::PathBuf>) {
    fn advise(p: &Path) {
        if let Ok(f) = File::open(p) {
            let _ = nix::fcntl::posix_fadvise(
                &f,
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
    }
    fn walk(dir: &Path, depth: usize) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() && depth < 8 {
                walk(&p, depth + 1);
            } else if t.is_file() && p.extension().is_some_and(|x| x == "pyc" || x == "so") {
                advise(&p);
            }
        }
    }
    let _ = std::thread::Builder::new()
        .name("prefetch".into())
        .spawn(move || {
            for p in paths {
                if p.is_dir() {
                    walk(&p, 0);
                } else {
                    advise(&p);
                }
            }
        });
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Point the symlink `link` at `target` with one rename (atomic for readers).
pub fn switch_symlink(link: &Path, target: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("/"));
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.venvbake-link-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        std::os::unix::fs::symlink(target, &tmp)?;
        fs::rename(&tmp, link)?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(FsError::new("switch symlink", link, e));
    }
    Ok(())
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` when given, else now.
pub fn build_epoch(source_date_epoch: Option<&str>) -> u64 {
    source_date_epoch
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// `1970-01-01T00:00:00Z` style UTC timestamp.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let mut year = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    if month <= 2 {
        year += 1;
    }
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_500_000), "2026-11-24T06:00:00Z");
        assert_eq!(build_epoch(Some("1700000000")), 1_700_000_000);
        assert!(build_epoch(Some("garbage")) > 1_700_000_000);
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/f.json");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_removes_what_a_killed_writer_of_the_file_left() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its PID is gone from /proc.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".f.json.venvbake-tmp-{dead}"));
        // PID 1 is alive: a writer that may still rename its file.
        let live = dir.path().join(".f.json.venvbake-tmp-1");
        let other = dir.path().join(format!(".g.json.venvbake-tmp-{dead}"));
        for p in [&stale, &live, &other] {
            fs::write(p, b"half").unwrap();
        }
        atomic_write(&dir.path().join("f.json"), b"whole", 0o644).unwrap();
        assert!(!stale.exists(), "the dead writer's temporary file stays");
        assert!(live.exists(), "a live writer's temporary file was removed");
        assert!(other.exists(), "another file's temporary file was removed");
    }

    #[test]
    fn switch_symlink_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("venv");
        switch_symlink(&link, Path::new("gens/g1")).unwrap();
        switch_symlink(&link, Path::new("gens/g2")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("gens/g2"));
    }
}
