//! `venvbake lock`: an OS-aware lock for one release, written on the build
//! host from top-level requirements and the target's apt.
//!
//! A real lock pins every distribution with `==` at the newest version, and
//! Debian never has exactly that: `prefer = "os"` then serves nothing. This
//! command resolves the top-level requirements for the target's Python and
//! platform (with uv, on the build host), asks the target's apt which
//! version of each resolved distribution it would install (as `plan` does,
//! with the profile's `[python.map]`), and resolves again with each
//! distribution the profile lets apt serve constrained to apt's version.
//! A constraint is kept only when the whole resolution still succeeds and no
//! top-level requirement moves from the version it resolved to without apt:
//! what the user asked for stays at its newest, and every distribution apt
//! serves in a compatible version is pinned at apt's version, so that
//! `prefer = "os"` serves it. The rest are pinned and hashed for the venv.
//! The lock is written as `pylock.toml` or as a hashed requirements file,
//! by the output's name.
//!
//! uv is the resolver: PEP 440/508 resolution against an index (metadata
//! of every candidate version, backtracking) is its whole job, it runs on
//! the build host and never in the image, and `scripts/lock-profile`
//! already uses it. venvbake finds it with `--uv PATH`, `VENVBAKE_UV`, or
//! `uv` on the build host's `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::profile::{Prefer, Profile};
use crate::input::requirements::Requirement;
use crate::sys::exec::{self, Cmd};
use crate::sys::report::Reporter;
use crate::target::Target;

pub struct Request<'a> {
    pub profile: &'a Profile,
    pub target: &'a Target,
    /// Top-level requirements (a requirements file without pins or hashes).
    pub input: &'a Path,
    pub output: &'a Path,
    /// The uv binary on the build host.
    pub uv: PathBuf,
    pub cert: Option<PathBuf>,
    pub host_env: &'a [(String, String)],
}

/// What `lock` decided for one resolved distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub name: String,
    pub version: String,
    /// The Debian package and version that will serve it (`prefer = "os"`).
    pub apt: Option<(String, String)>,
    /// Why it is (or is not) pinned at apt's version.
    pub reason: String,
}

/// What the target's interpreter and platform are, for the resolver.
struct ResolveFor {
    python: String,
    platform: String,
}

/// Find uv: `--uv`, then `VENVBAKE_UV`, then `uv` on the build host's `PATH`.
pub fn find_uv(cli: Option<PathBuf>, host_env: &[(String, String)]) -> Result<PathBuf> {
    let var = |k: &str| {
        host_env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(p) = cli.or_else(|| var("VENVBAKE_UV").map(PathBuf::from)) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::usage(
                format!("uv is not at `{}`", p.display()),
                "give the path of the uv binary (`--uv` or `VENVBAKE_UV`)",
            ))
        };
    }
    var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("uv"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::usage(
                "`venvbake lock` resolves with uv, and no `uv` is on PATH",
                "install uv on the build host (`python3 -m venv /opt/uv && /opt/uv/bin/pip install uv`), then put it on PATH or pass `--uv /opt/uv/bin/uv`",
            )
        })
}

/// Resolve, decide who serves what, and write the lock. Returns what was pinned.
pub fn lock(r: &Request, reporter: &mut Reporter) -> Result<Vec<Pinned>> {
    r.target.require_apt()?;
    let interpreter = r.target.interpreter(&r.profile.venv.python)?;
    let installed = r.target.dpkg_installed()?;
    let os = r.target.os_release()?;
    let env = crate::plan::predicted_markers(&interpreter, &installed).ok_or_else(|| {
        Error::usage(
            format!(
                "the target's interpreter `{}` is not Debian's python3.X (its version cannot be told from dpkg)",
                interpreter.resolved.display()
            ),
            "`venvbake lock` locks for a Debian or Ubuntu interpreter under /usr/bin",
        )
    })?;
    let glibc = installed
        .get("libc6")
        .and_then(|v| {
            let mut p = v.split(['.', '-', '+', '~']);
            Some((
                p.next()?.parse::<u32>().ok()?,
                p.next()?.parse::<u32>().ok()?,
            ))
        })
        .filter(|(major, _)| *major == 2)
        .map_or(17, |(_, minor)| minor)
        .clamp(17, 40);
    let machine = env.platform_machine().to_string();
    let to = ResolveFor {
        python: env.python_full_version().string.clone(),
        platform: format!("{machine}-manylinux_2_{glibc}"),
    };
    reporter.info(&format!(
        "lock: for {} (Python {}, {}) from {}",
        os.release_keys().first().cloned().unwrap_or_default(),
        to.python,
        to.platform,
        r.input.display()
    ));
    let work = tempfile_dir()?;
    let result = lock_in(r, reporter, &to, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("venvbake-lock-{}", std::process::id()));
    crate::sys::fsutil::create_dirs(&dir)?;
    Ok(dir)
}

