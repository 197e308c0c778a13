//! The plan: what `apply` would do, as plain data.
//!
//! [`observe`] reads the target: its files, and, when the decisions depend
//! on the archive, apt's view of it through the read-only `apt-cache
//! policy` (which writes no cache). [`make`] is a pure function from the
//! checked profile and those observations to a [`Plan`]. `venvbake plan`
//! prints it; `apply` carries it out; tests assert on it with nothing run.
//! A plan whose `noop` is true means the target already is what the profile
//! asks for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decide::mapping::Fallback;
use crate::decide::{self, Choice, Decision, OsLookup, Scope};
use crate::error::{Error, Result};
use crate::generation::manifest::{self, FactEntry, Manifest};
use crate::generation::store::{
    check_venv_resolves, generations_dir, observe_generations, to_remove, GenerationState, Inputs,
    Link,
};
use crate::input::profile::{hex_sha256, Profile, SystemSite};
use crate::input::settings::Sources;
use crate::target::{Interpreter, OsRelease, Target};

/// What the target looks like now (read-only).
#[derive(Debug, Clone)]
pub struct Observed {
    pub os_release: OsRelease,
    pub installed: BTreeMap<String, String>,
    pub apt_lists: bool,
    pub interpreter: Interpreter,
    pub link: Link,
    pub generations: Vec<GenerationState>,
    pub manifest: Option<Manifest>,
    pub fact_entry: Option<FactEntry>,
    /// The system interpreter's stdlib carries the PEP 668 marker.
    pub externally_managed: bool,
    /// What apt said about the OS candidates of each distribution (normalised
    /// name), when the decisions depend on it.
    pub os: Option<BTreeMap<String, OsLookup>>,
    /// Distributions the system interpreter sees (normalised name -> version).
    pub system_dists: BTreeMap<String, String>,
    /// The manifest path is the symlink through the fixed path it should be.
    pub manifest_linked: bool,
    /// Another profile that owns the venv path: the one whose manifest the
    /// active generation carries, or whose fact entry names the path.
    pub owner: Option<String>,
}

/// Read what the plan needs from the target. The only command it may run is
/// the read-only `apt-cache policy`, and only when `ask_apt` is set.
pub fn observe(profile: &Profile, target: &Target, ask_apt: bool) -> Result<Observed> {
    target.require_apt()?;
    let interpreter = target.interpreter(&profile.venv.python)?;
    check_venv_resolves(profile, target)?;
    let (link, generations) = observe_generations(&profile.venv.path, target);
    let gens_host = target.host_path(&generations_dir(&profile.venv.path));
    let manifest = manifest::read(&target.host_path(&profile.outputs.manifest)).unwrap_or(None);
    let manifest_linked = std::fs::read_link(target.host_path_nofollow(&profile.outputs.manifest))
        .is_ok_and(|t| t == manifest::link_target(&profile.outputs.manifest, &profile.venv.path));
    let mut fact = manifest::read_fact(&target.host_path(&profile.outputs.ansible_fact));
    let fact_entry = fact.profiles.remove(&profile.name);
    // The manifest the active generation carries names its owner. A linked
    // manifest path already read that file (through the fixed path).
    let carried_owner = match &link {
        Link::Generation(_) if manifest_linked => manifest.as_ref().map(|m| m.profile.name.clone()),
        Link::Generation(g) => manifest::read(&manifest::in_generation(&gens_host.join(g)))
            .unwrap_or(None)
            .map(|m| m.profile.name),
        _ => None,
    };
    let owner = carried_owner
        .or_else(|| {
            fact.profiles
                .iter()
                .find(|(_, e)| e.venv == profile.venv.path)
                .map(|(name, _)| name.clone())
        })
        .filter(|name| *name != profile.name);
    let apt_lists = target.has_apt_lists();
    let os = if ask_apt {
        Some(ask_apt_about(profile, target, apt_lists)?)
    } else {
        None
    };
    Ok(Observed {
        os_release: target.os_release()?,
        installed: target.dpkg_installed()?,
        apt_lists,
        externally_managed: target.externally_managed(&interpreter),
        system_dists: target.system_dists(&interpreter),
        interpreter,
        link,
        generations,
        manifest,
        fact_entry,
        manifest_linked,
        owner,
        os,
    })
}

impl Observed {
    /// Read again what apt may have changed (the interpreter, dpkg's
    /// database, the system's distributions), for stage 2 of the plan; the
    /// venv's side and apt's view of the archive are as they were.
    pub fn refresh_after_apt(&mut self, profile: &Profile, target: &Target) -> Result<()> {
        self.interpreter = target.interpreter(&profile.venv.python)?;
        self.installed = target.dpkg_installed()?;
        self.externally_managed = target.externally_managed(&self.interpreter);
        self.system_dists = target.system_dists(&self.interpreter);
        Ok(())
    }
}

/// The mapping table: the target's own dh-python copy, else the embedded one.
pub fn fallback_for(target: &Target) -> std::borrow::Cow<'static, Fallback> {
    match target.read(Path::new(crate::decide::mapping::TARGET_FALLBACK)) {
        Ok(Some(text)) => std::borrow::Cow::Owned(Fallback::parse(&text, "target")),
        _ => std::borrow::Cow::Borrowed(Fallback::embedded()),
    }
}

/// Candidates for every requirement and system entry, confirmed by one `apt-cache policy`.
fn ask_apt_about(
    profile: &Profile,
    target: &Target,
    lists: bool,
) -> Result<BTreeMap<String, OsLookup>> {
    let names: Vec<String> = profile
        .requirements
        .items
        .iter()
        .map(|r| r.name.to_string())
        .chain(profile.python.system.iter().map(|s| s.name.to_string()))
        .collect();
    lookup_names(&names, &profile.python.map, target, lists)
}

/// Look `names` up: mapping candidates, then apt on the target.
pub fn lookup_names(
    names: &[String],
    map: &BTreeMap<String, String>,
    target: &Target,
    lists: bool,
) -> Result<BTreeMap<String, OsLookup>> {
    let fallback = fallback_for(target);
    let per_name: Vec<(String, Vec<crate::decide::mapping::Candidate>)> = names
        .iter()
        .map(|n| {
            (
                crate::decide::mapping::normalize(n),
                crate::decide::mapping::candidates(n, map, &fallback),
            )
        })
        .collect();
    let mut packages: Vec<String> = per_name
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| c.package.clone()))
        .collect();
    packages.sort();
    packages.dedup();
    let policy =
        crate::target::apt_query::policy(target, &crate::sys::exec::base_env(&[]), &packages)?;
    Ok(per_name
        .into_iter()
        .map(|(name, cands)| {
            let l = crate::decide::lookup(&cands, &policy, lists);
            (name, l)
        })
        .collect())
}

/// `--adopt`: a directory (or foreign symlink) at the fixed path is planned
/// around; apply moves it aside just before the switch, never deletes it.
pub fn adopt(o: &mut Observed, adopt: bool) {
    if adopt && o.link == Link::Foreign {
        o.link = Link::Missing;
    }
}

