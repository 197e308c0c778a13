//! Building one venv generation in the target, and checking it.
//!
//! A generation is a complete venv in `<path>.generations/gN-<fingerprint>`.
//! It is created by the target's own interpreter, filled by pip from the
//! hash-checked lock (offline from a wheelhouse when one is given), checked
//! (every requirement's top-level modules import, `pip check` passes) and
//! only then marked complete by writing `.venvbake/generation.json`. A
//! generation that fails anywhere is removed; one left by a killed run has no
//! mark and is removed by the next apply. Switching the fixed path to a
//! generation is [`crate::commands::apply`]'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, PackageName};
use serde::Deserialize;

use crate::decide::{Choice, Decision};
use crate::error::{Error, Phase, Result};
use crate::generation::manifest::{Distribution, GenerationRecord, PythonInfo};
use crate::input::credentials::Credentials;
use crate::input::profile::Profile;
use crate::sys::exec::{self, Cmd};
use crate::sys::report::Reporter;
use crate::target::{Target, TargetError};

/// Prints what venvbake needs to know about an interpreter, as JSON. The
/// `venv` and `ensurepip` modules are looked for, not imported (importing
/// them took a third of the probe's time); the wheels `ensurepip` would
/// install are only looked up when `argv[1]` is `wheels` (a venv with pip).
const PROBE: &str = r#"
import importlib.util, json, os, platform, sys, sysconfig
def fmt(i):
    v = "%d.%d.%d" % (i.major, i.minor, i.micro)
    if i.releaselevel != "final":
        v += i.releaselevel[0] + str(i.serial)
    return v
ensurepip_ok = importlib.util.find_spec("ensurepip") is not None
venv_ok = importlib.util.find_spec("venv") is not None
stdlib = sysconfig.get_path("stdlib")
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    libc = ""
# The wheels the interpreter's ensurepip would install into a venv.
wheels = []
if sys.argv[1:] == ["wheels"]:
    try:
        import ensurepip
        if hasattr(ensurepip, "_get_packages"):
            for p in ensurepip._get_packages().values():
                wheels.append(p.wheel_path or os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", p.wheel_name))
        elif hasattr(ensurepip, "_get_pip_whl_path_ctx"):
            with ensurepip._get_pip_whl_path_ctx() as p:
                wheels.append(str(p))
    except Exception:
        wheels = []
print(json.dumps({
    "version": platform.python_version(),
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "stdlib": stdlib,
    "externally_managed": os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")),
    "ensurepip": ensurepip_ok,
    "venv": venv_ok,
    "libc": libc,
    "cache_tag": sys.implementation.cache_tag or "",
    "ensurepip_wheels": sorted(w for w in wheels if os.path.isfile(w)),
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": fmt(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    pub version: String,
    pub soabi: String,
    pub externally_managed: bool,
    pub ensurepip: bool,
    pub venv: bool,
    pub markers: BTreeMap<String, String>,
    /// `os.confstr("CS_GNU_LIBC_VERSION")`: `glibc 2.36`.
    #[serde(default)]
    pub libc: String,
    /// `sys.implementation.cache_tag`: `cpython-311`.
    #[serde(default)]
    pub cache_tag: String,
    /// Target paths of the wheels `ensurepip` would install (pip, setuptools).
    #[serde(default)]
    pub ensurepip_wheels: Vec<PathBuf>,
}

impl Probe {
    /// The facts wheel tags are matched against; `None` for anything but
    /// CPython on glibc Linux (the native installer leaves that to pip).
    pub fn interp(&self) -> Option<crate::steps::tags::Interp> {
        let m = |k: &str| self.markers.get(k).map(String::as_str).unwrap_or("");
        if m("implementation_name") != "cpython" || m("sys_platform") != "linux" {
            return None;
        }
        let mut v = m("python_version").split('.');
        let major = v.next()?.parse().ok()?;
        let minor = v.next()?.parse().ok()?;
        Some(crate::steps::tags::Interp {
            major,
            minor,
            machine: m("platform_machine").to_string(),
            glibc: Some(crate::steps::tags::parse_glibc(&self.libc)?),
        })
    }

    pub fn marker_env(&self) -> Option<MarkerEnvironment> {
        let g = |k: &str| self.markers.get(k).map(String::as_str).unwrap_or("");
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: g("implementation_name"),
            implementation_version: g("implementation_version"),
            os_name: g("os_name"),
            platform_machine: g("platform_machine"),
            platform_python_implementation: g("platform_python_implementation"),
            platform_release: g("platform_release"),
            platform_system: g("platform_system"),
            platform_version: g("platform_version"),
            python_full_version: g("python_full_version"),
            python_version: g("python_version"),
            sys_platform: g("sys_platform"),
        })
        .ok()
    }
}

/// What the plan needs of the interpreter besides a `venv` module.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Where the wheels its `ensurepip` installs are (pip in the venv, or
    /// pip to download with).
    pub pip_wheels: bool,
    /// `ensurepip` itself (the plan wanted python3.X-venv).
    pub ensurepip: bool,
}

/// Run the interpreter once to learn its version, ABI and PEP 668 marker,
/// and check it has what the plan needs.
pub fn probe(
    target: &Target,
    base: &[(String, String)],
    python: &Path,
    needs: Needs,
) -> Result<Probe> {
    let pip_wheels = needs.pip_wheels;
    let mut cmd = Cmd::new(python.display().to_string(), base)
        .chroot(target.chroot())
        .args(["-I", "-c", PROBE]);
    if pip_wheels {
        cmd = cmd.arg("wheels");
    }
    let out = exec::run(&cmd, 200, &mut |_| {}).map_err(|e| Error::Command {
        phase: Phase::Probe,
        what: format!("the interpreter `{}` does not run", python.display()),
        hint: ("check `[venv] python`; it must be a working CPython 3 in the target".into()),
        source: Box::new(e),
    })?;
    let text = out.text();
    let json = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let probe: Probe = serde_json::from_str(json).map_err(|e| {
        Error::Internal(format!(
            "could not read the interpreter probe ({e}): {text}"
        ))
    })?;
    if !probe.venv || (needs.ensurepip && !probe.ensurepip) {
        return Err(TargetError::NoVenvModule {
            python: python.to_path_buf(),
            message: if probe.venv {
                "the `ensurepip` module is missing".into()
            } else {
                "the `venv` module is missing".into()
            },
        }
        .into());
    }
    Ok(probe)
}

