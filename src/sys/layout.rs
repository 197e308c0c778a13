//! Where Python's files are, said once: a venv's `site-packages` (as
//! `python -m venv` lays it out for CPython) and the directories Debian's
//! system interpreter reads distributions from. The build, the checks,
//! `verify` and `sbom` all ask here, so they never disagree about a path.

use std::path::{Path, PathBuf};

/// `lib/pythonX.Y/site-packages` of a CPython venv at `root` (a host or a
/// target path), when its `X.Y` is known.
pub fn venv_site(root: &Path, major: u32, minor: u32) -> PathBuf {
    root.join(format!("lib/python{major}.{minor}/site-packages"))
}

/// The `site-packages` of an existing venv at `root` (host path): the one
/// `lib/python*/site-packages` directory there.
pub fn find_venv_site(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("lib"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
}

/// The directories (target paths) Debian's and Ubuntu's system
/// interpreter `X.Y` reads distributions from, in the order that a later
/// one wins a name (the reverse of `sys.path`): apt's shared directory,
/// the version's own, then the local administrator's. Without a known
/// version, only apt's shared directory.
pub fn system_site_dirs(minor: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib/python3/dist-packages")];
    if let Some(m) = minor.filter(|m| !m.is_empty()) {
        dirs.push(PathBuf::from(format!("/usr/lib/python{m}/dist-packages")));
        dirs.push(PathBuf::from(format!(
            "/usr/local/lib/python{m}/dist-packages"
        )));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_venv_site_is_found_where_it_is_made() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_venv_site(dir.path()), None);
        let made = venv_site(dir.path(), 3, 13);
        std::fs::create_dir_all(&made).unwrap();
        std::fs::create_dir_all(dir.path().join("lib/other/site-packages")).unwrap();
        assert_eq!(find_venv_site(dir.path()), Some(made));
    }

    #[test]
    fn the_system_reads_three_directories_local_last() {
        let dirs = system_site_dirs(Some("3.11"));
        assert_eq!(
            dirs,
            [
                Path::new("/usr/lib/python3/dist-packages"),
                Path::new("/usr/lib/python3.11/dist-packages"),
                Path::new("/usr/local/lib/python3.11/dist-packages"),
            ]
        );
        assert_eq!(system_site_dirs(None).len(), 1);
    }
}
