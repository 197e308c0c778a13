//! The system venvbake changes: the running host (`/`) or an image tree (`--root DIR`).
//!
//! The root is a parameter everywhere: the same code reads `etc/os-release`,
//! dpkg's status database and the interpreter under `/` in a Packer VM and
//! under an image tree. Everything in this file only *reads* the target; it never runs
//! a command, so the plan can be made from it without side effects. Paths
//! inside the target are resolved the way the chrooted system would resolve
//! them, so an absolute symlink in a tree never leads back onto the host.
//!
//! Beside it: the distributions installed in a site directory (`dists`),
//! what apt says about packages without changing anything (`apt_query`),
//! the private mount namespace of image-tree builds (`ns`), and waiting for
//! cloud-init's first boot (`cloudinit`).

pub mod apt_query;
pub mod cloudinit;
pub mod dists;
pub mod ns;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the target root `{}` is not a directory", root.display())]
    NoRoot { root: PathBuf },
    #[error("the target `{}` has no apt/dpkg (`{missing}` is missing)", root.display())]
    NoApt { root: PathBuf, missing: String },
    #[error("the interpreter `{}` does not exist in the target `{}`", python.display(), root.display())]
    NoPython { root: PathBuf, python: PathBuf },
    #[error("the target's `{}` could not be read: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("the interpreter `{}` cannot create venvs: {message}", python.display())]
    NoVenvModule { python: PathBuf, message: String },
    #[error("`--root` needs root: venvbake chroots into the tree and mounts /proc and /dev there in a private namespace")]
    NotRoot,
}

impl TargetError {
    pub fn hint(&self) -> String {
        match self {
            TargetError::NoRoot { .. } => "give `--root` the directory of an unpacked image tree".into(),
            TargetError::NoApt { .. } => "venvbake serves Debian and Ubuntu systems (apt and dpkg); is this the right root?".into(),
            TargetError::NoPython { .. } => "install the interpreter (e.g. `python3`) in the image first, or set `[venv] python`".into(),
            TargetError::Unreadable { .. } => "check the target tree; it may be incomplete".into(),
            TargetError::NoVenvModule { .. } => "install the interpreter's venv package (`python3-venv` / `python3.X-venv`)".into(),
            TargetError::NotRoot => "run venvbake as root (`sudo venvbake ...`); nothing was read or changed".into(),
        }
    }
}

/// The target system, identified by its root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `/` for the running system, or the image tree.
    pub root: PathBuf,
}

impl Target {
    pub fn new(root: Option<&Path>) -> Result<Self, TargetError> {
        let root = match root {
            None => PathBuf::from("/"),
            Some(r) => {
                let abs = std::fs::canonicalize(r).map_err(|_| TargetError::NoRoot {
                    root: r.to_path_buf(),
                })?;
                if !abs.is_dir() {
                    return Err(TargetError::NoRoot { root: abs });
                }
                abs
            }
        };
        Ok(Target { root })
    }

    /// The target of a command line's `--root`: like [`Target::new`], and
    /// an image tree needs root, checked before anything of it is read, so
    /// an unprivileged run stops here with one clear message instead of
    /// failing later in ways that look like drift or a broken apt cache.
    pub fn for_command(root: Option<&Path>) -> Result<Self, TargetError> {
        let target = Target::new(root)?;
        if target.is_tree() && !nix::unistd::geteuid().is_root() {
            return Err(TargetError::NotRoot);
        }
        Ok(target)
    }

    /// Whether commands must be chrooted (an image tree rather than `/`).
    pub fn is_tree(&self) -> bool {
        self.root != Path::new("/")
    }

    /// The chroot directory for commands, if any.
    pub fn chroot(&self) -> Option<&Path> {
        self.is_tree().then_some(self.root.as_path())
    }

    /// The host path of an absolute target path, resolving symlinks of its
    /// existing components inside the root (never escaping it).
    pub fn host_path(&self, target_path: &Path) -> PathBuf {
        if !self.is_tree() {
            return target_path.to_path_buf();
        }
        self.root.join(
            resolve_in_root(&self.root, target_path)
                .strip_prefix("/")
                .unwrap_or(Path::new("")),
        )
    }

    /// Like [`Target::host_path`], but the last component is not followed
    /// (for symlinks venvbake manages itself).
    pub fn host_path_nofollow(&self, target_path: &Path) -> PathBuf {
        match (target_path.parent(), target_path.file_name()) {
            (Some(parent), Some(name)) => self.host_path(parent).join(name),
            _ => self.host_path(target_path),
        }
    }