fn lock_in(
    r: &Request,
    reporter: &mut Reporter,
    to: &ResolveFor,
    work: &Path,
) -> Result<Vec<Pinned>> {
    let top = read_input(r.input)?;
    // 1. Without apt: the newest the input allows.
    reporter.step("lock: resolve without apt".to_string());
    let free = resolve(r, to, &work.join("free"), &BTreeMap::new())?
        .map_err(|tail| resolve_error(r.input, tail))?;
    reporter.finish();

    // 2. What apt would install of each, where the profile lets apt serve.
    let names: Vec<String> = free.keys().cloned().collect();
    let lookups = crate::plan::lookup_names(
        &names,
        &r.profile.python.map,
        r.target,
        r.target.has_apt_lists(),
    )?;
    let mut offers: Vec<(String, String, String)> = Vec::new(); // name, pep440, package version
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    for name in &names {
        if r.profile.python.prefer_for(name) != Prefer::Os {
            why.insert(name.clone(), "the profile prefers the venv for it".into());
            continue;
        }
        let lookup = lookups.get(name);
        match lookup.and_then(|l| l.candidate.as_ref()) {
            Some(c) => match &c.pep440 {
                Some(v) => offers.push((
                    name.clone(),
                    v.clone(),
                    format!("{} {}", c.package, c.version),
                )),
                None => {
                    why.insert(
                        name.clone(),
                        format!(
                            "{} {}: the version does not convert to PEP 440",
                            c.package, c.version
                        ),
                    );
                }
            },
            None => {
                why.insert(name.clone(), "no OS package".into());
            }
        }
    }

    // 3. Constrain to apt's versions. Where apt has the very version the
    //    free resolution chose, nothing changes. Each other offer is tried
    //    alone (in parallel), then the ones that passed all together; if
    //    they cannot go together, one by one.
    let top_moved = |resolved: &BTreeMap<String, String>| -> Option<String> {
        top.iter().find_map(|n| {
            let (a, b) = (free.get(n)?, resolved.get(n)?);
            (a != b).then(|| format!("`{n}` would move from {a} to {b}"))
        })
    };
    let verdict = |res: Resolution| -> std::result::Result<(), String> {
        match res {
            Ok(res) => top_moved(&res).map_or(Ok(()), Err),
            Err(_) => Err("conflicts with the rest of the resolution".into()),
        }
    };
    let mut kept: BTreeMap<String, String> = offers
        .iter()
        .filter(|(n, v, _)| free.get(n).is_some_and(|f| same_version(f, v)))
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect();
    let others: Vec<&(String, String, String)> = offers
        .iter()
        .filter(|(n, _, _)| !kept.contains_key(n))
        .collect();
    reporter.step(format!(
        "lock: {} apt version(s) equal the resolution's; try {} more as constraints",
        kept.len(),
        others.len()
    ));
    let alone: Vec<std::result::Result<(), String>> =
        parallel(&others, |i, (name, version, _)| {
            let mut trial = kept.clone();
            trial.insert(name.clone(), version.clone());
            resolve(r, to, &work.join(format!("alone-{i}")), &trial).map(verdict)
        })?;
    let mut passed = Vec::new();
    for ((name, version, _), v) in others.iter().zip(alone) {
        match v {
            Ok(()) => passed.push((name.clone(), version.clone())),
            Err(why_not) => {
                why.insert(name.clone(), format!("apt's {version}: {why_not}"));
            }
        }
    }
    let mut together = kept.clone();
    together.extend(passed.iter().cloned());
    if passed.is_empty() || verdict(resolve(r, to, &work.join("together"), &together)?).is_ok() {
        kept = together;
    } else {
        for (name, version) in &passed {
            let mut trial = kept.clone();
            trial.insert(name.clone(), version.clone());
            match verdict(resolve(r, to, &work.join("greedy"), &trial)?) {
                Ok(()) => kept = trial,
                Err(why_not) => {
                    why.insert(
                        name.clone(),
                        format!("apt's {version}, with the other apt versions: {why_not}"),
                    );
                }
            }
        }
    }
    reporter.finish();

    // 4. The lock itself: hashed, with the constraints kept.
    reporter.step(format!("lock: write {}", r.output.display()));
    let format_pylock = crate::input::pylock::is_pylock(r.output);
    let out_name = if format_pylock {
        "pylock.venvbake.toml"
    } else {
        "requirements.txt"
    };
    crate::sys::fsutil::create_dirs(&work.join("final"))?;
    let out = work.join("final").join(out_name);
    let final_res = resolve_to(r, to, &work.join("final"), &kept, &out, true)?
        .map_err(|tail| resolve_error(r.input, tail))?;
    reporter.finish();
    let pinned: Vec<Pinned> = final_res
        .iter()
        .map(|(name, version)| {
            let offer = offers.iter().find(|(n, _, _)| n == name);
            match (kept.get(name), offer) {
                (Some(v), Some((_, _, pkg))) if same_version(v, version) => Pinned {
                    name: name.clone(),
                    version: version.clone(),
                    apt: pkg
                        .split_once(' ')
                        .map(|(p, v)| (p.to_string(), v.to_string())),
                    reason: format!("{pkg} serves it"),
                },
                _ => Pinned {
                    name: name.clone(),
                    version: version.clone(),
                    apt: None,
                    reason: why
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| "resolved for the venv".into()),
                },
            }
        })
        .collect();
    let body = std::fs::read_to_string(&out).map_err(|e| Error::io("read", &out, e))?;
    let from_apt = pinned.iter().filter(|p| p.apt.is_some()).count();
    let mut header = format!(
        "# Written by `venvbake lock` for {} (Python {}, {}) from {}; review, then commit.\n# {} of {} distributions pinned at the version apt serves there (prefer = \"os\" takes them from apt):\n",
        r.target
            .os_release()
            .map(|o| o.release_keys().first().cloned().unwrap_or_default())
            .unwrap_or_default(),
        to.python,
        to.platform,
        r.input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        from_apt,
        pinned.len()
    );
    for p in pinned.iter().filter(|p| p.apt.is_some()) {
        header.push_str(&format!("#   {}=={}: {}\n", p.name, p.version, p.reason));
    }
    let text = format!("{header}{}", strip_tool_header(&body));
    crate::sys::fsutil::atomic_write(r.output, text.as_bytes(), 0o644)?;
    Ok(pinned)
}

