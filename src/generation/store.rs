//! The generation store: everything about where generations live and how
//! one becomes the venv. Their names (`gN-<fingerprint>`) and directory
//! (`<venv path>.generations`, the only place venvbake ever removes from),
//! the fixed path's symlink, the venv path's lock, the commit (manifest,
//! manifest link and Ansible fact, then the switch in one rename), and which
//! generations go. Apply, rollback, gc, verify and bundle all use it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::generation::manifest::{self, FactEntry, GenerationRecord, Manifest};
use crate::input::profile::Profile;
use crate::sys::codec::hex_sha256;
use crate::sys::report::Reporter;
use crate::target::Target;

/// Bumped when the way generations are built changes, so old ones are rebuilt.
const BUILD_FORMAT: &str = "venvbake-generation-v1";

/// Everything a generation is built from; its hash names the generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inputs {
    pub venv_path: PathBuf,
    pub python: PathBuf,
    pub python_identity: String,
    pub requirements_sha256: String,
    pub system_site_packages: bool,
    pub allow_sdist: bool,
    /// pip (and setuptools where ensurepip adds it) in the venv.
    #[serde(default = "yes")]
    pub pip: bool,
    /// Requirements the import check leaves out (`[venv] import_check_skip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_check_skip: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Inputs {
    pub fn fingerprint(&self) -> String {
        let text = format!(
            "{BUILD_FORMAT}\nvenv_path={}\npython={}\npython_identity={}\nrequirements={}\nsystem_site_packages={}\nallow_sdist={}\n",
            self.venv_path.display(),
            self.python.display(),
            self.python_identity,
            self.requirements_sha256,
            self.system_site_packages,
            self.allow_sdist
        );
        // Only a venv without pip says so: venvs with pip keep the
        // fingerprints of the releases that always installed it.
        let mut text = if self.pip { text } else { text + "pip=false\n" };
        // Likewise only a skip list says so (a generation checked less is
        // another generation).
        if !self.import_check_skip.is_empty() {
            text.push_str(&format!(
                "import_check_skip={}\n",
                self.import_check_skip.join(",")
            ));
        }
        hex_sha256(text.as_bytes())
    }
}

/// What is at the venv's fixed path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Missing,
    /// A symlink to this generation name (inside the generations directory).
    Generation(String),
    /// A symlink somewhere else, or a real file or directory: never touched.
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationState {
    pub name: String,
    pub number: u32,
    pub record: Option<GenerationRecord>,
}

/// `<venv path>.generations`: venvbake's own directory; nothing outside it is ever removed.
pub fn generations_dir(venv_path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.generations", venv_path.display()))
}

/// `g12-1a2b3c4d` -> 12.
pub fn generation_number(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('g')?;
    let (n, hash) = rest.split_once('-')?;
    if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    n.parse().ok()
}

/// The generation the fixed path's symlink points at, if it is venvbake's.
pub fn generation_of_link(host_link: &Path, venv_path: &Path) -> Option<String> {
    let dest = std::fs::read_link(host_link).ok()?;
    let gens_name = generations_dir(venv_path)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let mut comps = dest.components();
    match (comps.next(), comps.next(), comps.next()) {
        (Some(a), Some(b), None) if a.as_os_str() == gens_name.as_str() => {
            Some(b.as_os_str().to_string_lossy().into_owned())
        }
        _ => None,
    }
}

/// What stands at the venv's fixed path, and the generations beside it
/// (oldest first): all that `gc` needs to know.
pub fn observe_generations(venv_path: &Path, target: &Target) -> (Link, Vec<GenerationState>) {
    let venv_host = target.host_path_nofollow(venv_path);
    let link = match std::fs::symlink_metadata(&venv_host) {
        Err(_) => Link::Missing,
        Ok(_) => match generation_of_link(&venv_host, venv_path) {
            Some(g) => Link::Generation(g),
            None => Link::Foreign,
        },
    };
    let gens_host = target.host_path(&generations_dir(venv_path));
    let mut generations = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&gens_host) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(number) = generation_number(&name) {
                generations.push(GenerationState {
                    record: manifest::read_generation(&e.path()),
                    name,
                    number,
                });
            }
        }
    }
    generations.sort_by_key(|g| g.number);
    (link, generations)
}