    /// Host paths of what starting the interpreter `python` (a target path)
    /// reads: the binary its symlinks end at and, when that is named
    /// `pythonX.Y` (Debian's and Ubuntu's layout), `/usr/lib/pythonX.Y`.
    /// A guess, for [`crate::sys::fsutil::prefetch`] only.
    pub fn interpreter_files(&self, python: &Path) -> Vec<PathBuf> {
        let bin = if self.is_tree() {
            self.host_path(python)
        } else {
            std::fs::canonicalize(python).unwrap_or_else(|_| python.to_path_buf())
        };
        let mut out = Vec::new();
        if let Some(name) = bin.file_name().and_then(|n| n.to_str()) {
            let version = name.strip_prefix("python").unwrap_or("");
            let mut parts = version.split('.');
            let numeric = |p: Option<&str>| {
                p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            };
            if numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none() {
                out.push(self.host_path(&Path::new("/usr/lib").join(name)));
            }
        }
        out.push(bin);
        out
    }

    /// Read a file of the target (None when it does not exist).
    pub fn read(&self, target_path: &Path) -> Result<Option<String>, TargetError> {
        let p = self.host_path(target_path);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TargetError::Unreadable {
                path: p,
                message: e.to_string(),
            }),
        }
    }

    pub fn os_release(&self) -> Result<OsRelease, TargetError> {
        for p in ["/etc/os-release", "/usr/lib/os-release"] {
            if let Some(text) = self.read(Path::new(p))? {
                return Ok(OsRelease::parse(&text));
            }
        }
        Ok(OsRelease::default())
    }

    /// Check the target has apt and dpkg.
    pub fn require_apt(&self) -> Result<(), TargetError> {
        for tool in ["/usr/bin/apt-get", "/usr/bin/dpkg", "/var/lib/dpkg/status"] {
            if !self.host_path(Path::new(tool)).exists() {
                return Err(TargetError::NoApt {
                    root: self.root.clone(),
                    missing: tool.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Installed packages (name -> version) from dpkg's status database.
    pub fn dpkg_installed(&self) -> Result<BTreeMap<String, String>, TargetError> {
        let text = self
            .read(Path::new("/var/lib/dpkg/status"))?
            .unwrap_or_default();
        Ok(parse_dpkg_status(&text))
    }

    /// Whether apt has package lists (otherwise `apt-get update` is needed).
    pub fn has_apt_lists(&self) -> bool {
        let dir = self.host_path(Path::new("/var/lib/apt/lists"));
        std::fs::read_dir(dir)
            .map(|entries| {
                entries.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with("_Packages")
                        || e.file_name().to_string_lossy().ends_with("_Packages.lz4")
                })
            })
            .unwrap_or(false)
    }

    /// Whether the interpreter's stdlib carries PEP 668's `EXTERNALLY-MANAGED`.
    pub fn externally_managed(&self, interp: &Interpreter) -> bool {
        interp.minor.as_ref().is_some_and(|m| {
            self.host_path(Path::new(&format!("/usr/lib/python{m}/EXTERNALLY-MANAGED")))
                .is_file()
        })
    }

    /// Distributions the system interpreter sees (Debian's dist-packages
    /// directories), as normalised name -> version.
    pub fn system_dists(&self, interp: &Interpreter) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in crate::sys::layout::system_site_dirs(interp.minor.as_deref()) {
            for (name, info) in crate::target::dists::scan(&self.host_path(&d)) {
                out.insert(name.to_string(), info.version);
            }
        }
        out
    }

    /// Resolve the interpreter: its final target path, and the `X.Y` its name implies.
    pub fn interpreter(&self, python: &Path) -> Result<Interpreter, TargetError> {
        let resolved = resolve_in_root(&self.root, python);
        let host = self
            .root
            .join(resolved.strip_prefix("/").unwrap_or(&resolved));
        let meta = std::fs::metadata(&host).map_err(|_| TargetError::NoPython {
            root: self.root.clone(),
            python: python.to_path_buf(),
        })?;
        if !meta.is_file() {
            return Err(TargetError::NoPython {
                root: self.root.clone(),
                python: python.to_path_buf(),
            });
        }
        let minor = resolved
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("python"))
            .filter(|v| {
                let mut parts = v.split('.');
                matches!((parts.next(), parts.next(), parts.next()),
                    (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
            })
            .map(str::to_string);
        use std::os::unix::fs::MetadataExt;
        // The stdlib's `venv` (Debian ships it in libpython3.X-stdlib;
        // python3.X-venv adds only ensurepip and the wheels it installs).
        let venv_module = minor.as_ref().is_none_or(|m| {
            self.host_path(&Path::new("/usr/lib").join(format!("python{m}/venv/__init__.py")))
                .is_file()
        });
        Ok(Interpreter {
            path: python.to_path_buf(),
            resolved,
            venv_module,
            minor,
            // Size and mtime (dpkg keeps the package's): they change when an
            // upgrade replaces the interpreter, and are the same in two
            // images built from the same packages (reproducible builds).
            identity: format!("{}:{}", meta.len(), meta.mtime()),
        })
    }
}

/// What the target's interpreter looks like from the outside (no command run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// As named in the profile.
    pub path: PathBuf,
    /// After following symlinks inside the target.
    pub resolved: PathBuf,
    /// `3.11` when the resolved file is named `python3.11`.
    pub minor: Option<String>,
    /// Size and mtime: changes when a package upgrade replaces it.
    pub identity: String,
    /// The stdlib's `venv` module is there (assumed for an interpreter not
    /// named `python3.X`: the probe tells).
    pub venv_module: bool,
}

impl Interpreter {
    /// The Debian package that makes `python3.X -m venv` work.
    pub fn venv_package(&self) -> Option<String> {
        let under_usr = self.resolved.starts_with("/usr/bin");
        self.minor
            .as_ref()
            .filter(|_| under_usr)
            .map(|m| format!("python{m}-venv"))
    }
}

/// The fields of os-release that venvbake records.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    pub id: String,
    #[serde(default)]
    pub id_like: String,
    pub version_id: String,
    #[serde(default)]
    pub version_codename: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// The keys a profile's per-release locks are looked up by:
    /// `ID-VERSION_ID` (`debian-12`), then `ID-VERSION_CODENAME`
    /// (`debian-forky`: a testing release has no `VERSION_ID`).
    pub fn release_keys(&self) -> Vec<String> {
        [&self.version_id, &self.version_codename]
            .into_iter()
            .filter(|v| !v.is_empty() && !self.id.is_empty())
            .map(|v| format!("{}-{v}", self.id))
            .collect()
    }

    pub fn parse(text: &str) -> Self {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v)
                .to_string();
            match k.trim() {
                "ID" => os.id = v,
                "ID_LIKE" => os.id_like = v,
                "VERSION_ID" => os.version_id = v,
                "VERSION_CODENAME" => os.version_codename = v,
                "PRETTY_NAME" => os.pretty_name = v,
                _ => {}
            }
        }
        os
    }
}