/// Whether another profile's ownership of the venv path is handed over:
/// `--take-over OWNER` must name the owner it takes over from. With no
/// owner (a re-run after the hand-over) the flag changes nothing.
pub fn hand_over(o: &mut Observed, from: Option<&str>, venv_path: &Path) -> Result<bool> {
    match (from, &o.owner) {
        (Some(from), Some(owner)) if from == owner => {
            o.owner = None;
            Ok(true)
        }
        (Some(from), Some(owner)) => Err(Error::usage(
            format!(
                "`--take-over {from}`: `{}` belongs to profile `{owner}`, not `{from}`",
                venv_path.display()
            ),
            format!("name the owner: `--take-over {owner}`; nothing was changed"),
        )),
        _ => Ok(false),
    }
}

// ---------------------------------------------------------------- the plan

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub profile: String,
    pub root: PathBuf,
    pub os: OsRelease,
    pub python: PlanPython,
    /// The profile's lock: its file name and format.
    pub lock: PlanLock,
    pub apt: AptPlan,
    pub venv: VenvPlan,
    pub outputs: OutputPlan,
    /// Who serves each requirement and each `[python] system` entry, and why.
    pub decisions: Vec<Decision>,
    /// Distributions pip installs into the system interpreter (last resort).
    pub system_pip: Vec<SystemPip>,
    pub wheelhouse: Option<PathBuf>,
    pub noop: bool,
    /// What `apply --bundle FILE` would do with that bundle (plan and apply
    /// decide it before anything changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleVerdict>,
}

/// How a new generation would be filled, decided before anything changes.
/// The interpreter's probe can still send a build to pip (a non-CPython
/// interpreter, an `ensurepip` without pip's wheel, no fitting wheel with
/// `allow_sdist`); the log says so when it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub kind: RouteKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// Unpack a bundle (`apply --bundle`).
    Stamp,
    /// venvbake's installer, offline from the wheelhouse.
    Native,
    /// `pip download` of the lock's wheels from the index, then venvbake's installer.
    Download,
    /// pip installs.
    Pip,
}

/// A bundle offered to this target: whether it stamps the planned
/// generation, and each field where it differs (bundle's, target's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleVerdict {
    pub file: PathBuf,
    pub stamps: bool,
    pub differs: Vec<BundleDifference>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleDifference {
    pub field: String,
    pub bundle: String,
    pub target: String,
}

/// What the bundle `file` with `header` would do with `plan`, decided
/// before anything changes: every field that can be known without probing
/// the interpreter (release, paths, interpreter identity, lock, options,
/// generation) is compared; the Python version and ABI are compared again
/// once the interpreter is probed.
pub fn bundle_verdict(
    file: &Path,
    header: &crate::generation::bundle::Header,
    plan: &Plan,
) -> BundleVerdict {
    let VenvAction::Build { generation, .. } = &plan.venv.action else {
        return BundleVerdict {
            file: file.to_path_buf(),
            stamps: false,
            differs: Vec::new(),
            note: format!(
                "the venv needs no new generation ({}); the bundle is not used",
                plan.venv.action.generation()
            ),
        };
    };
    let wanted = crate::generation::bundle::Wanted {
        generation,
        inputs: &plan.venv.inputs,
        os_id: &plan.os.id,
        os_version_id: &plan.os.version_id,
        python_version: None,
        abi: None,
    };
    let differs: Vec<BundleDifference> = crate::generation::bundle::mismatches(header, &wanted)
        .into_iter()
        .map(|(field, bundle, target)| BundleDifference {
            field,
            bundle,
            target,
        })
        .collect();
    BundleVerdict {
        file: file.to_path_buf(),
        stamps: differs.is_empty(),
        note: if differs.is_empty() {
            format!(
                "stamps {generation}; Python {} ({}) is checked once the interpreter is probed",
                header.python_version, header.abi
            )
        } else {
            "built for another target: refused before anything changes".into()
        },
        differs,
    }
}

impl BundleVerdict {
    /// The refusal as an error (exit 2), when the bundle cannot stamp.
    pub fn refusal(&self) -> Option<Error> {
        (!self.differs.is_empty()).then(|| Error::BundleMismatch {
            file: self.file.clone(),
            fields: self
                .differs
                .iter()
                .map(|d| (d.field.clone(), d.bundle.clone(), d.target.clone()))
                .collect(),
        })
    }
}

/// The route of a generation built from `profile` with these sources.
pub fn route(
    profile: &Profile,
    decisions: &[Decision],
    wheelhouse: Option<&Path>,
    bundle: bool,
) -> Route {
    let r = |kind, reason: &str| Route {
        kind,
        reason: reason.to_string(),
    };
    if bundle {
        return r(RouteKind::Stamp, "`--bundle`: unpacked, then checked");
    }
    if profile.venv.installer == crate::input::profile::Installer::Pip {
        return r(RouteKind::Pip, "`[venv] installer = \"pip\"`");
    }
    let unpinned = profile
        .requirements
        .items
        .iter()
        .zip(decisions)
        .find(|(req, d)| d.decision == Choice::Venv && req.version.is_none());
    if let Some((req, _)) = unpinned {
        return Route {
            kind: RouteKind::Pip,
            reason: format!(
                "`{}` is not pinned, and only pip resolves versions",
                req.text
            ),
        };
    }
    let nothing = !decisions.iter().any(|d| d.decision == Choice::Venv);
    match wheelhouse {
        _ if nothing => r(
            RouteKind::Native,
            "nothing for the venv to install: the system serves every requirement",
        ),
        Some(_) => r(
            RouteKind::Native,
            "venvbake's installer, offline from the wheelhouse",
        ),
        None if lock_paths_serve(profile, decisions) => r(
            RouteKind::Native,
            "venvbake's installer, offline from the wheels the lock's `path` keys name",
        ),
        None if profile.venv.allow_sdist => r(
            RouteKind::Pip,
            "files come from an index and `allow_sdist` lets pip build source distributions",
        ),
        None => r(
            RouteKind::Download,
            "venvbake fetches the lock's wheels from the index on this host (through its download cache), its installer installs them",
        ),
    }
}