/// A symlink in the target must not carry the venv (or its generations)
/// somewhere the profile could not have named.
pub fn check_venv_resolves(profile: &Profile, target: &Target) -> Result<()> {
    if let (Some(parent), Some(name)) = (profile.venv.path.parent(), profile.venv.path.file_name())
    {
        let resolved = crate::target::resolve_in_root(&target.root, parent).join(name);
        if resolved != profile.venv.path {
            crate::input::profile::check_venv_location(&resolved).map_err(|m| {
                Error::usage(
                    format!(
                        "`{}` leads to `{}` through a symlink in the target: {m}",
                        profile.venv.path.display(),
                        resolved.display()
                    ),
                    "set `[venv] path` to a directory no symlink of the image carries into the system's own trees (e.g. `/opt/venvs/NAME`); nothing was changed",
                )
            })?;
        }
    }
    Ok(())
}

/// Generations to remove so that `keep` complete ones remain, `new_active`
/// included. The generation active now (`current`) is the rollback target and
/// is kept first, then the newest complete ones; incomplete leftovers of
/// killed runs always go. `new_active` itself is never listed.
pub fn to_remove(
    generations: &[GenerationState],
    new_active: &str,
    current: Option<&str>,
    keep: u32,
) -> Vec<String> {
    let mut candidates: Vec<&GenerationState> = generations
        .iter()
        .filter(|g| g.name != new_active)
        .collect();
    candidates.sort_by_key(|g| {
        (
            Some(g.name.as_str()) != current,
            std::cmp::Reverse(g.number),
        )
    });
    let mut keep_left = keep.saturating_sub(1);
    let mut remove = Vec::new();
    for g in candidates {
        if g.record.is_some() && keep_left > 0 {
            keep_left -= 1;
        } else {
            remove.push(g.name.clone());
        }
    }
    remove.sort();
    remove
}

/// The venv lock of the profile's venv path (see [`crate::generation::locks`]), taken
/// once the target is known to be one venvbake serves.
pub fn lock_venv(
    target: &Target,
    profile: &Profile,
    reporter: &Reporter,
) -> Result<crate::generation::locks::Held> {
    target.require_apt()?;
    check_venv_resolves(profile, target)?;
    let timeout = profile.apt.lock_timeout;
    crate::generation::locks::venv(target, &profile.venv.path, timeout, || {
        reporter.info(&format!(
            "waiting for another venvbake run on `{}` to finish (up to {} s)",
            profile.venv.path.display(),
            timeout.as_secs()
        ))
    })
}

/// Make `m`'s generation the active one, with the manifest and fact that
/// describe it. The manifest is written into the generation first and the
/// manifest path is a symlink through the venv's fixed path, so the single
/// rename of the fixed path's symlink switches venv and manifest together:
/// a kill at any moment leaves a manifest that describes the venv in use.
pub fn commit(
    target: &Target,
    profile: &Profile,
    gens_dir: &Path,
    m: &Manifest,
    switch: bool,
) -> Result<()> {
    let gen_host = target.host_path(&gens_dir.join(&m.venv.generation));
    m.write(&manifest::in_generation(&gen_host))?;
    let link_host = target.host_path_nofollow(&profile.outputs.manifest);
    let want = manifest::link_target(&profile.outputs.manifest, &profile.venv.path);
    if std::fs::read_link(&link_host).ok().as_deref() != Some(want.as_path()) {
        if link_host.is_dir() {
            return Err(Error::Occupied {
                path: profile.outputs.manifest.clone(),
            });
        }
        crate::sys::fsutil::create_dirs(link_host.parent().unwrap_or(Path::new("/")))?;
        crate::sys::fsutil::switch_symlink(&link_host, &want)?;
    }
    record_in_fact(
        target,
        &profile.outputs.ansible_fact,
        &profile.name,
        FactEntry::new(&profile.venv.path, &profile.outputs.manifest),
        m.taken_over_from.as_deref(),
        profile.apt.lock_timeout,
    )?;
    if switch {
        let gens_name = gens_dir.file_name().unwrap_or_default();
        crate::sys::fsutil::switch_symlink(
            &target.host_path_nofollow(&profile.venv.path),
            &Path::new(gens_name).join(&m.venv.generation),
        )?;
    }
    Ok(())
}

/// Set profile `name`'s entry in the Ansible fact at `fact_path` (a target
/// path), and drop the entry of the profile it took the venv path over
/// from. Every profile of the target shares the fact, so it is read,
/// changed and written under the target lock: no concurrent update is lost.
pub fn record_in_fact(
    target: &Target,
    fact_path: &Path,
    name: &str,
    entry: FactEntry,
    taken_over_from: Option<&str>,
    timeout: std::time::Duration,
) -> Result<()> {
    let fact_host = target.host_path(fact_path);
    let _shared = crate::generation::locks::target(target, timeout)?;
    Ok(manifest::update_fact(&fact_host, |fact| {
        let mut changed = false;
        if let Some(old) = taken_over_from {
            if let Some(e) = fact
                .profiles
                .get(old)
                .filter(|e| e.venv == entry.venv)
                .cloned()
            {
                fact.profiles.remove(old);
                forget_manifest_link(target, &e.manifest, &entry.venv);
                changed = true;
            }
        }
        if fact.profiles.get(name) != Some(&entry) {
            fact.profiles.insert(name.to_string(), entry);
            changed = true;
        }
        changed
    })?)
}