/// What building a generation needs.
pub struct Build<'a> {
    /// How the plan says the generation is filled.
    pub route: &'a crate::plan::Route,
    pub target: &'a Target,
    pub base_env: &'a [(String, String)],
    pub profile: &'a Profile,
    pub probe: &'a Probe,
    /// Target path of the new generation.
    pub gen_path: PathBuf,
    pub gen_name: String,
    pub fingerprint: String,
    /// Host path of a folder of wheels: install offline from it.
    pub wheelhouse: Option<&'a Path>,
    /// Host path of a CA bundle for the index (overrides `[index] cert`).
    pub cert: Option<&'a Path>,
    pub built_at: String,
    /// Resolved `system_site_packages`.
    pub system_site_packages: bool,
    /// The lines pip installs (requirements the venv serves, with hashes).
    pub pip_lines: &'a [String],
    /// Who serves each requirement, and why (recorded in the generation).
    pub decisions: &'a [Decision],
    /// Each requirement with who serves it, typed.
    pub served: &'a [crate::plan::Served],
    pub creds: &'a Credentials,
    /// venvbake's index client (the download route).
    pub index: Option<&'a crate::index::Index>,
}

/// Build, check and mark a generation. On failure the partial generation is removed.
pub fn build(b: &Build, reporter: &mut Reporter) -> Result<GenerationRecord> {
    let host_gen = b.target.host_path(&b.gen_path);
    let result = build_inner(b, &host_gen, reporter);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&host_gen);
    }
    result
}

fn pip_env(cmd: Cmd) -> Cmd {
    cmd.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONNOUSERSITE", "1")
}

/// Where pip takes the files from, as paths inside the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipSource {
    /// Offline: only this folder of wheels, no index.
    Wheelhouse(PathBuf),
    /// A package index (pip's default when `url` is None).
    Index {
        url: Option<String>,
        extra_urls: Vec<String>,
        cert: Option<PathBuf>,
    },
}

impl PipSource {
    /// Where the files come from, as the log says it.
    fn label(&self) -> String {
        match self {
            PipSource::Wheelhouse(_) => "offline from the wheelhouse".into(),
            PipSource::Index { url: Some(u), .. } => format!("from {u}"),
            PipSource::Index { url: None, .. } => "from PyPI".into(),
        }
    }
}

/// The pip command that fills a generation.
pub fn pip_install_cmd(
    base: &[(String, String)],
    chroot: Option<&Path>,
    gen_path: &Path,
    source: &PipSource,
    allow_sdist: bool,
    creds: &Credentials,
) -> Cmd {
    let meta = gen_path.join(".venvbake");
    let mut cmd = pip_env(Cmd::new(
        gen_path.join("bin/python").display().to_string(),
        base,
    ))
    .chroot(chroot)
    .args([
        "-I",
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-warn-script-location",
        "--root-user-action=ignore",
        "--progress-bar",
        "off",
        "--require-hashes",
    ]);
    cmd = cmd.args(sdist_options(allow_sdist).iter().copied());
    with_source(cmd, source, creds)
        .arg("--report")
        .arg(meta.join("pip-report.json").display().to_string())
        .arg("-r")
        .arg(meta.join("requirements.txt").display().to_string())
}

/// pip's options for source distributions: none without `allow_sdist`;
/// with it, each is built into a wheel by its PEP 517 backend and that wheel
/// installed, so every distribution has a RECORD that lists its files (a
/// legacy `setup.py install` writes an `.egg-info` that no RECORD covers, and
/// `verify` and `bundle` would find its files "extra").
fn sdist_options(allow_sdist: bool) -> &'static [&'static str] {
    if allow_sdist {
        &["--use-pep517"]
    } else {
        &["--only-binary", ":all:"]
    }
}

/// pip's options for where files come from; credentials only in pip's environment.
fn with_source(mut cmd: Cmd, source: &PipSource, creds: &Credentials) -> Cmd {
    match source {
        PipSource::Wheelhouse(w) => {
            cmd = cmd
                .args(["--no-index", "--find-links"])
                .arg(w.display().to_string());
        }
        PipSource::Index {
            url,
            extra_urls,
            cert,
        } => {
            cmd = creds.apply_to(
                cmd,
                &crate::input::profile::IndexSpec {
                    url: url.clone(),
                    ..Default::default()
                },
            );
            for u in extra_urls {
                cmd = cmd.arg("--extra-index-url").arg(u.clone());
            }
            if let Some(c) = cert {
                cmd = cmd.arg("--cert").arg(c.display().to_string());
            }
        }
    }
    cmd
}

/// Make a host file or folder visible to commands in the target: as it is on
/// the running system, through a read-only bind mount at `at` (a target
/// path) in a tree, never copied into the image. Returns the path to use.
fn stage(
    target: &Target,
    host_src: &Path,
    at: &Path,
) -> Result<(Option<crate::target::ns::Bound>, PathBuf)> {
    if !target.is_tree() {
        return Ok((None, host_src.to_path_buf()));
    }
    let bound = crate::target::ns::Bound::new(host_src, &target.host_path(at))?;
    Ok((Some(bound), at.to_path_buf()))
}

/// Where pip finds files, with the host inputs staged under `dir` (a target path).
fn pip_source(
    target: &Target,
    profile: &Profile,
    wheelhouse: Option<&Path>,
    cert: Option<&Path>,
    dir: &Path,
    staged: &mut Vec<crate::target::ns::Bound>,
) -> Result<PipSource> {
    Ok(match wheelhouse {
        Some(w) => {
            let (bound, path) = stage(target, w, &dir.join("wheelhouse"))?;
            staged.extend(bound);
            PipSource::Wheelhouse(path)
        }
        None => {
            let cert = match cert {
                Some(c) => {
                    let (bound, path) = stage(target, c, &dir.join("ca-bundle.pem"))?;
                    staged.extend(bound);
                    Some(path)
                }
                None => None,
            };
            PipSource::Index {
                url: profile.index.url.clone(),
                extra_urls: profile.index.extra_urls.clone(),
                cert,
            }
        }
    })
}

/// What installing into the system interpreter (the last resort) needs.
pub struct SystemInstall<'a> {
    pub target: &'a Target,
    pub base_env: &'a [(String, String)],
    pub profile: &'a Profile,
    pub entries: &'a [crate::plan::SystemPip],
    /// venvbake's own directory (a target path) for the temporary files.
    pub staging: &'a Path,
    pub wheelhouse: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub creds: &'a Credentials,
}

