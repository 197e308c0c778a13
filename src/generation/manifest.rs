//! The manifest (`schema_version: 1`): what venvbake built, for people and for
//! downstream tools. Also the per-generation record that makes a generation
//! "complete" and the Ansible local fact that lists every profile on a host.
//!
//! The schema is documented in the README; fields are only ever added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::fsutil::FsError;

/// A manifest, record or fact that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the manifest `{}` is not valid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

type Result<T> = std::result::Result<T, ManifestError>;
use crate::sys::fsutil::atomic_write;
use crate::target::OsRelease;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub tool: Tool,
    pub profile: ProfileInfo,
    pub os: OsRelease,
    pub externally_managed: bool,
    /// The venv's python under the fixed path: what `ansible_python_interpreter` points at.
    pub interpreter: PathBuf,
    pub venv: VenvInfo,
    pub python: PythonInfo,
    pub distributions: Vec<Distribution>,
    /// Who serves each requirement and `[python] system` entry, and why.
    #[serde(default)]
    pub decisions: Vec<crate::decide::Decision>,
    /// Distributions pip installed into the system interpreter (last resort).
    #[serde(default)]
    pub system_pip: Vec<SystemPipRecord>,
    pub apt: Vec<AptPackage>,
    pub built_at: String,
    /// Where `apply --adopt` moved what stood at the fixed path before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<PathBuf>,
    /// The profile that owned the venv path before `apply --take-over`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
    /// Where this manifest and the Ansible fact are (target paths); absent
    /// in manifests of older releases, which used the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<OutputPaths>,
}

