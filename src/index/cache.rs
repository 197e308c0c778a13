//! The download cache on the build host: files by their sha256, so a second
//! image build from the same lock downloads nothing and a changed pin
//! downloads only what changed.
//!
//! Layout: `DIR/sha256/ab/abcdef…/FILENAME` (the file keeps its name: the
//! wheel's tags are read from it). A file is put there by a rename, so a
//! reader sees all of it or nothing, and two applies that download the same
//! file at once both end with a good copy. A cached file is hashed again
//! before it is used; one that no longer matches is removed, and downloaded
//! anew. Names carry no URL and no credentials. Never inside an image.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        Cache {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the file with this sha256 (lowercase hex).
    fn slot(&self, sha256: &str) -> PathBuf {
        let sha = sha256.to_ascii_lowercase();
        self.root
            .join("sha256")
            .join(sha.get(..2).unwrap_or("xx"))
            .join(sha)
    }

    /// Where a file of this name and hash is (or will be) kept.
    pub fn path(&self, sha256: &str, filename: &str) -> PathBuf {
        self.slot(sha256).join(filename)
    }

    /// The cached file, if present and still matching its hash. A damaged
    /// one is removed (the caller downloads it again).
    pub fn get(&self, sha256: &str, filename: &str) -> Option<PathBuf> {
        let p = self.path(sha256, filename);
        if !p.is_file() {
            return None;
        }
        match crate::sys::codec::sha256_file_hex(&p) {
            Ok(h) if h.eq_ignore_ascii_case(sha256) => Some(p),
            _ => {
                let _ = std::fs::remove_file(&p);
                None
            }
        }
    }

    /// Make the slot for a file, to download into.
    pub fn prepare(&self, sha256: &str) -> std::io::Result<PathBuf> {
        let dir = self.slot(sha256);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_dropped_and_a_good_one_served() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path());
        let body = b"wheel bytes";
        let sha = crate::sys::codec::hex_sha256(body);
        assert!(c.get(&sha, "x-1-py3-none-any.whl").is_none());
        let slot = c.prepare(&sha).unwrap();
        std::fs::write(slot.join("x-1-py3-none-any.whl"), body).unwrap();
        let got = c.get(&sha, "x-1-py3-none-any.whl").unwrap();
        assert!(got.starts_with(dir.path().join("sha256").join(&sha[..2])));
        std::fs::write(&got, b"tampered").unwrap();
        assert!(c.get(&sha, "x-1-py3-none-any.whl").is_none());
        assert!(!got.exists());
    }
}