/// pip installs the locked lines of `entries` into the system interpreter,
/// with `--break-system-packages` where it is externally managed.
pub fn install_system(s: &SystemInstall, reporter: &mut Reporter) -> Result<()> {
    let dir = s.staging.join(".system-pip");
    let host_dir = s.target.host_path(&dir);
    crate::sys::fsutil::create_dirs(&host_dir)?;
    let result = (|| {
        let mut lines: String = s
            .entries
            .iter()
            .map(|e| e.pip_line.clone() + "\n")
            .collect();
        lines.push('\n');
        crate::sys::fsutil::atomic_write(
            &host_dir.join("requirements.txt"),
            lines.as_bytes(),
            0o644,
        )?;
        let mut staged = Vec::new();
        let source = pip_source(s.target, s.profile, s.wheelhouse, s.cert, &dir, &mut staged)?;
        let mut cmd = pip_env(Cmd::new(
            s.profile.venv.python.display().to_string(),
            s.base_env,
        ))
        .chroot(s.target.chroot())
        .args([
            "-I",
            "-m",
            "pip",
            "install",
            "--no-input",
            "--no-cache-dir",
            "--root-user-action=ignore",
        ])
        .args(["--progress-bar", "off", "--require-hashes", "--no-deps"]);
        if s.entries.iter().any(|e| e.flag) {
            cmd = cmd.arg("--break-system-packages");
        }
        cmd = cmd.args(sdist_options(s.profile.venv.allow_sdist).iter().copied());
        cmd = with_source(cmd, &source, s.creds)
            .arg("-r")
            .arg(dir.join("requirements.txt").display().to_string());
        reporter.step("system: pip install (last resort)");
        exec::run(&cmd, 0, &mut |l| reporter.output(l)).map_err(|e| Error::Command {
            phase: Phase::Install,
            what: "installing into the system interpreter failed".into(),
            hint: "is python3-pip installed in the target, and is the lock's file available?"
                .into(),
            source: Box::new(e),
        })?;
        drop(staged);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&host_dir);
    result
}

const DISK_FULL: &str = "the disk holding the venv is full; free space (old generations: `venvbake gc`) and apply again; the partial generation was removed";

/// The hint for a failed `pip install`, from what pip printed.
fn pip_hint(e: &crate::sys::exec::CommandError, offline: bool) -> &'static str {
    if e.mentions("No space left on device") {
        DISK_FULL
    } else if e.mentions("THESE PACKAGES DO NOT MATCH THE HASHES") {
        "a file does not match the lock's hash: the file was altered, or the lock is wrong; regenerate it with `scripts/lock-profile`"
    } else if e.mentions("CERTIFICATE_VERIFY_FAILED") {
        "TLS verification failed: behind a TLS-inspecting proxy or with a private index, give its CA bundle with `[index] cert` or `--cert`"
    } else if e.mentions("Could not fetch URL")
        || e.mentions("NewConnectionError")
        || e.mentions("Connection broken")
        || e.mentions("IncompleteRead")
        || e.mentions("Temporary failure in name resolution")
        || e.mentions("Connection reset")
    {
        "the package index could not be reached: check the network and proxy variables, or build offline with `--wheelhouse`"
    } else if e.mentions("No matching distribution") || e.mentions("Could not find a version") {
        if offline {
            "the wheelhouse lacks a file for this Python; fill it with `pip download` for the target's Python version and platform"
        } else {
            "the index has no wheel of that version for this Python and platform; `[venv] allow_sdist = true` lets pip build one from source (with compilers in the image)"
        }
    } else if e.mentions("Hashes are required") {
        "a dependency is missing from the lock; regenerate it with `scripts/lock-profile`"
    } else {
        "pip's own reason is in the output above"
    }
}

/// pip installs the venv's share of the lock into the generation.
fn install_lock(b: &Build, chroot: Option<&Path>, reporter: &mut Reporter) -> Result<()> {
    let mut staged = Vec::new();
    let source = pip_source(
        b.target,
        b.profile,
        b.wheelhouse,
        b.cert,
        &b.gen_path.join(".venvbake"),
        &mut staged,
    )?;

    let n = b.pip_lines.len();
    reporter.step(format!(
        "venv: install {n} pinned requirements {}",
        source.label()
    ));
    let pip = pip_install_cmd(
        b.base_env,
        chroot,
        &b.gen_path,
        &source,
        b.profile.venv.allow_sdist,
        b.creds,
    );
    exec::run(&pip, 0, &mut |l| reporter.output(l)).map_err(|e| {
        let missing = e
            .recent
            .iter()
            .find_map(|l| l.split("No matching distribution found for ").nth(1))
            .map(|s| s.trim().to_string());
        let hint = match (b.wheelhouse, missing) {
            (Some(w), Some(req)) if !e.mentions("CERTIFICATE_VERIFY_FAILED") => {
                let minor = b.probe.markers.get("python_version").cloned().unwrap_or_default();
                format!(
                    "the wheelhouse has no file of `{req}` for Python {minor}; on the build host run: venvbake fetch {} --dest {} --python {minor}",
                    b.profile.file.display(),
                    w.display()
                )
            }
            _ => pip_hint(&e, b.wheelhouse.is_some()).to_string(),
        };
        Error::Command {
            phase: Phase::Install,
            what: "installing the requirements failed".into(),
            hint: (hint),
            source: Box::new(e),
        }
    })?;
    drop(staged);
    Ok(())
}

/// Who fills a generation, and why.
enum Way {
    /// venvbake's own installer, with these wheels (the lock's, then pip's own).
    Native(Vec<crate::steps::install::Chosen>),
    /// pip, for the reason given.
    Pip(String),
}

/// What [`choose_way`] found: a [`Way`] to install with now, or the
/// index first: venvbake's own client fetches the lock's wheels (on the
/// build host, through its download cache), then the native installer.
enum Route {
    Install(Way),
    Download,
}

/// The native installer when each requirement has a wheel that fits: from
/// the wheelhouse, or downloaded from the index first; pip when the profile
/// asks for it, or for a source distribution that `allow_sdist` permits.
fn choose_way(b: &Build) -> Result<Route> {
    use crate::plan::RouteKind;
    // What only the probe can tell, first; then the plan's route.
    if b.route.kind != RouteKind::Pip {
        if b.probe.interp().is_none() {
            return Ok(Route::Install(Way::Pip(
                "the native installer serves CPython on glibc Linux".into(),
            )));
        }
        if b.profile.venv.pip && b.probe.ensurepip_wheels.is_empty() {
            return Ok(Route::Install(Way::Pip(
                "the interpreter's ensurepip wheels were not found".into(),
            )));
        }
    }
    match (b.route.kind, b.wheelhouse) {
        (RouteKind::Pip, _) => Ok(Route::Install(Way::Pip(b.route.reason.clone()))),
        (RouteKind::Native, wheelhouse) => native_from(b, wheelhouse).map(Route::Install),
        (RouteKind::Download, None) => Ok(Route::Download),
        (kind, _) => Err(Error::Internal(format!(
            "the planned route `{kind:?}` does not fit this build"
        ))),
    }
}

/// The requirements the venv serves on this target (markers evaluated).
fn venv_requirements<'b>(b: &'b Build) -> Vec<&'b crate::input::requirements::Requirement> {
    let env = b.probe.marker_env();
    b.served
        .iter()
        .filter(|s| {
            s.by == Choice::Venv && env.as_ref().is_none_or(|env| s.requirement.applies(env))
        })
        .map(|s| &s.requirement)
        .collect()
}