/// Remove a handed-over profile's manifest path if it is still the symlink
/// through `venv_path` that venvbake made (it would read the new owner's
/// manifest under the old name); anything else there is left alone.
fn forget_manifest_link(target: &Target, manifest_path: &Path, venv_path: &Path) {
    let host = target.host_path_nofollow(manifest_path);
    let ours = manifest::link_target(manifest_path, venv_path);
    if std::fs::read_link(&host).is_ok_and(|t| t == ours) {
        let _ = std::fs::remove_file(&host);
    }
}

/// Whether a new generation must be on disk before the switch makes it the
/// venv: the switch's rename is durable at once, the generation's files only
/// once the kernel writes them back, so a power loss in between would leave
/// the fixed path pointing at empty files. That matters when the switch
/// replaces a venv (it would trade a working one for a broken one) and on the
/// running system (cloud-init's `runcmd` does not run again). A first build
/// into an image tree (`--root`) is not synced: the pipeline's unmount or
/// shutdown writes it, and a crash before that fails the image build anyway.
pub fn must_sync(builds: bool, live: bool, replaces: bool) -> bool {
    builds && (live || replaces)
}

/// Remove the generations `names`; never the active one, never
/// anything that is not a generation directory inside venvbake's own directory.
pub fn remove_generations(
    target: &Target,
    gens_dir: &Path,
    names: &[String],
    active: &str,
    reporter: &mut Reporter,
) {
    let gens_host = target.host_path(gens_dir);
    for name in names {
        if name == active || generation_number(name).is_none() {
            continue;
        }
        let dir = gens_host.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => reporter.info(&format!("removed old generation {name}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => reporter.warn(&format!("could not remove `{}`: {e}", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent applies of different profiles each add their entry to the
    /// one fact file: none may be lost (without the target lock, several
    /// were, each apply exiting 0).
    #[test]
    fn concurrent_fact_updates_of_different_profiles_lose_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::new(Some(root.path())).unwrap();
        let fact = Path::new("/etc/ansible/facts.d/venvbake.fact");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let target = target.clone();
                std::thread::spawn(move || {
                    for round in 0..12 {
                        let name = format!("p{t}-{round}");
                        let venv = PathBuf::from(format!("/opt/venvs/{name}"));
                        let entry =
                            FactEntry::new(&venv, &crate::input::profile::default_manifest(&name));
                        record_in_fact(
                            &target,
                            fact,
                            &name,
                            entry,
                            None,
                            std::time::Duration::from_secs(60),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = manifest::read_fact(&target.host_path(fact));
        assert_eq!(
            got.profiles.len(),
            8 * 12,
            "lost: {:?}",
            got.profiles.keys()
        );
    }

    #[test]
    fn a_hand_over_drops_the_old_owners_entry_and_manifest_link() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::new(Some(root.path())).unwrap();
        let fact = Path::new("/etc/ansible/facts.d/venvbake.fact");
        let venv = Path::new("/opt/venvs/shared");
        let (old_m, new_m) = (
            crate::input::profile::default_manifest("old"),
            crate::input::profile::default_manifest("new"),
        );
        let t = std::time::Duration::from_secs(5);
        record_in_fact(&target, fact, "old", FactEntry::new(venv, &old_m), None, t).unwrap();
        record_in_fact(
            &target,
            fact,
            "other",
            FactEntry::new(Path::new("/opt/o"), &old_m),
            None,
            t,
        )
        .unwrap();
        let link = target.host_path_nofollow(&old_m);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(manifest::link_target(&old_m, venv), &link).unwrap();
        record_in_fact(
            &target,
            fact,
            "new",
            FactEntry::new(venv, &new_m),
            Some("old"),
            t,
        )
        .unwrap();
        let got = manifest::read_fact(&target.host_path(fact));
        let names: Vec<&str> = got.profiles.keys().map(String::as_str).collect();
        assert_eq!(names, ["new", "other"]);
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "the old manifest link is gone"
        );
    }

    #[test]
    fn generation_names() {
        assert_eq!(generation_number("g12-1a2b3c4d"), Some(12));
        assert_eq!(generation_number("g1-xyz"), None);
        assert_eq!(generation_number(".lock"), None);
    }
}