/// uv's own header names its temporary paths; venvbake writes its own.
fn strip_tool_header(body: &str) -> &str {
    let mut rest = body;
    while rest.starts_with('#') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest
}

/// The normalised names of the input's top-level requirements.
fn read_input(input: &Path) -> Result<Vec<String>> {
    let reqs = crate::input::requirements::load(input)?;
    Ok(reqs
        .items
        .iter()
        .map(|r: &Requirement| r.name.to_string())
        .collect())
}

fn resolve_error(input: &Path, tail: Vec<String>) -> Error {
    let unreachable = tail.iter().any(|l| l.contains("Failed to fetch"));
    let mut message = if unreachable {
        format!(
            "the index could not be reached to resolve `{}`",
            input.display()
        )
    } else {
        format!(
            "the requirements in `{}` cannot be resolved for this target",
            input.display()
        )
    };
    for l in tail.iter().rev().take(12).rev() {
        message.push_str("\n  ");
        message.push_str(l);
    }
    Error::usage(
        message,
        if unreachable {
            "check the network, the proxy variables (`https_proxy`) and the CA (`--cert` or `[index] cert`)"
        } else {
            "uv's words above name the conflict; loosen or change the requirements, or check the index"
        },
    )
}

/// A resolution (name -> version), or uv's last lines when it cannot resolve.
type Resolution = std::result::Result<BTreeMap<String, String>, Vec<String>>;

/// A resolution in its own scratch directory `slot`.
fn resolve(
    r: &Request,
    to: &ResolveFor,
    slot: &Path,
    constraints: &BTreeMap<String, String>,
) -> Result<Resolution> {
    crate::sys::fsutil::create_dirs(slot)?;
    resolve_to(
        r,
        to,
        slot,
        constraints,
        &slot.join("resolution.txt"),
        false,
    )
}

/// Whether two PEP 440 versions are equal (`6.0` and `6.0.0` are).
fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `f` on every item, on up to four threads (each resolution waits on the
/// index more than on the CPU); results in the items' order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<R>>>> =
        std::sync::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..items.len().min(4) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let out = f(i, item);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(out);
                }
            });
        }
    });
    results
        .into_inner()
        .map_err(|_| Error::Internal("a resolution thread panicked".into()))?
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Internal("a resolution did not run".into()))))
        .collect()
}