/// The native installer with the wheels of `wheelhouse` (a host path), or
/// of the lock's `path`s without one. When a requirement has no wheel that
/// fits, pip builds it if `allow_sdist` permits; else the build stops, with
/// the `venvbake fetch` hint.
fn native_from(b: &Build, wheelhouse: Option<&Path>) -> Result<Way> {
    let Some(interp) = b.probe.interp() else {
        return Ok(Way::Pip(
            "the native installer serves CPython on glibc Linux".into(),
        ));
    };
    let reqs = venv_requirements(b);
    // No wheelhouse: the wheels a `pylock.toml`'s `path` keys name.
    let lock_dir = b
        .profile
        .requirements
        .file
        .parent()
        .unwrap_or(Path::new("."));
    let files = match wheelhouse {
        Some(w) => {
            crate::steps::install::scan_wheelhouse(w).map_err(|e| Error::io("read", w, e))?
        }
        None => Vec::new(),
    };
    let wheelhouse = wheelhouse.unwrap_or(lock_dir);
    let supported = crate::steps::tags::supported(&interp);
    let minor = format!("{}.{}", interp.major, interp.minor);
    let mut chosen = match crate::steps::install::select(
        &reqs, wheelhouse, &files, &supported, &minor,
    ) {
        Ok(c) => c,
        Err(e) if b.profile.venv.allow_sdist => {
            return Ok(Way::Pip(format!("{e}; `allow_sdist` lets pip build it")));
        }
        Err(e) => {
            let hint = format!(
                "fill the wheelhouse for this Python on the build host: venvbake fetch {} --dest {} --python {minor}",
                b.profile.file.display(),
                wheelhouse.display()
            );
            return Err(Error::Install {
                source: Box::new(e),
                hint,
            });
        }
    };
    add_ensurepip(b, &mut chosen);
    Ok(Way::Native(chosen))
}

/// pip in the venv, as `python -m venv` would give it, unless the lock pins
/// it or the profile asks for a venv without pip: the wheels the target's
/// `ensurepip` carries.
fn add_ensurepip(b: &Build, chosen: &mut Vec<crate::steps::install::Chosen>) {
    let ensurepip: &[PathBuf] = if b.profile.venv.pip {
        &b.probe.ensurepip_wheels
    } else {
        &[]
    };
    for w in ensurepip {
        let file = b.target.host_path(w);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(parsed) = crate::steps::tags::WheelName::parse(&name) else {
            continue;
        };
        if chosen.iter().any(|c| c.name == parsed.name) {
            continue;
        }
        chosen.push(crate::steps::install::Chosen {
            name: parsed.name,
            file,
            allowed: Vec::new(),
            size: None,
            // ensurepip asks pip for them by name: pip marks them requested.
            requested: true,
            from_lock: false,
            requirement: name,
        });
    }
}

/// The venv's share of the lock from the index, fetched with venvbake's own
/// client (on the build host; the cache first), each file the best fit for
/// this interpreter among those the lock allows, checked against the lock's
/// sha256 and size, and handed to the native installer as it arrives.
struct Downloads<'a> {
    index: &'a crate::index::Index,
    reqs: Vec<&'a crate::input::requirements::Requirement>,
    wants: Vec<crate::index::Want>,
    /// The wheel tags this interpreter accepts, best first.
    supported: Vec<String>,
    /// The target's own pip wheels, at hand (after the lock's slots).
    extras: Vec<crate::steps::install::Chosen>,
}

impl<'a> Downloads<'a> {
    fn new(b: &'a Build) -> Result<Self> {
        let Some(interp) = b.probe.interp() else {
            return Err(Error::Internal(
                "the download route needs CPython on glibc Linux".into(),
            ));
        };
        let index = b
            .index
            .ok_or_else(|| Error::Internal("the download route has no index client".into()))?;
        let reqs = venv_requirements(b);
        let wants = reqs
            .iter()
            .map(|r| crate::index::Want::for_requirement(r))
            .collect();
        if let Some(scratch) = index.scratch() {
            crate::sys::fsutil::create_dirs(scratch)?;
        }
        let mut extras = Vec::new();
        add_ensurepip(b, &mut extras);
        extras.retain(|e| reqs.iter().all(|r| r.name != e.name));
        Ok(Downloads {
            index,
            reqs,
            wants,
            supported: crate::steps::tags::supported(&interp),
            extras,
        })
    }

    /// The installer's slots: the lock's requirements, then the extras.
    fn names(&self) -> Vec<PackageName> {
        (self.reqs.iter().map(|r| r.name.clone()))
            .chain(self.extras.iter().map(|e| e.name.clone()))
            .collect()
    }

    /// Where the files come from, for the log.
    fn label(&self) -> String {
        let store = match &self.index.store {
            crate::index::Store::Cache(c) => format!("cache {}", c.root().display()),
            crate::index::Store::Scratch(_) => "no cache".to_string(),
        };
        format!(
            "{} wheel(s) from {} ({store})",
            self.wants.len(),
            crate::index::masked(&self.index.urls.join(", "))
        )
    }

    /// Fetch every file, each into `incoming` as soon as it is at hand (the
    /// extras first); `incoming` is closed however this ends.
    fn fetch(
        &self,
        incoming: &crate::steps::install::Incoming,
        progress: &dyn crate::index::Progress,
    ) -> std::result::Result<Vec<crate::index::Got>, crate::index::IndexError> {
        struct Closes<'i>(&'i crate::steps::install::Incoming);
        impl Drop for Closes<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _closes = Closes(incoming);
        let n = self.reqs.len();
        for (k, e) in self.extras.iter().enumerate() {
            incoming.arrive(n + k, e.clone());
        }
        let rank = |filename: &str| {
            crate::steps::tags::WheelName::parse(filename)
                .and_then(|w| crate::steps::tags::rank(&w, &self.supported))
        };
        self.index
            .fetch_each(&self.wants, &rank, progress, &|i, got| {
                let r = self.reqs[i];
                incoming.arrive(
                    i,
                    crate::steps::install::Chosen {
                        name: r.name.clone(),
                        file: got.file.clone(),
                        allowed: vec![got.sha256.clone()],
                        size: got.size,
                        requested: true,
                        from_lock: true,
                        requirement: r.text.clone(),
                    },
                )
            })
    }

    /// What the fetch did, for the log.
    fn summary(got: &[crate::index::Got], took: std::time::Duration) -> String {
        let cached = got.iter().filter(|g| g.cached).count();
        let bytes: u64 = got
            .iter()
            .filter(|g| !g.cached)
            .filter_map(|g| std::fs::metadata(&g.file).ok().map(|m| m.len()))
            .sum();
        format!(
            "venv: {} wheel(s): {} from the cache, {} downloaded ({:.1} MB) in {:.2}s",
            got.len(),
            cached,
            got.len() - cached,
            bytes as f64 / 1e6,
            took.as_secs_f64()
        )
    }
}

