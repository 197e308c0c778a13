//! `venvbake fetch`: fill a wheelhouse on the build host for images that
//! cannot reach an index (air-gapped builds, `apply --wheelhouse`).
//!
//! Downloads exactly the files the profile's lock allows for one target
//! (Python version, ABI, platforms) with the build host's `pip download`,
//! hash-checked, checks every file's sha256 against the lock once more, and
//! keeps an index of the folder: `SHA256SUMS` and `venvbake-wheelhouse.json`
//! (the profile and every target fetched so far). Several targets (3.11,
//! 3.12, 3.13) can share one wheelhouse.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Phase, Result};
use crate::input::profile::Profile;
use crate::sys::exec::{self, Cmd};
use crate::sys::report::Reporter;

/// manylinux tags a current x86_64 Debian or Ubuntu can run (glibc 2.36+).
pub const DEFAULT_PLATFORMS: [&str; 5] = [
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_34_x86_64",
    "any",
];

pub const INDEX_FILE: &str = "venvbake-wheelhouse.json";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FetchTarget {
    pub python: String,
    pub abi: String,
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelhouseIndex {
    pub schema_version: u32,
    pub profile: String,
    pub requirements_sha256: String,
    pub targets: Vec<FetchTarget>,
    /// File name -> sha256.
    pub files: std::collections::BTreeMap<String, String>,
}

pub struct Request<'a> {
    pub profile: &'a Profile,
    pub dest: &'a Path,
    pub python: &'a str,
    pub platforms: Vec<String>,
    pub abi: Option<String>,
    pub host_env: &'a [(String, String)],
    pub cert: Option<&'a Path>,
}

fn check_python(v: &str) -> Result<(String, String)> {
    let mut parts = v.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None)
            if a == "3" && !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) =>
        {
            Ok((v.to_string(), format!("cp3{b}")))
        }
        _ => Err(Error::usage(
            format!("--python {v:?} is not a Python version"),
            "give the target's Python as 3.X (e.g. 3.11)",
        )),
    }
}

/// The `pip download` command for one target (runs on the build host).
pub fn download_cmd(
    base: &[(String, String)],
    req_file: &Path,
    dest: &Path,
    target: &FetchTarget,
) -> Cmd {
    let mut cmd = Cmd::new("python3", base)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .args([
            "-I",
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--require-hashes",
        ])
        .args(["--only-binary", ":all:", "--implementation", "cp"])
        .args(["--python-version", &target.python, "--abi", &target.abi])
        .args(["--abi", "abi3", "--abi", "none", "--progress-bar", "off"]);
    for p in &target.platforms {
        cmd = cmd.arg("--platform").arg(p.clone());
    }
    cmd.arg("-d")
        .arg(dest.display().to_string())
        .arg("-r")
        .arg(req_file.display().to_string())
}