/// Run `uv pip compile` for the target with `constraints` (name -> version),
/// into `out`; with `hashes`, hashed and in the format `out`'s name says.
/// `slot` is the scratch directory of this run.
fn resolve_to(
    r: &Request,
    to: &ResolveFor,
    slot: &Path,
    constraints: &BTreeMap<String, String>,
    out: &Path,
    hashes: bool,
) -> Result<Resolution> {
    let cfile = slot.join("constraints.txt");
    let ctext: String = constraints
        .iter()
        .map(|(n, v)| format!("{n}=={v}\n"))
        .collect();
    crate::sys::fsutil::atomic_write(&cfile, ctext.as_bytes(), 0o600)?;
    let mut base = exec::base_env(r.host_env);
    base.retain(|(k, _)| k != "HOME");
    // uv's cache stays with the user running venvbake (speed across runs).
    let home = r
        .host_env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map_or("/root".to_string(), |(_, v)| v.clone());
    base.push(("HOME".into(), home));
    let mut cmd = Cmd::new(r.uv.display().to_string(), &base)
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        // The build host's trust store (a corporate CA installed there
        // counts); `--cert` adds a bundle of its own.
        .env("UV_NATIVE_TLS", "1")
        .env("UV_SYSTEM_CERTS", "1")
        .args(["pip", "compile", "--quiet", "--no-header", "--no-annotate"])
        .args([
            "--python-version",
            &to.python,
            "--python-platform",
            &to.platform,
        ])
        .arg("-c")
        .arg(cfile.display().to_string())
        .arg("-o")
        .arg(out.display().to_string());
    if !r.profile.venv.allow_sdist {
        cmd = cmd.args(["--only-binary", ":all:"]);
    }
    if hashes {
        cmd = cmd.arg("--generate-hashes");
    }
    let creds = crate::input::credentials::Credentials::from_profile(r.profile, r.host_env)?;
    for s in creds.secrets() {
        cmd = cmd.mask(s);
    }
    if let Some(u) = &r.profile.index.url {
        cmd = if creds.is_empty() {
            cmd.arg("--default-index").arg(u.clone())
        } else {
            cmd.env("UV_DEFAULT_INDEX", creds.url_with(u))
        };
    }
    for u in &r.profile.index.extra_urls {
        cmd = cmd.arg("--index").arg(u.clone());
    }
    if let Some(c) = &r.cert {
        cmd = cmd.env("SSL_CERT_FILE", c.display().to_string());
    }
    let _ = std::fs::remove_file(out);
    cmd = cmd.arg(r.input.display().to_string());
    match exec::run(&cmd, 0, &mut |_| {}) {
        Ok(_) => {}
        Err(e) if e.spawn.is_some() => {
            return Err(Error::usage(
                format!("uv at `{}` could not be started: {e}", r.uv.display()),
                "check the uv binary (`--uv`, `VENVBAKE_UV`)",
            ))
        }
        Err(e) => return Ok(Err(e.recent.iter().chain(&e.tail).cloned().collect())),
    }
    let text = std::fs::read_to_string(out).map_err(|e| Error::io("read", out, e))?;
    Ok(Ok(pins_of(out, &text)?))
}

/// name -> version of a resolution uv wrote (either format).
fn pins_of(path: &Path, text: &str) -> Result<BTreeMap<String, String>> {
    let reqs = if crate::input::pylock::is_pylock(path) {
        crate::input::pylock::parse(path, text)?
    } else {
        crate::input::requirements::parse(path, text)?
    };
    Ok(reqs
        .items
        .iter()
        .filter_map(|r| Some((r.name.to_string(), r.version.as_ref()?.to_string())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_header_goes() {
        assert_eq!(strip_tool_header("# a\n# b\nsix==1\n"), "six==1\n");
        assert_eq!(strip_tool_header("six==1\n# c\n"), "six==1\n# c\n");
    }

    #[test]
    fn uv_is_found_on_path_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let uv = dir.path().join("uv");
        std::fs::write(&uv, "").unwrap();
        let path = vec![(
            "PATH".to_string(),
            format!("/nonexistent:{}", dir.path().display()),
        )];
        assert_eq!(find_uv(None, &path).unwrap(), uv);
        assert!(find_uv(None, &[]).is_err());
        assert!(find_uv(Some(dir.path().join("nope")), &path).is_err());
        let named = vec![("VENVBAKE_UV".to_string(), uv.display().to_string())];
        assert_eq!(find_uv(None, &named).unwrap(), uv);
    }
}