/// Threads for the native installer: one per core, at most 16.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
}

/// The hint for a failure of the native installer.
fn install_hint(e: &crate::steps::install::InstallError) -> String {
    use crate::steps::install::InstallError as E;
    match e {
        E::HashMismatch { .. } | E::SizeMismatch { .. } => "a file does not match the lock's hash or size: the file was altered, or the lock is wrong; regenerate it with `scripts/lock-profile`".into(),
        E::Wheel(w) if w.io_error().and_then(std::io::Error::raw_os_error) == Some(28) => DISK_FULL.into(),
        E::Wheel(crate::steps::wheel::WheelError::Record { .. }) => "the wheel's files disagree with its own RECORD (PEP 427): it was changed after it was built, or built broken; the lock's hash only pins the archive as published. Get the wheel from its publisher again, or lock another version".into(),
        E::Wheel(crate::steps::wheel::WheelError::Invalid { .. }) => "the wheel is damaged or not a wheel; fetch it again (`venvbake fetch`), or set `[venv] installer = \"pip\"`".into(),
        E::Compile(c) if c.mentions("No space left on device") => DISK_FULL.into(),
        _ => "see the message above; the partial generation was removed".into(),
    }
}

/// Fill the generation with the native installer, each wheel as it
/// arrives (while `venv` may still be making the venv around it); returns
/// each distribution's file hash and what was done.
fn install_native(
    b: &Build,
    host_gen: &Path,
    incoming: &crate::steps::install::Incoming,
    watch: &dyn crate::steps::install::Watch,
) -> Result<(BTreeMap<PackageName, String>, crate::steps::install::Stats)> {
    let (major, minor) = native_version(b);
    let site = crate::sys::layout::venv_site(host_gen, major, minor);
    let job = crate::steps::install::Job {
        layout: crate::steps::wheel::Layout {
            prefix: host_gen.to_path_buf(),
            site,
            python: b.gen_path.join("bin/python").display().to_string(),
            major,
            minor,
        },
        chroot: b.target.chroot(),
        base_env: b.base_env,
        gen_path: &b.gen_path,
        shown_path: &b.profile.venv.path,
        cache_tag: &b.probe.cache_tag,
        compiler: &b.profile.venv.python,
        threads: threads(),
    };
    crate::steps::install::install(&job, incoming, watch).map_err(|e| Error::Install {
        hint: install_hint(&e),
        source: Box::new(e),
    })
}

/// Fill the generation with pip (ensurepip first); returns each distribution's file hash.
fn install_pip(
    b: &Build,
    host_gen: &Path,
    why: &str,
    reporter: &mut Reporter,
) -> Result<BTreeMap<PackageName, String>> {
    reporter.info(&format!("installer: pip ({why})"));
    let ensurepip = Cmd::new(
        b.gen_path.join("bin/python").display().to_string(),
        b.base_env,
    )
    .chroot(b.target.chroot())
    .args(["-I", "-m", "ensurepip", "--upgrade", "--default-pip"]);
    exec::run(&ensurepip, 0, &mut |l| reporter.output(l)).map_err(venv_error)?;
    if !b.pip_lines.is_empty() {
        install_lock(b, b.target.chroot(), reporter)?;
    }
    if !b.profile.venv.pip {
        // `pip = false`: pip served the install; what ensurepip added goes
        // again, unless the lock pins it.
        let locked = |n: &str| {
            b.profile
                .requirements
                .items
                .iter()
                .any(|r| r.name.as_ref() == n)
        };
        let extra: Vec<&str> = ["pip", "setuptools"]
            .into_iter()
            .filter(|n| !locked(n))
            .collect();
        let cmd = pip_env(Cmd::new(
            b.gen_path.join("bin/python").display().to_string(),
            b.base_env,
        ))
        .chroot(b.target.chroot())
        .args(["-I", "-m", "pip", "uninstall", "--yes", "--no-input"])
        .args(extra);
        exec::run(&cmd, 0, &mut |l| reporter.output(l)).map_err(|e| Error::Command {
            phase: Phase::Install,
            what: "removing pip from the venv (`pip = false`) failed".into(),
            hint: "pip's own reason is in the output above".into(),
            source: Box::new(e),
        })?;
    }
    let report_path = host_gen.join(".venvbake/pip-report.json");
    let hashes = read_report_hashes(&report_path);
    let _ = std::fs::remove_file(&report_path);
    Ok(hashes)
}

fn venv_error(e: exec::CommandError) -> Error {
    Error::Command {
        phase: Phase::Venv,
        what: "creating the venv failed".into(),
        hint: (if e.mentions("No space left on device") {
            DISK_FULL.into()
        } else {
            "is the interpreter's venv package (`python3.X-venv`) installed and the disk writable?"
                .into()
        }),
        source: Box::new(e),
    }
}

/// The distributions the check covers, each requirement's from whoever
/// serves it (`dists`: the venv's, `system`: the system's), and a line for
/// each requirement that nobody installed.
fn to_check<'d>(
    b: &Build,
    dists: &'d BTreeMap<PackageName, crate::target::dists::DistInfo>,
    system: &'d BTreeMap<PackageName, crate::target::dists::DistInfo>,
) -> (Vec<&'d crate::target::dists::DistInfo>, Vec<String>) {
    let env = b.probe.marker_env();
    let mut checked: Vec<&crate::target::dists::DistInfo> = Vec::new();
    let mut missing = Vec::new();
    for s in b.served {
        let req = &s.requirement;
        let found = match s.by {
            Choice::Venv => {
                if env.as_ref().is_some_and(|env| !req.applies(env)) {
                    continue;
                }
                dists.get(&req.name)
            }
            Choice::Apt => system.get(&req.name),
            _ => continue,
        };
        let skipped = |d: &crate::target::dists::DistInfo| {
            b.profile
                .venv
                .import_check_skip
                .iter()
                .any(|s| s.as_str() == d.normalized.as_ref())
        };
        match found {
            // Installed, but its modules are not imported (the dependency
            // check still covers it).
            Some(dist) if skipped(dist) => {}
            Some(dist) => {
                if !checked.iter().any(|c| c.normalized == dist.normalized) {
                    checked.push(dist);
                }
            }
            None => missing.push(format!(
                "`{}` is not installed ({} should serve it)",
                req.text,
                s.by.label()
            )),
        }
    }
    (checked, missing)
}