pub fn fetch(r: &Request, reporter: &mut Reporter) -> Result<WheelhouseIndex> {
    let (python, abi_default) = check_python(r.python)?;
    let target = FetchTarget {
        python,
        abi: r.abi.clone().unwrap_or(abi_default),
        platforms: if r.platforms.is_empty() {
            DEFAULT_PLATFORMS.iter().map(|s| s.to_string()).collect()
        } else {
            r.platforms.clone()
        },
    };
    crate::sys::fsutil::create_dirs(r.dest)?;
    let pinned: Vec<_> = r
        .profile
        .requirements
        .items
        .iter()
        .filter(|i| i.version.is_some() && !i.hashes.is_empty())
        .collect();
    let skipped = r.profile.requirements.items.len() - pinned.len();
    if skipped > 0 {
        reporter.info(&format!(
            "{skipped} requirement(s) without a pin and hashes are left to apt (prefer = \"os\") and not fetched"
        ));
    }
    let work = std::env::temp_dir().join(format!("venvbake-fetch-{}", std::process::id()));
    crate::sys::fsutil::create_dirs(&work)?;
    let req_file = work.join("requirements.txt");
    let mut text: String = pinned.iter().map(|i| i.pip_line() + "\n").collect();
    text.push('\n');
    crate::sys::fsutil::atomic_write(&req_file, text.as_bytes(), 0o600)?;

    let mut base = exec::base_env(r.host_env);
    // The build host's own PATH: its python3 with pip does the downloading.
    base.retain(|(k, _)| k != "HOME");
    base.push(("HOME".into(), work.display().to_string()));
    let creds = crate::input::credentials::Credentials::from_profile(r.profile, r.host_env)?;
    let mut cmd = download_cmd(&base, &req_file, r.dest, &target);
    cmd = creds.apply_to(cmd, &r.profile.index);
    if let Some(c) = crate::input::settings::cert_for(r.profile, r.cert.map(Path::to_path_buf)) {
        cmd = cmd.arg("--cert").arg(c.display().to_string());
    }
    reporter.step(format!(
        "fetch: {} file(s) for Python {} ({}) into {}",
        pinned.len(),
        target.python,
        target.abi,
        r.dest.display()
    ));
    let result = exec::run(&cmd, 0, &mut |l| reporter.output(l));
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = result {
        let missing = e
            .recent
            .iter()
            .find_map(|l| l.split("No matching distribution found for ").nth(1))
            .map(|s| s.trim().to_string());
        let what = match missing {
            Some(req) => format!(
                "the lock has no file of `{req}` for Python {} (abi {}, abi3, none; platforms {})",
                target.python,
                target.abi,
                target.platforms.join(", ")
            ),
            None => "pip download failed".to_string(),
        };
        return Err(Error::Command {
            phase: Phase::Install,
            what,
            hint: crate::steps::venv::pip_hint(&e, false).to_string(),
            source: Box::new(e),
        });
    }

    // Check every file against the lock once more and write the index.
    let mut files = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(r.dest)
        .map_err(|e| Error::io("read", r.dest, e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".whl") {
            continue;
        }
        let sha = crate::sys::codec::sha256_file_hex(&e.path())
            .map_err(|err| Error::io("read", e.path(), err))?;
        if let Some(w) = crate::steps::tags::WheelName::parse(&name) {
            if let Some(req) = pinned
                .iter()
                .find(|i| i.name == w.name && i.version.as_ref() == Some(&w.version))
            {
                if !req.hashes.contains(&sha) {
                    return Err(Error::usage(
                        format!(
                        "`{}` in the wheelhouse does not match any hash the lock allows for {}=={}",
                        e.path().display(),
                        req.name,
                        w.version
                    ),
                        "remove it and run `venvbake fetch` again",
                    ));
                }
            }
        }
        files.insert(name, sha);
    }
    let index_path = r.dest.join(INDEX_FILE);
    let mut index: WheelhouseIndex = std::fs::read_to_string(&index_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    index.schema_version = 1;
    index.profile = r.profile.name.clone();
    index.requirements_sha256 = r.profile.requirements.sha256.clone();
    let mut targets: BTreeSet<FetchTarget> = index.targets.into_iter().collect();
    targets.insert(target);
    index.targets = targets.into_iter().collect();
    index.files = files;
    let sums: String = index
        .files
        .iter()
        .map(|(f, sha)| format!("{sha}  {f}\n"))
        .collect();
    crate::sys::fsutil::atomic_write(&r.dest.join("SHA256SUMS"), sums.as_bytes(), 0o644)?;
    let mut json = serde_json::to_string_pretty(&index).unwrap_or_default();
    json.push('\n');
    crate::sys::fsutil::atomic_write(&index_path, json.as_bytes(), 0o644)?;
    reporter.finish();
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_versions_are_checked() {
        assert_eq!(check_python("3.11").unwrap().1, "cp311");
        assert_eq!(check_python("3.13").unwrap().1, "cp313");
        for bad in ["3", "2.7", "3.x", "3.11.2", ""] {
            assert!(check_python(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn download_is_for_the_target_only() {
        let t = FetchTarget {
            python: "3.13".into(),
            abi: "cp313".into(),
            platforms: vec!["manylinux2014_x86_64".into(), "any".into()],
        };
        let line = download_cmd(&[], Path::new("/r.txt"), Path::new("/w"), &t).display();
        assert!(
            line.contains("--python-version 3.13 --abi cp313 --abi abi3 --abi none"),
            "{line}"
        );
        assert!(
            line.contains("--platform manylinux2014_x86_64 --platform any"),
            "{line}"
        );
        assert!(
            line.contains("--only-binary :all:") && line.contains("--require-hashes"),
            "{line}"
        );
    }
}