/// Whether every requirement the venv serves is a `pylock.toml` package
/// with a wheel at a local `path` (then no index is needed).
fn lock_paths_serve(profile: &Profile, decisions: &[Decision]) -> bool {
    let mut venv = profile
        .requirements
        .items
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.decision == Choice::Venv)
        .peekable();
    venv.peek().is_some()
        && venv.all(|(r, _)| {
            r.locked.as_ref().is_some_and(|l| {
                l.wheels
                    .iter()
                    .any(|w| w.path.as_ref().is_some_and(|p| p.is_file()))
            })
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLock {
    pub file: String,
    pub format: crate::input::requirements::LockFormat,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanPython {
    pub path: PathBuf,
    pub resolved: PathBuf,
    pub minor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenvPlan {
    pub path: PathBuf,
    pub generations_dir: PathBuf,
    pub fingerprint: String,
    /// Resolved `system_site_packages` (`auto`: whether apt serves a requirement).
    pub system_site_packages: bool,
    /// How many requirements pip installs into the venv.
    pub requirements: usize,
    /// Those requirements' lines (requirement and hashes), as pip gets them.
    #[serde(skip)]
    pub pip_lines: Vec<String>,
    pub inputs: Inputs,
    /// Each requirement of the lock with who serves it, typed (the
    /// `decisions` say the same for people, with reasons).
    #[serde(skip)]
    pub served: Vec<Served>,
    pub action: VenvAction,
    /// How a generation to build would be filled (only when one is built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Generation directories to remove afterwards (incomplete leftovers, beyond `keep_generations`).
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenvAction {
    /// The active generation already matches.
    Keep { generation: String },
    /// A complete, matching generation exists but is not active: switch to it.
    Switch { generation: String },
    /// Build a new generation.
    Build { generation: String, reason: String },
}

impl VenvAction {
    /// `keep`, `switch` or `build`, as `plan --format json` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            VenvAction::Keep { .. } => "keep",
            VenvAction::Switch { .. } => "switch",
            VenvAction::Build { .. } => "build",
        }
    }

    pub fn generation(&self) -> &str {
        match self {
            VenvAction::Keep { generation }
            | VenvAction::Switch { generation }
            | VenvAction::Build { generation, .. } => generation,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputPlan {
    pub manifest: PathBuf,
    pub ansible_fact: PathBuf,
    /// Whether the manifest and fact must be (re)written.
    pub write: bool,
}

/// A distribution installed into the system interpreter with pip (the last resort).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemPip {
    pub name: String,
    pub version: String,
    /// The lock's line (requirement and hashes) pip installs.
    #[serde(skip)]
    pub pip_line: String,
    /// `--break-system-packages` is used (the interpreter is externally managed).
    pub flag: bool,
    /// Already installed at that version.
    pub present: bool,
    pub reason: String,
}

/// The apt part of a plan: what to install, and whether to update first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AptPlan {
    /// Run `apt-get update` first (the target has no package lists).
    pub update: bool,
    pub install: Vec<AptItem>,
    pub present: Vec<AptItem>,
    /// What venvbake would have installed in earlier versions and this
    /// plan does without: `python3.X-venv` for a venv without pip, from a
    /// wheelhouse or a bundle (the stdlib's `venv` module makes it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_needed: Vec<AptItem>,
    pub lock_timeout_s: u64,
}

impl AptPlan {
    /// Whether the venv's interpreter must have `ensurepip` (its
    /// python3.X-venv is wanted).
    pub fn wants_ensurepip(&self) -> bool {
        self.install
            .iter()
            .chain(&self.present)
            .any(|i| i.reason == "venv-module")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AptItem {
    pub name: String,
    /// The installed version, for packages already present.
    pub version: Option<String>,
    /// `profile` or `venv-module`.
    pub reason: String,
}

/// A requirement of the lock and who serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub requirement: crate::input::requirements::Requirement,
    pub by: Choice,
}

/// Stage 1 of a plan: who serves each requirement and system entry, and
/// what apt and the system's pip must do. Decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPlan {
    pub decisions: Vec<Decision>,
    /// Resolved `system_site_packages` (`auto`: whether apt serves a requirement).
    pub system_site_packages: bool,
    pub system_pip: Vec<SystemPip>,
    pub apt: AptPlan,
}

/// Stage 2 of a plan: the venv, and whether the manifest and fact are
/// written. Made from stage 1 and the target as it is after apt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvStage {
    pub venv: VenvPlan,
    pub write: bool,
}

/// The whole plan: stage 1, then stage 2, from one observation (what
/// `venvbake plan` shows and what `apply` starts from).
pub fn make(profile: &Profile, target: &Target, obs: &Observed, sources: &Sources) -> Result<Plan> {
    let system = plan_system(profile, obs, sources)?;
    let venv = plan_venv(profile, obs, &system, sources);
    Ok(assemble(profile, target, obs, system, venv, sources))
}

/// Stage 2 again, after apt changed the target (`obs` refreshed by
/// [`Observed::refresh_after_apt`]); stage 1 stays as it was decided.
pub fn replan_venv(
    plan: &Plan,
    profile: &Profile,
    target: &Target,
    obs: &Observed,
    sources: &Sources,
) -> Plan {
    let system = SystemPlan {
        decisions: plan.decisions.clone(),
        system_site_packages: plan.venv.system_site_packages,
        system_pip: plan.system_pip.clone(),
        apt: plan.apt.clone(),
    };
    let venv = plan_venv(profile, obs, &system, sources);
    let mut out = assemble(profile, target, obs, system, venv, sources);
    out.bundle = plan.bundle.clone();
    out
}

/// What stands at the venv path must be venvbake's, and this profile's
/// (or handed over with `--take-over`): refused before anything changes.
fn check_venv_path(profile: &Profile, obs: &Observed) -> Result<()> {
    if obs.link == Link::Foreign {
        return Err(Error::Occupied {
            path: profile.venv.path.clone(),
        });
    }
    if let Some(owner) = &obs.owner {
        return Err(Error::usage(
            format!(
                "`{}` belongs to profile `{owner}`; profile `{}` names the same `[venv] path`",
                profile.venv.path.display(),
                profile.name
            ),
            format!(
                "give `{}` a path of its own, or hand the path over on purpose with `venvbake apply {} --take-over {owner}` (recorded in the manifest); nothing was changed",
                profile.name,
                profile.file.display()
            ),
        ));
    }
    Ok(())
}

/// The marker environment the target's interpreter will report, told from
/// the tree before it runs: Debian's `python3.X-minimal` package gives the
/// full version, and a chroot runs on this machine's kernel and CPU. `None`
/// for an interpreter Debian did not install (judged after the probe).
pub fn predicted_markers(
    interpreter: &Interpreter,
    installed: &BTreeMap<String, String>,
) -> Option<pep508_rs::MarkerEnvironment> {
    let minor = interpreter.minor.as_ref()?;
    interpreter.resolved.starts_with("/usr/bin").then_some(())?;
    let deb = installed.get(&format!("python{minor}-minimal"))?;
    // `3.11.2-6+deb12u6` -> 3.11.2; `3.14.0~rc3-1` -> 3.14.0rc3.
    let upstream = deb.split_once(':').map_or(deb.as_str(), |(_, v)| v);
    let upstream = upstream.rsplit_once('-').map_or(upstream, |(v, _)| v);
    let full = upstream.replace('~', "");
    let parsed: pep440_rs::Version = full.parse().ok()?;
    if !full.starts_with(&format!("{minor}.")) || parsed.release().len() < 3 {
        return None;
    }
    let uts = nix::sys::utsname::uname().ok()?;
    let s = |o: &std::ffi::OsStr| o.to_string_lossy().into_owned();
    let (machine, release, version) = (s(uts.machine()), s(uts.release()), s(uts.version()));
    pep508_rs::MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: &full,
        os_name: "posix",
        platform_machine: &machine,
        platform_python_implementation: "CPython",
        platform_release: &release,
        platform_system: "Linux",
        platform_version: &version,
        python_full_version: &full,
        python_version: minor,
        sys_platform: "linux",
    })
    .ok()
}

/// Stage 1: who serves what, and what apt and the system's pip must do.
/// The `Requires-Dist` lines of the lock's pinned distributions (normalised
/// name -> version and lines), from the wheels at hand before anything
/// changes: the wheelhouse and a `pylock.toml`'s `path`s. A distribution
/// without one is left to the build's dependency check.
fn lock_requires(
    profile: &Profile,
    wheelhouse: Option<&Path>,
) -> BTreeMap<String, (String, Vec<String>)> {
    let mut files: Vec<PathBuf> = wheelhouse
        .and_then(|w| std::fs::read_dir(w).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    for r in &profile.requirements.items {
        if let Some(l) = &r.locked {
            files.extend(l.wheels.iter().filter_map(|w| w.path.clone()));
        }
    }
    let mut out = BTreeMap::new();
    for r in &profile.requirements.items {
        let Some(version) = &r.version else { continue };
        let key = r.name.to_string();
        if out.contains_key(&key) {
            continue;
        }
        let wheel = files.iter().find(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut parts = name.strip_suffix(".whl").unwrap_or("").split('-');
            let (Some(dist), Some(v)) = (parts.next(), parts.next()) else {
                return false;
            };
            crate::decide::mapping::normalize(dist) == key
                && v.parse::<pep440_rs::Version>().is_ok_and(|v| v == *version)
        });
        if let Some(lines) = wheel.and_then(|w| crate::target::dists::wheel_requires(w)) {
            out.insert(key, (version.to_string(), lines));
        }
    }
    out
}

/// Why apt's version for `decisions[i]` (an `apt` decision) breaks another
/// locked distribution's requirement; None when nothing rules it out. Two
/// apt-served distributions are Debian's to keep consistent.
fn apt_conflict(
    decisions: &[Decision],
    i: usize,
    requires: &BTreeMap<String, (String, Vec<String>)>,
    env: Option<&pep508_rs::MarkerEnvironment>,
) -> Option<String> {
    let d = &decisions[i];
    if d.decision != Choice::Apt {
        return None;
    }
    let c = d.os_candidate.as_ref()?;
    let v: pep440_rs::Version = c.pep440.as_ref()?.parse().ok()?;
    let name = crate::decide::mapping::normalize(&d.name);
    for (other, (over, lines)) in requires {
        if *other == name {
            continue;
        }
        let by_apt = decisions.iter().any(|o| {
            o.decision == Choice::Apt && crate::decide::mapping::normalize(&o.name) == *other
        });
        if by_apt {
            continue;
        }
        for line in lines {
            let Ok(r) = crate::input::requirements::parse_pep508(line) else {
                continue;
            };
            let applies = env.map_or(r.marker.is_true(), |e| r.marker.evaluate(e, &[]));
            if r.name.as_ref() != name || !applies {
                continue;
            }
            if let Some(pep508_rs::VersionOrUrl::VersionSpecifier(spec)) = &r.version_or_url {
                if !spec.contains(&v) {
                    return Some(format!(
                        "{} {} ({v}) would serve it, but {other} {over} requires `{line}`",
                        c.package, c.version
                    ));
                }
            }
        }
    }
    None
}

/// `sources`: the wheelhouse holds the lock's wheels (their `Requires-Dist`
/// is what apt's versions must satisfy).
pub fn plan_system(profile: &Profile, obs: &Observed, sources: &Sources) -> Result<SystemPlan> {
    let wheelhouse = sources.wheelhouse.as_deref();
    check_venv_path(profile, obs)?;
    // A lock made for another Python or environment (a `pylock.toml`'s
    // `requires-python`, `environments`) is refused before any change.
    let env = predicted_markers(&obs.interpreter, &obs.installed);
    if let Some(env) = &env {
        profile.requirements.check_scope(env)?;
    }
    let py = &profile.python;
    let file = &profile.requirements.file;
    let lookup_of = |name: &str| {
        obs.os
            .as_ref()
            .and_then(|m| m.get(&crate::decide::mapping::normalize(name)))
    };

    // Who serves each requirement and each system entry.
    let mut decisions: Vec<Decision> = profile
        .requirements
        .items
        .iter()
        .map(|r| {
            decide::decide_requirement(
                r,
                py.prefer_for(r.name.as_ref()),
                lookup_of(r.name.as_ref()),
                py.require_hashes,
                file,
            )
        })
        .collect();
    // An apt version that another locked distribution's `Requires-Dist`
    // rules out: the venv serves that one instead (decided here, before
    // apt installs anything).
    let requires = if py.asks_apt() {
        let mut r = lock_requires(profile, wheelhouse);
        for (name, entry) in &sources.index_requires {
            r.entry(name.clone()).or_insert_with(|| entry.clone());
        }
        r
    } else {
        BTreeMap::new()
    };
    for i in 0..decisions.len() {
        if let Some(conflict) = apt_conflict(&decisions, i, &requires, env.as_ref()) {
            let d = &mut decisions[i];
            let locked = profile
                .requirements
                .items
                .get(i)
                .filter(|r| r.name.as_ref() == d.name);
            match locked.map(|r| r.check_locked(file)) {
                Some(Ok(())) => {
                    d.decision = Choice::Venv;
                    d.reason = format!("{conflict}; the venv serves it at the lock's version");
                }
                _ if !py.require_hashes => {
                    d.decision = Choice::Venv;
                    d.reason = format!("{conflict}; the venv serves it (pip resolves it)");
                }
                _ => {
                    d.decision = Choice::Unresolved;
                    d.reason = format!(
                        "{conflict}, and the lock does not pin it with hashes for the venv: make the lock with `venvbake lock`"
                    );
                }
            }
        }
    }
    // The import check can only leave out what the venv serves.
    for name in &profile.venv.import_check_skip {
        if let Some(d) = decisions.iter().find(|d| {
            crate::decide::mapping::normalize(&d.name) == *name && d.decision != Choice::Venv
        }) {
            return Err(Error::usage(
                format!(
                    "`[venv] import_check_skip` names `{}`, which the venv does not serve ({}: {})",
                    d.name,
                    d.decision.label(),
                    d.reason
                ),
                "list only distributions the venv installs; what apt serves is not checked by importing",
            ));
        }
    }
    let system_site_packages = match profile.venv.system_site_packages {
        SystemSite::Yes => true,
        SystemSite::No => false,
        SystemSite::Auto => decisions.iter().any(|d| d.decision == Choice::Apt),
    };
    if !system_site_packages {
        for d in decisions.iter_mut().filter(|d| d.decision == Choice::Apt) {
            d.decision = Choice::Unresolved;
            d.reason = format!(
                "{}, but the venv cannot see OS packages: set `[venv] system_site_packages = \"auto\"`",
                d.reason
            );
        }
    }
    let empty = OsLookup::default();
    for s in &py.system {
        let locked = profile.requirements.items.iter().find(|r| r.name == s.name);
        decisions.push(decide::decide_system(
            s.name.as_ref(),
            &s.specifier,
            lookup_of(s.name.as_ref()).unwrap_or(&empty),
            py.break_system_packages,
            locked,
            obs.externally_managed,
        ));
    }
    // A system entry apt serves must not break the venv's locked
    // distributions either; neither side can give way, so it is refused.
    for i in 0..decisions.len() {
        if decisions[i].scope != Scope::System {
            continue;
        }
        if let Some(conflict) = apt_conflict(&decisions, i, &requires, env.as_ref()) {
            decisions[i].decision = Choice::Unresolved;
            decisions[i].reason =
                format!("{conflict}: the system entry and the lock disagree; change one of them");
        }
    }
    for d in &mut decisions {
        d.settle();
    }
    let system_pip: Vec<SystemPip> = decisions
        .iter()
        .filter(|d| d.decision == Choice::BreakSystemPackages)
        .filter_map(|d| {
            let r = profile
                .requirements
                .items
                .iter()
                .find(|r| r.name.as_ref() == d.name)?;
            let version = r.version.as_ref()?.to_string();
            Some(SystemPip {
                present: obs.system_dists.get(r.name.as_ref()) == Some(&version),
                name: d.name.clone(),
                pip_line: r.pip_line(),
                version,
                flag: obs.externally_managed,
                reason: d.reason.clone(),
            })
        })
        .collect();

    // apt: the venv module, apt-served distributions, pip for the last resort, the profile's packages.
    let mut wanted: Vec<(String, String)> = Vec::new();
    let mut want = |name: String, reason: String| {
        if !wanted.iter().any(|(n, _)| *n == name) {
            wanted.push((name, reason));
        }
    };
    // python3.X-venv brings `ensurepip` and the pip wheel: needed for pip
    // in the venv, for pip as the installer (`installer = "pip"`, an
    // unpinned requirement, `allow_sdist`), or when the stdlib's `venv`
    // module itself is missing. Decided from the profile and the lock
    // alone, so that the same profile plans the same apt work whichever
    // source (`--wheelhouse`, an index, `--bundle`) a run names: a pip-less
    // venv needs none of it.
    let mut not_needed = Vec::new();
    if let Some(pkg) = obs.interpreter.venv_package() {
        let ensurepip = profile.venv.pip
            || profile.venv.allow_sdist
            || route(profile, &decisions, None, false).kind == RouteKind::Pip;
        if ensurepip || !obs.interpreter.venv_module {
            want(pkg, "venv-module".into());
        } else if !obs.installed.contains_key(&pkg) {
            not_needed.push(AptItem {
                version: None,
                name: pkg,
                reason: "venv-module".into(),
            });
        }
    }
    for d in decisions.iter().filter(|d| d.decision == Choice::Apt) {
        if let Some(c) = &d.os_candidate {
            let scope = match d.scope {
                Scope::Venv => "requirement",
                Scope::System => "system",
            };
            want(c.package.clone(), format!("{scope} {}", d.name));
        }
    }
    if system_pip.iter().any(|s| !s.present) {
        want("python3-pip".into(), "break-system-packages".into());
    }
    for p in &profile.apt.packages {
        want(p.clone(), "profile".into());
    }
    let (mut install, mut present) = (Vec::new(), Vec::new());
    for (name, reason) in wanted {
        let bare = name.split(':').next().unwrap_or(&name);
        let item = AptItem {
            version: obs.installed.get(bare).cloned(),
            name,
            reason,
        };
        if item.version.is_some() {
            present.push(item);
        } else {
            install.push(item);
        }
    }
    let apt = AptPlan {
        update: !install.is_empty() && !obs.apt_lists,
        install,
        present,
        not_needed,
        lock_timeout_s: profile.apt.lock_timeout.as_secs(),
    };

    Ok(SystemPlan {
        decisions,
        system_site_packages,
        system_pip,
        apt,
    })
}

/// Stage 2: the venv's inputs, fingerprint and action, the route that fills
/// a new generation, what to remove, and whether the outputs are written.
pub fn plan_venv(
    profile: &Profile,
    obs: &Observed,
    system: &SystemPlan,
    sources: &Sources,
) -> VenvStage {
    let (decisions, system_site_packages) = (&system.decisions, system.system_site_packages);
    // The venv: only what it serves goes to pip.
    let pip_lines: Vec<String> = profile
        .requirements
        .items
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.decision == Choice::Venv)
        .map(|(r, _)| r.pip_line())
        .collect();
    let inputs = Inputs {
        venv_path: profile.venv.path.clone(),
        python: profile.venv.python.clone(),
        python_identity: obs.interpreter.identity.clone(),
        requirements_sha256: hex_sha256(pip_lines.join("\n").as_bytes()),
        system_site_packages,
        allow_sdist: profile.venv.allow_sdist,
        pip: profile.venv.pip,
        import_check_skip: profile.venv.import_check_skip.clone(),
    };
    let fingerprint = inputs.fingerprint();
    let complete_match = |g: &GenerationState| {
        g.record
            .as_ref()
            .is_some_and(|r| r.fingerprint == fingerprint)
    };
    let active = match &obs.link {
        Link::Generation(name) => obs.generations.iter().find(|g| &g.name == name),
        _ => None,
    };
    let action = match active {
        Some(g) if complete_match(g) => VenvAction::Keep {
            generation: g.name.clone(),
        },
        _ => match obs.generations.iter().rev().find(|g| complete_match(g)) {
            Some(g) => VenvAction::Switch {
                generation: g.name.clone(),
            },
            None => {
                let next = obs.generations.iter().map(|g| g.number).max().unwrap_or(0) + 1;
                VenvAction::Build {
                    generation: format!("g{next}-{}", &fingerprint[..8]),
                    reason: build_reason(active, &obs.link, obs.manifest.as_ref(), &inputs),
                }
            }
        },
    };

    let new_active = action.generation().to_string();
    let current = match &obs.link {
        Link::Generation(name) => Some(name.as_str()),
        _ => None,
    };
    let remove = to_remove(
        &obs.generations,
        &new_active,
        current,
        profile.venv.keep_generations,
    );

    let write = match (&obs.manifest, &obs.fact_entry) {
        (Some(m), Some(f)) => {
            m.venv.fingerprint != fingerprint
                || m.venv.generation != new_active
                || m.profile.sha256 != profile.sha256
                || m.tool != crate::generation::manifest::Tool::current()
                || *f
                    != crate::generation::manifest::FactEntry::new(
                        &profile.venv.path,
                        &profile.outputs.manifest,
                    )
                || !obs.manifest_linked
        }
        _ => true,
    };
    let served = profile
        .requirements
        .items
        .iter()
        .zip(decisions)
        .map(|(r, d)| Served {
            requirement: r.clone(),
            by: d.decision,
        })
        .collect();
    let venv = VenvPlan {
        path: profile.venv.path.clone(),
        generations_dir: generations_dir(&profile.venv.path),
        fingerprint,
        system_site_packages,
        requirements: pip_lines.len(),
        pip_lines,
        inputs,
        served,
        route: matches!(action, VenvAction::Build { .. }).then(|| {
            route(
                profile,
                decisions,
                sources.wheelhouse.as_deref(),
                sources.bundle.is_some(),
            )
        }),
        action,
        remove,
    };
    VenvStage { venv, write }
}