/// The import check's groups for `checked`: each distribution's top-level
/// modules (a module two claim, once), waiting for the tokens `token` gives
/// it and what it requires (none: in place already).
fn import_units(
    b: &Build,
    checked: &[&crate::target::dists::DistInfo],
    token: impl Fn(&crate::target::dists::DistInfo) -> Option<usize>,
) -> Vec<Vec<crate::steps::imports::Unit>> {
    let env = b.probe.marker_env();
    let mut seen = std::collections::BTreeSet::new();
    crate::target::dists::import_groups(checked, env.as_ref())
        .into_iter()
        .map(|g| {
            g.into_iter()
                .map(|u| crate::steps::imports::Unit {
                    modules: checked[u.dist]
                        .top_level
                        .iter()
                        .filter(|m| seen.insert(m.as_str()))
                        .cloned()
                        .collect(),
                    waits: std::iter::once(u.dist)
                        .chain(u.needs)
                        .filter_map(|d| token(checked[d]))
                        .collect(),
                })
                .collect()
        })
        .collect()
}

/// The distributions a system-site-packages venv also sees.
fn seen_system(b: &Build) -> BTreeMap<PackageName, crate::target::dists::DistInfo> {
    if b.system_site_packages {
        system_dists(b)
    } else {
        Default::default()
    }
}

/// The generation's interpreter, as a command.
fn venv_python(b: &Build) -> Cmd {
    Cmd::new(
        b.gen_path.join("bin/python").display().to_string(),
        b.base_env,
    )
    .chroot(b.target.chroot())
}

/// Check a filled generation: every requirement is installed by whoever
/// serves it, every venv distribution's requirements are met (what `pip
/// check` reports) and every requirement's top-level modules import with
/// the generation's own interpreter: `imports` runs that check (or waits
/// for the one that ran meanwhile) given the groups. Returns the venv's
/// distributions.
fn check_generation(
    b: &Build,
    host_gen: &Path,
    imports: impl FnOnce(Vec<Vec<crate::steps::imports::Unit>>) -> crate::steps::imports::Outcome,
    reporter: &mut Reporter,
) -> Result<BTreeMap<PackageName, crate::target::dists::DistInfo>> {
    reporter.step("venv: check imports and dependencies");
    let site = site_packages(host_gen)?;
    let dists = crate::target::dists::scan(&site);
    let system = seen_system(b);
    let (checked, mut failures) = to_check(b, &dists, &system);
    let groups = import_units(b, &checked, |_| None);
    // What `pip check` would find: every venv distribution's requirements met.
    if let Some(env) = &b.probe.marker_env() {
        failures.extend(crate::target::dists::unmet(&dists, &system, env));
    }
    if !failures.is_empty() {
        return Err(Error::CheckFailed {
            generation: b.gen_name.clone(),
            failures: crate::target::dists::once(failures),
        });
    }
    let said = imports(groups).map_err(|failures| Error::CheckFailed {
        generation: b.gen_name.clone(),
        failures,
    })?;
    for line in &said {
        reporter.output(line);
    }
    Ok(dists)
}

/// Runs the import check as the native installer goes: when every wheel is
/// unpacked, the groups go to the check, each distribution waiting for its
/// wheel (and those it requires) to be compiled.
struct ImportAsCompiled<'a> {
    b: &'a Build<'a>,
    site: PathBuf,
    /// The installer's slots, by name.
    names: &'a [PackageName],
    check: &'a crate::steps::imports::Check<'a>,
}

impl crate::steps::install::Watch for ImportAsCompiled<'_> {
    fn unpacked(&self) {
        let dists = crate::target::dists::scan(&self.site);
        let system = seen_system(self.b);
        // What is missing is reported by the check after the install.
        let (checked, _) = to_check(self.b, &dists, &system);
        let groups = import_units(self.b, &checked, |d| {
            self.names.iter().position(|n| *n == d.normalized)
        });
        self.check.add(groups);
    }

    fn compiled(&self, i: usize) {
        self.check.done(i);
    }
}

/// [`check_generation`], with the generation's tree hash computed on other
/// threads at the same time (both only read the generation). `known`
/// gives the digests of files venvbake has just written (computed as they
/// were), which the hash takes instead of reading those files again.
fn check_and_hash(
    b: &Build,
    host_gen: &Path,
    imports: impl FnOnce(Vec<Vec<crate::steps::imports::Unit>>) -> crate::steps::imports::Outcome,
    known: impl FnOnce() -> crate::generation::verify::Known + Send,
    reporter: &mut Reporter,
) -> (
    Result<BTreeMap<PackageName, crate::target::dists::DistInfo>>,
    Result<String>,
) {
    std::thread::scope(|s| {
        let hashing = s.spawn(|| {
            crate::generation::verify::tree_sha256_known(host_gen, known())
                .map_err(|e| Error::io("hash", host_gen, e))
        });
        let checked = check_generation(b, host_gen, imports, reporter);
        let hash = hashing
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the tree hash thread failed".into())));
        (checked, hash)
    })
}

/// The import check, run now over every group.
fn import_now<'a>(
    b: &'a Build<'a>,
) -> impl FnOnce(Vec<Vec<crate::steps::imports::Unit>>) -> crate::steps::imports::Outcome + 'a {
    move |groups| crate::steps::imports::Check::now(venv_python(b), groups)
}

/// Stamp a generation from a bundle: unpack, check the content hash against
/// the bundle's, run the same checks as a build, then mark it complete with
/// the bundle's record. On failure the partial generation is removed.
pub fn stamp(
    b: &Build,
    file: &Path,
    header: &crate::generation::bundle::Header,
    early: Option<crate::generation::bundle::Early>,
    reporter: &mut Reporter,
) -> Result<GenerationRecord> {
    let host_gen = b.target.host_path(&b.gen_path);
    let result = (|| {
        reporter.step(format!(
            "venv: unpack bundle {} into {}",
            file.display(),
            b.gen_path.display()
        ));
        // Begun while the apply probed and compared, or begun now.
        let (unpacked, started) = match early {
            Some(early) => early.take(),
            None => {
                let started = std::time::Instant::now();
                (crate::generation::bundle::unpack(file, &host_gen), started)
            }
        };
        let (n, written) = unpacked?;
        reporter.info(&format!(
            "unpacked {n} entries in {:.2}s",
            started.elapsed().as_secs_f64()
        ));
        let (checked, got) = check_and_hash(b, &host_gen, import_now(b), || written, reporter);
        // A damaged bundle is the first thing to say, whatever else failed.
        let got = got?;
        if got != header.tree_sha256 {
            return Err(Error::Bundle {
                file: file.to_path_buf(),
                message: format!(
                    "the unpacked files hash to {got}, the bundle promises {}: it is damaged",
                    header.tree_sha256
                ),
            });
        }
        checked?;
        crate::generation::manifest::write_generation(&host_gen, &header.record)?;
        reporter.finish();
        Ok(header.record.clone())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&host_gen);
    }
    result
}