/// The profile's output paths, so `verify` can check the fact by the manifest alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputPaths {
    pub manifest: PathBuf,
    pub ansible_fact: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemPipRecord {
    pub name: String,
    pub version: String,
    /// Whether `--break-system-packages` was needed (the interpreter is externally managed).
    pub break_system_packages: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    pub fn current() -> Self {
        Tool {
            name: "venvbake".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    /// The profile's file name (no build-host directories).
    pub file: String,
    pub sha256: String,
    pub requirements: FileInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub file: String,
    pub sha256: String,
    /// The lock's format: `requirements` (a hashed requirements file) or
    /// `pylock` (PEP 751). Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::input::requirements::LockFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenvInfo {
    /// The fixed path (a symlink).
    pub path: PathBuf,
    /// The active generation's directory name.
    pub generation: String,
    /// The active generation's real path.
    pub generation_path: PathBuf,
    pub system_site_packages: bool,
    /// Hash of everything the generation was built from.
    pub fingerprint: String,
    /// Content hash of the generation's file tree (see `verify::tree_sha256`):
    /// two images with the same value carry the same venv.
    #[serde(default)]
    pub tree_sha256: Option<String>,
    /// Requirements whose modules the import check left out (`[venv] import_check_skip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_check_skip: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// The system interpreter the venv was created with.
    pub base: PathBuf,
    pub version: String,
    /// `sysconfig.get_config_var("SOABI")`, e.g. `cpython-311-x86_64-linux-gnu`.
    pub abi: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub name: String,
    pub version: String,
    /// `venv`: installed into the venv by venvbake; `apt`: provided by an OS package.
    pub source: String,
    /// sha256 of the file it was installed from (null for pip's own bootstrap).
    pub sha256: Option<String>,
    /// Whether the requirements file names it (false for pip, setuptools).
    pub requirement: bool,
    /// The Debian package that provides it (`source: "apt"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AptPackage {
    pub name: String,
    pub version: String,
    /// Why the profile needs it: `profile` (`[apt] packages`) or `venv-module`.
    pub reason: String,
}

/// Written into each generation as its completion mark (`.venvbake/generation.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub schema_version: u32,
    pub generation: String,
    pub fingerprint: String,
    pub python: PythonInfo,
    pub externally_managed: bool,
    pub distributions: Vec<Distribution>,
    pub built_at: String,
    /// Resolved `system_site_packages` of this generation.
    #[serde(default)]
    pub system_site_packages: bool,
    /// Who served each requirement when this generation was built.
    #[serde(default)]
    pub decisions: Vec<crate::decide::Decision>,
    /// Content hash of the generation's file tree.
    #[serde(default)]
    pub tree_sha256: Option<String>,
    /// Requirements whose modules this generation's import check left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_check_skip: Vec<String>,
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn write(&self, host_path: &Path) -> Result<()> {
        Ok(atomic_write(host_path, self.to_json().as_bytes(), 0o644)?)
    }
}

/// Read a manifest; `Ok(None)` when absent.
pub fn read(host_path: &Path) -> Result<Option<Manifest>> {
    let text = match std::fs::read_to_string(host_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(FsError {
                action: "read manifest",
                path: host_path.to_path_buf(),
                source: e,
            }
            .into())
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ManifestError::Invalid {
            path: host_path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Mark a generation complete: write its record (temp file, fsync, rename).
pub fn write_generation(host_gen_dir: &Path, record: &GenerationRecord) -> Result<()> {
    let mut text = serde_json::to_string_pretty(record).unwrap_or_default();
    text.push('\n');
    Ok(atomic_write(
        &record_path(host_gen_dir),
        text.as_bytes(),
        0o644,
    )?)
}

/// Where a generation keeps its completion record.
fn record_path(host_gen_dir: &Path) -> std::path::PathBuf {
    host_gen_dir.join(".venvbake/generation.json")
}

/// Read a generation's completion record; None when missing or unreadable.
pub fn read_generation(host_gen_dir: &Path) -> Option<GenerationRecord> {
    let text = std::fs::read_to_string(record_path(host_gen_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

// ---------------------------------------------------------------- fact

/// The Ansible local fact (`ansible_local.venvbake`): every profile on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub schema_version: u32,
    pub profiles: BTreeMap<String, FactEntry>,
}

/// What the fact says of one profile: only what stays true across
/// generations, so the fact never disagrees with the active generation
/// (the manifest, reached through the fixed path, has the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactEntry {
    pub interpreter: PathBuf,
    pub venv: PathBuf,
    pub manifest: PathBuf,
}

impl FactEntry {
    pub fn new(venv: &Path, manifest_path: &Path) -> Self {
        FactEntry {
            interpreter: venv.join("bin/python"),
            venv: venv.to_path_buf(),
            manifest: manifest_path.to_path_buf(),
        }
    }
}

/// Where a generation keeps its own manifest.
pub fn in_generation(generation_dir: &Path) -> PathBuf {
    generation_dir.join(".venvbake/manifest.json")
}

/// The relative symlink target that makes `manifest_path` read the active
/// generation's manifest through the venv's fixed path: switching the fixed
/// path switches the manifest in the same rename.
pub fn link_target(manifest_path: &Path, venv_path: &Path) -> PathBuf {
    let depth = manifest_path
        .parent()
        .map(|p| p.components().count().saturating_sub(1))
        .unwrap_or(0);
    let mut t = PathBuf::new();
    for _ in 0..depth {
        t.push("..");
    }
    t.push(venv_path.strip_prefix("/").unwrap_or(venv_path));
    t.push(".venvbake/manifest.json");
    t
}

/// Read the fact file; an absent or unparsable file reads as empty.
pub fn read_fact(host_path: &Path) -> Fact {
    std::fs::read_to_string(host_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Fact>(&t).ok())
        .unwrap_or(Fact {
            schema_version: SCHEMA_VERSION,
            profiles: BTreeMap::new(),
        })
}

/// Change the fact file with `change` (which says whether it changed
/// anything), keeping every other profile's entry; written only when it
/// did. Mode 0644: never executable, because Ansible *executes* executable
/// fact files. Callers hold the target lock ([`crate::generation::locks::target`]):
/// this is a read, a change and a write.
pub fn update_fact(host_path: &Path, change: impl FnOnce(&mut Fact) -> bool) -> Result<()> {
    let mut fact = read_fact(host_path);
    if !change(&mut fact) && host_path.is_file() {
        return Ok(());
    }
    fact.schema_version = SCHEMA_VERSION;
    let mut text = serde_json::to_string_pretty(&fact).unwrap_or_default();
    text.push('\n');
    Ok(atomic_write(host_path, text.as_bytes(), 0o644)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: &str) -> FactEntry {
        FactEntry {
            interpreter: PathBuf::from(i),
            venv: "/opt/v".into(),
            manifest: "/var/lib/venvbake/a.json".into(),
        }
    }

    #[test]
    fn manifest_links_through_the_fixed_path() {
        assert_eq!(
            link_target(
                Path::new("/var/lib/venvbake/ansible.json"),
                Path::new("/opt/venvs/ansible")
            ),
            Path::new("../../../opt/venvs/ansible/.venvbake/manifest.json")
        );
        assert_eq!(
            link_target(Path::new("/m.json"), Path::new("/srv/v")),
            Path::new("srv/v/.venvbake/manifest.json")
        );
    }

    #[test]
    fn fact_keeps_other_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("facts.d/venvbake.fact");
        let set = |name: &str, i: &str| {
            update_fact(&p, |f| {
                f.profiles.insert(name.into(), entry(i));
                true
            })
            .unwrap()
        };
        set("a", "/opt/a/bin/python");
        set("b", "/opt/b/bin/python");
        set("a", "/opt/a2/bin/python");
        let f = read_fact(&p);
        assert_eq!(f.profiles.len(), 2);
        assert_eq!(f.profiles["a"].interpreter, Path::new("/opt/a2/bin/python"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "an executable fact would be run by Ansible");
    }
}