/// Parse dpkg's status file into installed name -> version.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.entry(n.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out
}

/// Resolve `path` as a process chrooted at `root` would: absolute symlinks
/// restart at `root`, `..` never climbs above it. Missing components are
/// kept as they are. The result is an absolute path *inside* the target.
pub fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::from("/");
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        match std::fs::read_link(&host) {
            Ok(link) if hops < 40 => {
                hops += 1;
                if link.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                for c in link.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn interpreter_files_follow_the_symlinks_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/python3.11")).unwrap();
        std::fs::write(root.join("usr/bin/python3.11"), b"").unwrap();
        // Absolute, as Debian's alternatives are: resolved inside the root.
        symlink("/usr/bin/python3.11", root.join("usr/bin/python3")).unwrap();
        std::fs::write(root.join("usr/bin/mypython"), b"").unwrap();
        let t = Target::new(Some(&root)).unwrap();
        assert_eq!(
            t.interpreter_files(Path::new("/usr/bin/python3")),
            vec![
                root.join("usr/lib/python3.11"),
                root.join("usr/bin/python3.11")
            ]
        );
        // Another layout: only the binary.
        assert_eq!(
            t.interpreter_files(Path::new("/usr/bin/mypython")),
            vec![root.join("usr/bin/mypython")]
        );
    }

    #[test]
    fn os_release_parses_quotes() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os.version_codename, "bookworm");
    }

    #[test]
    fn dpkg_status_keeps_installed_only() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1.0-1\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nStatus: install ok installed\nMulti-Arch: same\nVersion: 1:3.2~rc1-1+b1\nDescription: x\n long\n";
        let m = parse_dpkg_status(text);
        assert_eq!(m.get("a").map(String::as_str), Some("1.0-1"));
        assert!(!m.contains_key("b"));
        assert_eq!(m.get("c").map(String::as_str), Some("1:3.2~rc1-1+b1"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/python3.11"), "").unwrap();
        symlink("python3.11", root.join("usr/bin/python3")).unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("/", root.join("escape")).unwrap();
        symlink("../../../../../etc", root.join("usr/bin/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/usr/bin/python3")),
            Path::new("/usr/bin/python3.11")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/bin/python3")),
            Path::new("/usr/bin/python3.11")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/escape/usr/bin/x")),
            Path::new("/usr/bin/x")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/usr/bin/up/passwd")),
            Path::new("/etc/passwd")
        );
        let t = Target {
            root: root.to_path_buf(),
        };
        assert_eq!(t.host_path(Path::new("/escape/etc")), root.join("etc"));
        let i = t.interpreter(Path::new("/usr/bin/python3")).unwrap();
        assert_eq!(i.minor.as_deref(), Some("3.11"));
        assert_eq!(i.venv_package().as_deref(), Some("python3.11-venv"));
    }

    #[test]
    fn symlink_loops_terminate() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let _ = resolve_in_root(dir.path(), Path::new("/a/x"));
    }
}