/// What venvbake adds to a made venv besides the distributions: the venv's
/// `pip.conf` (the organisation's index, no credentials) and the lines of
/// the lock it installs (`.venvbake/requirements.txt`).
fn write_venv_extras(b: &Build, host_gen: &Path) -> Result<()> {
    if let Some(conf) = crate::input::credentials::venv_pip_conf(&b.profile.index) {
        crate::sys::fsutil::atomic_write(&host_gen.join("pip.conf"), conf.as_bytes(), 0o644)?;
    }
    let meta = host_gen.join(".venvbake");
    crate::sys::fsutil::create_dirs(&meta)?;
    let mut lines = b.pip_lines.join("\n");
    lines.push('\n');
    crate::sys::fsutil::atomic_write(&meta.join("requirements.txt"), lines.as_bytes(), 0o644)
        .map_err(Into::into)
}

/// The target's `major.minor`, as the native installer lays out the venv.
fn native_version(b: &Build) -> (u32, u32) {
    b.probe
        .interp()
        .map(|i| (i.major, i.minor))
        .unwrap_or((3, 0))
}

fn build_inner(b: &Build, host_gen: &Path, reporter: &mut Reporter) -> Result<GenerationRecord> {
    let chroot = b.target.chroot();
    let spec = &b.profile.venv;
    if let Some(parent) = host_gen.parent() {
        crate::sys::fsutil::create_dirs(parent)?;
    }
    // The venv without pip: the native installer adds pip from the same
    // wheels ensurepip uses; the pip path runs ensurepip as a command of its
    // own (`venv` hides ensurepip's output, and with it the reason it failed).
    let mut venv_cmd = Cmd::new(spec.python.display().to_string(), b.base_env)
        .chroot(chroot)
        .args(["-I", "-m", "venv", "--without-pip"]);
    if b.system_site_packages {
        venv_cmd = venv_cmd.arg("--system-site-packages");
    }
    let venv_cmd = venv_cmd.arg(b.gen_path.display().to_string());
    // `pip.conf` and the lock's lines first: pip reads the lines.
    write_venv_extras(b, host_gen)?;
    // Files from an index are downloaded while `venv` makes the venv.
    let way = match choose_way(b)? {
        Route::Install(way) => Some(way),
        Route::Download => None,
    };
    let (hashes, dists, tree_sha256) = match way {
        None | Some(Way::Native(_)) => {
            let given = match way {
                Some(Way::Native(chosen)) => Some(chosen),
                _ => None,
            };
            // The wheels unpack and compile (with the base interpreter)
            // while `venv` makes the venv around them; the import check
            // (the venv's interpreter) waits for it. The directories both
            // write into exist first: `venv` makes only what is missing, and
            // would trip over one made meanwhile.
            let (major, minor) = native_version(b);
            crate::sys::fsutil::create_dirs(&host_gen.join("bin"))?;
            crate::sys::fsutil::create_dirs(&crate::sys::layout::venv_site(
                host_gen, major, minor,
            ))?;
            let interpreter = crate::steps::imports::Gate::default();
            // The import check starts on what is compiled while the rest compiles.
            let check = crate::steps::imports::Check::new(venv_python(b), Some(&interpreter));
            std::thread::scope(|s| -> Result<_> {
                // On every way out, the check's workers stop.
                let _stops = crate::steps::imports::Abandons(&check);
                let venv = s.spawn(|| {
                    // Opens the gate however this ends, so the check never waits forever.
                    struct Opens<'g>(&'g crate::steps::imports::Gate, bool);
                    impl Drop for Opens<'_> {
                        fn drop(&mut self) {
                            self.0.open(self.1);
                        }
                    }
                    let mut opens = Opens(&interpreter, false);
                    let mut lines = Vec::new();
                    let r = exec::run(&venv_cmd, 0, &mut |l| lines.push(l.to_string()));
                    opens.1 = r.is_ok();
                    (r, lines)
                });
                // The wheelhouse's wheels are all at hand; an index's arrive
                // as their downloads finish, and unpack as they arrive.
                let (names, locked, incoming, from, downloads) = match given {
                    Some(chosen) => (
                        chosen.iter().map(|c| c.name.clone()).collect(),
                        chosen.iter().filter(|c| c.from_lock).count(),
                        crate::steps::install::Incoming::all(chosen),
                        "offline from the wheelhouse",
                        None,
                    ),
                    None => {
                        let d = Downloads::new(b)?;
                        let names: Vec<PackageName> = d.names();
                        let incoming = crate::steps::install::Incoming::expect(names.len());
                        let locked = d.reqs.len();
                        (
                            names,
                            locked,
                            incoming,
                            "from the downloaded wheels",
                            Some(d),
                        )
                    }
                };
                let watch = ImportAsCompiled {
                    b,
                    site: crate::sys::layout::venv_site(host_gen, major, minor),
                    names: &names,
                    check: &check,
                };
                let imported = s.spawn(|| check.run());
                if let Some(d) = &downloads {
                    reporter.info(&format!(
                        "venv: fetch {}; each wheel is installed as it arrives",
                        d.label()
                    ));
                }
                reporter.step(format!(
                    "venv: create {} and install {locked} pinned requirements {from} (native installer, {} wheels{})",
                    b.gen_path.display(),
                    names.len(),
                    if locked < names.len() { " with pip" } else { "" }
                ));
                let installed = match &downloads {
                    None => install_native(b, host_gen, &incoming, &watch),
                    Some(d) => {
                        let log = crate::index::LineLog::new(reporter, d.wants.len());
                        let (installed, fetched) = std::thread::scope(|f| {
                            let fetching = f.spawn(|| {
                                let started = std::time::Instant::now();
                                (d.fetch(&incoming, &log), started.elapsed())
                            });
                            let installed = install_native(b, host_gen, &incoming, &watch);
                            (installed, fetching.join())
                        });
                        drop(log);
                        // A download's error explains the install's (it
                        // stopped for want of wheels).
                        let (got, took) = fetched
                            .map_err(|_| Error::Internal("the download thread failed".into()))?;
                        reporter.info(&Downloads::summary(&got?, took));
                        installed
                    }
                };
                if let Ok((_, stats)) = &installed {
                    reporter.info(&stats.summary());
                }
                let hashes = installed.map(|(hashes, _)| hashes);
                // Everything is compiled (or never will be): what waits now, never goes.
                check.close();
                let (made, lines) = venv
                    .join()
                    .map_err(|_| Error::Internal("the venv thread failed".into()))?;
                for l in &lines {
                    reporter.output(l);
                }
                // Without a venv, its error is the one to tell.
                made.map_err(venv_error)?;
                let hashes = hashes?;
                // Downloads without a cache went to the generation: not part of the venv.
                if let Some(dir) = b.index.and_then(|i| i.scratch()).filter(|d| d.exists()) {
                    crate::sys::fsutil::remove_dirs(dir)?;
                }
                let (checked, tree_sha256) = check_and_hash(
                    b,
                    host_gen,
                    |_| {
                        imported.join().unwrap_or_else(|_| {
                            Err(vec!["the import check thread failed".to_string()])
                        })
                    },
                    // The native installer wrote every RECORD, just now.
                    || crate::generation::verify::recorded_digests(host_gen, &watch.site),
                    reporter,
                );
                Ok((hashes, checked?, tree_sha256?))
            })?
        }
        Some(Way::Pip(why)) => {
            reporter.step(format!("venv: create {}", b.gen_path.display()));
            exec::run(&venv_cmd, 0, &mut |l| reporter.output(l)).map_err(venv_error)?;
            let hashes = install_pip(b, host_gen, &why, reporter)?;
            let (checked, tree_sha256) =
                check_and_hash(b, host_gen, import_now(b), Default::default, reporter);
            (hashes, checked?, tree_sha256?)
        }
    };

    let required: Vec<&PackageName> = b
        .served
        .iter()
        .filter(|s| s.by == Choice::Venv)
        .map(|s| &s.requirement.name)
        .collect();
    let distributions = dists
        .values()
        .map(|d| Distribution {
            name: d.name.clone(),
            version: d.version.clone(),
            source: "venv".into(),
            sha256: hashes.get(&d.normalized).cloned(),
            requirement: required.iter().any(|r| **r == d.normalized),
            package: None,
        })
        .collect();
    let record = GenerationRecord {
        schema_version: crate::generation::manifest::SCHEMA_VERSION,
        generation: b.gen_name.clone(),
        fingerprint: b.fingerprint.clone(),
        python: PythonInfo {
            base: spec.python.clone(),
            version: b.probe.version.clone(),
            abi: b.probe.soabi.clone(),
        },
        externally_managed: b.probe.externally_managed,
        distributions,
        built_at: b.built_at.clone(),
        system_site_packages: b.system_site_packages,
        decisions: b.decisions.to_vec(),
        tree_sha256: Some(tree_sha256),
        import_check_skip: spec.import_check_skip.clone(),
    };
    crate::generation::manifest::write_generation(host_gen, &record)?;
    reporter.finish();
    Ok(record)
}