/// The plan of both stages, as `venvbake plan` prints it.
fn assemble(
    profile: &Profile,
    target: &Target,
    obs: &Observed,
    system: SystemPlan,
    stage: VenvStage,
    sources: &Sources,
) -> Plan {
    let SystemPlan {
        decisions,
        system_pip,
        apt,
        ..
    } = system;
    let VenvStage { venv, write } = stage;
    let noop = apt.install.is_empty()
        && matches!(venv.action, VenvAction::Keep { .. })
        && venv.remove.is_empty()
        && system_pip.iter().all(|s| s.present)
        && !write;
    Plan {
        profile: profile.name.clone(),
        root: target.root.clone(),
        os: obs.os_release.clone(),
        python: PlanPython {
            path: obs.interpreter.path.clone(),
            resolved: obs.interpreter.resolved.clone(),
            minor: obs.interpreter.minor.clone(),
        },
        lock: PlanLock {
            file: profile
                .requirements
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format: profile.requirements.format,
            sha256: profile.requirements.sha256.clone(),
        },
        apt,
        venv,
        outputs: OutputPlan {
            manifest: profile.outputs.manifest.clone(),
            ansible_fact: profile.outputs.ansible_fact.clone(),
            write,
        },
        decisions,
        system_pip,
        wheelhouse: sources.wheelhouse.clone(),
        bundle: None,
        noop,
    }
}