/// The distributions a venv with system site packages also sees.
fn system_dists(b: &Build) -> BTreeMap<PackageName, crate::target::dists::DistInfo> {
    let minor = b
        .probe
        .markers
        .get("python_version")
        .cloned()
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    // Later directories come first on sys.path, so they win: read them last.
    for dir in crate::sys::layout::system_site_dirs(Some(&minor)) {
        out.extend(crate::target::dists::scan(&b.target.host_path(&dir)));
    }
    out
}

/// `<gen>/lib/python3.X/site-packages` on the host side.
fn site_packages(host_gen: &Path) -> Result<PathBuf> {
    crate::sys::layout::find_venv_site(host_gen).ok_or_else(|| {
        Error::Internal(format!(
            "no site-packages under `{}`",
            host_gen.join("lib").display()
        ))
    })
}

/// pip's `--report`: normalised name -> sha256 of the file it installed.
fn read_report_hashes(path: &Path) -> BTreeMap<PackageName, String> {
    #[derive(Deserialize)]
    struct Report {
        install: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        metadata: Meta,
        download_info: Option<DownloadInfo>,
    }
    #[derive(Deserialize)]
    struct Meta {
        name: String,
    }
    #[derive(Deserialize)]
    struct DownloadInfo {
        archive_info: Option<ArchiveInfo>,
    }
    #[derive(Deserialize)]
    struct ArchiveInfo {
        hash: Option<String>,
        #[serde(default)]
        hashes: BTreeMap<String, String>,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let Ok(report) = serde_json::from_str::<Report>(&text) else {
        return BTreeMap::new();
    };
    report
        .install
        .into_iter()
        .filter_map(|i| {
            let name = PackageName::new(i.metadata.name).ok()?;
            let info = i.download_info?.archive_info?;
            let sha = info.hashes.get("sha256").cloned().or_else(|| {
                info.hash
                    .as_deref()
                    .and_then(|h| h.strip_prefix("sha256="))
                    .map(str::to_string)
            })?;
            Some((name, sha))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_command_is_offline_and_hash_checked() {
        let c = pip_install_cmd(
            &[],
            Some(Path::new("/t")),
            Path::new("/opt/v.generations/g1-aaaaaaaa"),
            &PipSource::Wheelhouse("/w".into()),
            false,
            &Credentials::default(),
        );
        let line = c.display();
        for part in [
            "--require-hashes",
            "--no-index --find-links /w",
            "--only-binary :all:",
            "-r /opt/v.generations/g1-aaaaaaaa/.venvbake/requirements.txt",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        assert!(c
            .env
            .contains(&("PIP_CONFIG_FILE".into(), "/dev/null".into())));
    }

    #[test]
    fn pip_command_uses_the_profile_index_and_cert() {
        let c = pip_install_cmd(
            &[],
            None,
            Path::new("/opt/v.generations/g1-aaaaaaaa"),
            &PipSource::Index {
                url: Some("https://pypi.example.org/simple".into()),
                extra_urls: vec!["https://extra.example.org/simple".into()],
                cert: Some("/ca.pem".into()),
            },
            true,
            &Credentials::default(),
        );
        let line = c.display();
        assert!(line.contains("--index-url https://pypi.example.org/simple --extra-index-url https://extra.example.org/simple --cert /ca.pem"), "{line}");
        assert!(!line.contains("--only-binary"), "{line}");
        assert!(!line.contains("--no-index"), "{line}");
    }

    #[test]
    fn pip_hints_name_the_real_cause() {
        let err = |lines: &[&str]| crate::sys::exec::CommandError {
            command: "pip".into(),
            status: Some(1),
            spawn: None,
            tail: vec![],
            recent: lines.iter().map(|l| l.to_string()).collect(),
        };
        let tls = err(&[
            "WARNING: Retrying ... CERTIFICATE_VERIFY_FAILED ...",
            "ERROR: No matching distribution found for x==1",
        ]);
        assert!(pip_hint(&tls, false).contains("CA bundle"));
        let missing = err(&["ERROR: No matching distribution found for x==1"]);
        assert!(pip_hint(&missing, true).contains("wheelhouse"));
        assert!(pip_hint(&missing, false).contains("allow_sdist"));
        let tampered =
            err(&["ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE."]);
        assert!(pip_hint(&tampered, true).contains("altered"));
    }

    #[test]
    fn report_hashes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, r#"{"install":[{"metadata":{"name":"Six"},"download_info":{"url":"file:///w/six.whl","archive_info":{"hash":"sha256=abc","hashes":{"sha256":"abc"}}}},{"metadata":{"name":"x"},"download_info":{"archive_info":{"hash":"sha256=def"}}}]}"#).unwrap();
        let h = read_report_hashes(&p);
        assert_eq!(h[&PackageName::new("six".to_string()).unwrap()], "abc");
        assert_eq!(h[&PackageName::new("x".to_string()).unwrap()], "def");
    }
}