/// `venvbake map`: for each `NAME[SPEC]`, the OS package apt would install and
/// whether it satisfies the specifier (the decision `prefer = "os"` would make).
pub fn map(
    args: &[String],
    target: &Target,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<Decision>> {
    target.require_apt()?;
    let mut reqs = Vec::new();
    for a in args {
        let parsed = crate::input::requirements::parse(Path::new("<command line>"), a)?;
        reqs.extend(parsed.items);
    }
    let names: Vec<String> = reqs.iter().map(|r| r.name.to_string()).collect();
    let lookups = lookup_names(&names, overrides, target, target.has_apt_lists())?;
    Ok(reqs
        .iter()
        .map(|r| {
            let mut d = decide::decide_requirement(
                r,
                decide::Prefer::Os,
                lookups.get(r.name.as_ref()),
                false,
                Path::new("<command line>"),
            );
            d.line = None;
            d.settle();
            d
        })
        .collect())
}

/// The decisions as an aligned table (name, specifier, OS candidate, decision, reason).
pub fn decisions_table(decisions: &[Decision]) -> String {
    let rows: Vec<[String; 7]> = decisions
        .iter()
        .map(|d| {
            [
                d.scope_label().to_string(),
                d.name.clone(),
                if d.specifier.is_empty() {
                    "*".into()
                } else {
                    d.specifier.clone()
                },
                match &d.os_candidate {
                    Some(c) => format!("{} {}", c.package, c.version),
                    None => "none".into(),
                },
                d.decision.label().to_string(),
                match &d.version {
                    Some(v) => format!("{} ({})", v.value, v.from),
                    None => "-".into(),
                },
                d.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "scope",
        "name",
        "specifier",
        "OS candidate",
        "decision",
        "version (from)",
        "reason",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        out.push_str("  ");
        for (w, cell) in widths.iter().zip(r.iter()) {
            let _ = write!(out, "{cell:<w$}  ");
        }
        out.push_str(&r[6]);
        out.push('\n');
    }
    out
}

fn build_reason(
    active: Option<&GenerationState>,
    link: &Link,
    manifest: Option<&Manifest>,
    inputs: &Inputs,
) -> String {
    let previous = active.and_then(|g| g.record.as_ref());
    match (link, previous) {
        (Link::Missing, _) => "no venv at the fixed path yet".into(),
        (_, None) => "the active generation is incomplete".into(),
        (_, Some(rec)) => {
            let mut why = Vec::new();
            if let Some(m) = manifest {
                if m.profile.requirements.sha256 != inputs.requirements_sha256 {
                    why.push("the requirements changed".to_string());
                }
            }
            if rec.python.abi.is_empty() || manifest.is_some_and(|m| m.python.base != inputs.python)
            {
                why.push("the interpreter changed".to_string());
            }
            if why.is_empty() {
                why.push(
                    "the build inputs changed (interpreter, requirements or venv settings)".into(),
                );
            }
            why.join("; ")
        }
    }
}

impl Plan {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The decisions nobody can carry out, as lines for an error.
    pub fn unresolved(&self) -> Vec<String> {
        self.decisions
            .iter()
            .filter(|d| d.decision == Choice::Unresolved)
            .map(|d| {
                let mut line = format!(
                    "{} `{}{}`: {}",
                    d.scope_label(),
                    d.name,
                    d.specifier,
                    d.reason
                );
                if !d.looked_at.is_empty() {
                    line.push_str(&format!("\n    looked at: {}", d.looked_at.join("; ")));
                }
                line
            })
            .collect()
    }

    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "profile   {}", self.profile);
        let _ = writeln!(
            o,
            "target    {} ({})",
            self.root.display(),
            if self.os.pretty_name.is_empty() {
                "unknown OS"
            } else {
                &self.os.pretty_name
            }
        );
        let _ = writeln!(
            o,
            "python    {} -> {}",
            self.python.path.display(),
            self.python.resolved.display()
        );
        let _ = writeln!(
            o,
            "lock      {} ({}, sha256 {})",
            self.lock.file,
            match self.lock.format {
                crate::input::requirements::LockFormat::Pylock => "PEP 751 pylock.toml",
                crate::input::requirements::LockFormat::Requirements => "hashed requirements file",
            },
            self.lock.sha256.get(..12).unwrap_or("")
        );
        if self.apt.install.is_empty() {
            let _ = writeln!(o, "apt       nothing to install");
        } else {
            let names: Vec<String> = self
                .apt
                .install
                .iter()
                .map(|i| format!("{} ({})", i.name, i.reason))
                .collect();
            let _ = writeln!(
                o,
                "apt       install {}{}",
                names.join(", "),
                if self.apt.update {
                    " after apt-get update"
                } else {
                    ""
                }
            );
        }
        for p in &self.apt.present {
            let _ = writeln!(
                o,
                "          present {} {}",
                p.name,
                p.version.as_deref().unwrap_or("")
            );
        }
        for p in &self.apt.not_needed {
            let _ = writeln!(
                o,
                "          not needed {} (no pip in the venv: the stdlib's venv module makes it)",
                p.name
            );
        }
        let _ = writeln!(o, "venv      {}", self.venv.path.display());
        match &self.venv.action {
            VenvAction::Keep { generation } => {
                let _ = writeln!(o, "          keep {generation} (up to date)");
            }
            VenvAction::Switch { generation } => {
                let _ = writeln!(
                    o,
                    "          switch to the complete generation {generation}"
                );
            }
            VenvAction::Build { generation, reason } => {
                let _ = writeln!(
                    o,
                    "          build {generation} in {}: {reason}",
                    self.venv.generations_dir.display()
                );
                let _ = writeln!(
                    o,
                    "          from {} pinned requirements, hash-checked, {}",
                    self.venv.requirements,
                    match &self.wheelhouse {
                        Some(w) => format!("offline from {}", w.display()),
                        None => "from the package index".into(),
                    }
                );
            }
        }
        if let Some(r) = &self.venv.route {
            let kind = match r.kind {
                RouteKind::Stamp => "stamp",
                RouteKind::Native => "native",
                RouteKind::Download => "download",
                RouteKind::Pip => "pip",
            };
            let _ = writeln!(o, "          route: {kind} ({})", r.reason);
        }
        if let Some(b) = &self.bundle {
            let _ = writeln!(o, "bundle    {}: {}", b.file.display(), b.note);
            for d in &b.differs {
                let _ = writeln!(
                    o,
                    "            {}: bundle `{}`, this target `{}`",
                    d.field, d.bundle, d.target
                );
            }
        }
        if !self.venv.remove.is_empty() {
            let _ = writeln!(o, "          remove {}", self.venv.remove.join(", "));
        }
        if self.venv.system_site_packages {
            let _ = writeln!(o, "          with system site packages");
        }
        if !self.venv.inputs.import_check_skip.is_empty() {
            let _ = writeln!(
                o,
                "          import check skips {} (their dependencies are still checked)",
                self.venv.inputs.import_check_skip.join(", ")
            );
        }
        o.push_str(&decisions_table(&self.decisions));
        for p in &self.system_pip {
            let _ = writeln!(
                o,
                "system    pip install {}=={}{}{}",
                p.name,
                p.version,
                if p.flag {
                    " --break-system-packages"
                } else {
                    ""
                },
                if p.present {
                    " (already installed)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            o,
            "outputs   {} {} and {}",
            if self.outputs.write { "write" } else { "keep" },
            self.outputs.manifest.display(),
            self.outputs.ansible_fact.display()
        );
        let _ = writeln!(
            o,
            "result    {}",
            if self.noop {
                "nothing to do"
            } else {
                "changes the target"
            }
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::manifest::{GenerationRecord, PythonInfo};
    use crate::generation::store::generation_number;

    fn profile(dir: &Path) -> Profile {
        std::fs::write(
            dir.join("req.txt"),
            "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n",
        )
        .unwrap();
        let text = "schema_version = 1\nname = \"t\"\n[venv]\npath = \"/opt/venvs/t\"\nrequirements = \"req.txt\"\nkeep_generations = 2\n[apt]\npackages = [\"git\"]\n";
        crate::input::profile::parse(&dir.join("p.toml"), text, dir).unwrap()
    }

    fn observed(installed: &[(&str, &str)]) -> Observed {
        Observed {
            os_release: OsRelease::default(),
            os: None,
            externally_managed: true,
            system_dists: BTreeMap::new(),
            manifest_linked: false,
            installed: installed
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            apt_lists: true,
            interpreter: Interpreter {
                path: "/usr/bin/python3".into(),
                resolved: "/usr/bin/python3.11".into(),
                minor: Some("3.11".into()),
                identity: "1:2:3".into(),
                venv_module: true,
            },
            link: Link::Missing,
            generations: vec![],
            manifest: None,
            fact_entry: None,
            owner: None,
        }
    }

    fn record(name: &str, fp: &str) -> GenerationState {
        GenerationState {
            name: name.into(),
            number: generation_number(name).unwrap(),
            record: Some(GenerationRecord {
                schema_version: 1,
                generation: name.into(),
                fingerprint: fp.into(),
                python: PythonInfo {
                    base: "/usr/bin/python3".into(),
                    version: "3.11.2".into(),
                    abi: "cpython-311-x86_64-linux-gnu".into(),
                },
                externally_managed: true,
                distributions: vec![],
                built_at: "x".into(),
                system_site_packages: false,
                decisions: vec![],
                tree_sha256: None,
                import_check_skip: vec![],
            }),
        }
    }

    fn root() -> Target {
        Target { root: "/".into() }
    }

    #[test]
    fn fresh_target_installs_and_builds() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let plan = make(&p, &root(), &observed(&[]), &Sources::default()).unwrap();
        let names: Vec<&str> = plan.apt.install.iter().map(|i| i.name.as_str()).collect();
        // A pip-less venv from an interpreter with the venv module needs
        // no python3.11-venv; pip in the venv does (for ensurepip).
        assert_eq!(names, ["git"]);
        let mut with_pip = p.clone();
        with_pip.venv.pip = true;
        let plan2 = make(&with_pip, &root(), &observed(&[]), &Sources::default()).unwrap();
        let names: Vec<&str> = plan2.apt.install.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["python3.11-venv", "git"]);
        assert!(!plan.apt.update);
        assert!(
            matches!(&plan.venv.action, VenvAction::Build { generation, .. } if generation.starts_with("g1-"))
        );
        assert!(plan.outputs.write);
        assert!(!plan.noop);
    }

    #[test]
    fn present_packages_are_not_installed_and_lists_trigger_update() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let mut obs = observed(&[("python3.11-venv", "3.11.2-6"), ("git", "1:2.39.5-0")]);
        obs.apt_lists = false;
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        assert!(plan.apt.install.is_empty());
        assert!(!plan.apt.update, "no update when nothing is missing");
        // git; python3.11-venv is not wanted by a pip-less venv.
        assert_eq!(plan.apt.present.len(), 1);
    }

    #[test]
    fn matching_active_generation_is_kept_and_gc_respects_keep() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let fp = make(&p, &root(), &observed(&[]), &Sources::default())
            .unwrap()
            .venv
            .fingerprint;
        let mut obs = observed(&[("python3.11-venv", "1"), ("git", "1")]);
        obs.generations = vec![
            record("g1-00000000", "old"),
            record("g2-00000000", "old"),
            GenerationState {
                name: "g3-00000000".into(),
                number: 3,
                record: None,
            },
            record("g4-00000000", &fp),
        ];
        obs.link = Link::Generation("g4-00000000".into());
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        assert_eq!(
            plan.venv.action,
            VenvAction::Keep {
                generation: "g4-00000000".into()
            }
        );
        // keep 2: the active g4 and the newest complete other (g2); g3 is an incomplete leftover.
        assert_eq!(plan.venv.remove, ["g1-00000000", "g3-00000000"]);
    }

    #[test]
    fn changed_inputs_build_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let mut obs = observed(&[]);
        obs.generations = vec![record("g7-00000000", "other")];
        obs.link = Link::Generation("g7-00000000".into());
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        match plan.venv.action {
            VenvAction::Build { generation, .. } => assert!(generation.starts_with("g8-")),
            other => panic!("{other:?}"),
        }
        assert!(
            plan.venv.remove.is_empty(),
            "g7 stays as the rollback generation"
        );
    }

    #[test]
    fn a_complete_inactive_match_is_switched_to() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let fp = make(&p, &root(), &observed(&[]), &Sources::default())
            .unwrap()
            .venv
            .fingerprint;
        let mut obs = observed(&[]);
        obs.generations = vec![record("g1-00000000", "x"), record("g2-00000000", &fp)];
        obs.link = Link::Generation("g1-00000000".into());
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        assert_eq!(
            plan.venv.action,
            VenvAction::Switch {
                generation: "g2-00000000".into()
            }
        );
    }

    #[test]
    fn the_generation_active_before_is_kept_for_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let mut obs = observed(&[]);
        // g1 is active (switched back to); g2 is newer but was not active.
        obs.generations = vec![record("g1-00000000", "a"), record("g2-00000000", "b")];
        obs.link = Link::Generation("g1-00000000".into());
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        assert!(
            matches!(&plan.venv.action, VenvAction::Build { generation, .. } if generation.starts_with("g3-"))
        );
        assert_eq!(plan.venv.remove, ["g2-00000000"]);
    }

    #[test]
    fn a_foreign_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let mut obs = observed(&[]);
        obs.link = Link::Foreign;
        assert!(matches!(
            make(&p, &root(), &obs, &Sources::default()),
            Err(Error::Occupied { .. })
        ));
    }

    #[test]
    fn interpreter_identity_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let a = make(&p, &root(), &observed(&[]), &Sources::default())
            .unwrap()
            .venv
            .fingerprint;
        let mut obs = observed(&[]);
        obs.interpreter.identity = "9:9:9".into();
        let b = make(&p, &root(), &obs, &Sources::default())
            .unwrap()
            .venv
            .fingerprint;
        assert_ne!(a, b);
    }

    #[test]
    fn pip_in_the_venv_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile(dir.path());
        let without = make(&p, &root(), &observed(&[]), &Sources::default())
            .unwrap()
            .venv;
        p.venv.pip = true;
        let with = make(&p, &root(), &observed(&[]), &Sources::default())
            .unwrap()
            .venv;
        assert!(!without.inputs.pip && with.inputs.pip);
        assert_ne!(without.fingerprint, with.fingerprint);
    }

    /// The plan as `venvbake plan` prints it, text and JSON (snapshots:
    /// a change to either shows up in review; the JSON's fields are stable).
    #[test]
    fn plan_text_and_json_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let obs = observed(&[("python3.11-venv", "3.11.2-6+deb12u8")]);
        let sources = Sources {
            wheelhouse: Some("/srv/wheels".into()),
            ..Sources::default()
        };
        let plan = make(&p, &root(), &obs, &sources).unwrap();
        insta::assert_snapshot!("plan_text", plan.to_text());
        insta::assert_snapshot!("plan_json", plan.to_json());
    }

    #[test]
    fn the_plan_names_the_route_of_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile(dir.path());
        let kind = |p: &Profile, sources: &Sources| {
            make(p, &root(), &observed(&[]), sources)
                .unwrap()
                .venv
                .route
                .map(|r| r.kind)
        };
        let with_wheelhouse = Sources {
            wheelhouse: Some("/wheels".into()),
            ..Sources::default()
        };
        assert_eq!(kind(&p, &with_wheelhouse), Some(RouteKind::Native));
        assert_eq!(kind(&p, &Sources::default()), Some(RouteKind::Download));
        let stamp = Sources {
            bundle: Some("/b.bundle".into()),
            ..Sources::default()
        };
        assert_eq!(kind(&p, &stamp), Some(RouteKind::Stamp));
        p.venv.allow_sdist = true;
        assert_eq!(kind(&p, &Sources::default()), Some(RouteKind::Pip));
        p.venv.installer = crate::input::profile::Installer::Pip;
        assert_eq!(kind(&p, &with_wheelhouse), Some(RouteKind::Pip));
        let text = make(&p, &root(), &observed(&[]), &with_wheelhouse)
            .unwrap()
            .to_text();
        assert!(
            text.contains("route: pip (`[venv] installer = \"pip\"`)"),
            "{text}"
        );
    }

    #[test]
    fn an_import_check_skip_changes_the_fingerprint_and_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile(dir.path());
        let plain = make(&p, &root(), &observed(&[]), &Sources::default()).unwrap();
        assert!(!plain.to_text().contains("import check skips"));
        assert!(!plain.to_json().contains("import_check_skip"));
        p.venv.import_check_skip = vec!["six".into()];
        let skipping = make(&p, &root(), &observed(&[]), &Sources::default()).unwrap();
        assert_ne!(plain.venv.fingerprint, skipping.venv.fingerprint);
        assert!(
            skipping.to_text().contains("import check skips six"),
            "{}",
            skipping.to_text()
        );
        assert!(skipping.to_json().contains("\"import_check_skip\""));
    }

    #[test]
    fn an_import_check_skip_must_name_a_requirement_the_venv_serves() {
        let dir = tempfile::tempdir().unwrap();
        profile(dir.path()); // writes req.txt
        let base = "schema_version = 1\nname = \"t\"\n[venv]\npath = \"/opt/venvs/t\"\nrequirements = \"req.txt\"\n";
        let bad = format!("{base}import_check_skip = [\"lxml\"]\n");
        let e =
            crate::input::profile::parse(&dir.path().join("p.toml"), &bad, dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("p.toml:6:22: `venv.import_check_skip`: `lxml` is not a requirement"),
            "{e}"
        );
        let ok = format!("{base}import_check_skip = [\"Six\", \"six\"]\n");
        let q = crate::input::profile::parse(&dir.path().join("p.toml"), &ok, dir.path()).unwrap();
        assert_eq!(q.venv.import_check_skip, ["six"]);
    }

    #[test]
    fn prefer_os_moves_satisfied_requirements_to_apt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("req.txt"),
            "lxml>=4.9\nsix==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n",
        )
        .unwrap();
        let text = "schema_version = 1\nname = \"t\"\n[venv]\npath = \"/opt/venvs/t\"\nrequirements = \"req.txt\"\nsystem_site_packages = \"auto\"\n[python]\nprefer = \"os\"\n";
        let p = crate::input::profile::parse(&dir.path().join("p.toml"), text, dir.path()).unwrap();
        let mut obs = observed(&[]);
        let policy: BTreeMap<String, crate::decide::PolicyEntry> =
            [("python3-lxml", "4.9.2-1+b1"), ("python3-six", "1.16.0-4")]
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        crate::decide::PolicyEntry {
                            installed: None,
                            candidate: Some(v.to_string()),
                        },
                    )
                })
                .collect();
        let fb = Fallback::parse("lxml python3-lxml\nsix python3-six\n", "target");
        let lookups = ["lxml", "six"]
            .iter()
            .map(|n| {
                let c = crate::decide::mapping::candidates(n, &BTreeMap::new(), &fb);
                (n.to_string(), decide::lookup(&c, &policy, true))
            })
            .collect();
        obs.os = Some(lookups);
        let plan = make(&p, &root(), &obs, &Sources::default()).unwrap();
        let choices: Vec<Choice> = plan.decisions.iter().map(|d| d.decision).collect();
        // six is pinned to 1.16.0 and Debian has 1.16.0: apt serves it too.
        assert_eq!(choices, [Choice::Apt, Choice::Apt]);
        assert!(plan.venv.system_site_packages, "auto turns them on");
        assert!(plan.venv.pip_lines.is_empty());
        let names: Vec<&str> = plan.apt.install.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["python3-lxml", "python3-six"]);
        assert_eq!(plan.apt.install[0].reason, "requirement lxml");
        assert!(plan.unresolved().is_empty());
    }
}
