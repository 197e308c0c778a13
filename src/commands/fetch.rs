//! `venvbake fetch`: fill a wheelhouse on the build host for images that
//! cannot reach an index (air-gapped builds, `apply --wheelhouse`).
//!
//! Downloads exactly the files the profile's lock allows for one target
//! (Python version, ABI, platforms) with venvbake's own index client (the
//! one `apply` uses: proxies, CA, credentials, retries, the download
//! cache), one file per requirement, the best fit for the target's tags,
//! each checked against the lock's sha256; then checks every file once
//! more and keeps an index of the folder: `SHA256SUMS` and
//! `venvbake-wheelhouse.json` (the profile and every target fetched so
//! far). Several targets (3.11, 3.12, 3.13) can share one wheelhouse.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::profile::Profile;
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
    /// The download cache (None: download straight into `dest`).
    pub cache: Option<std::path::PathBuf>,
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
    let index = crate::index::Index::for_profile(
        r.profile,
        &crate::input::settings::Sources {
            cert: crate::input::settings::cert_for(r.profile, r.cert.map(Path::to_path_buf)),
            cache: r.cache.clone(),
            ..Default::default()
        },
        r.host_env,
        r.dest.to_path_buf(),
    )?;
    let minor: u32 = target
        .python
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let supported = crate::steps::tags::supported_for(3, minor, &target.abi, &target.platforms);
    let rank = |filename: &str| {
        crate::steps::tags::WheelName::parse(filename)
            .and_then(|w| crate::steps::tags::rank(&w, &supported))
    };
    let wants: Vec<crate::index::Want> = pinned
        .iter()
        .map(|i| crate::index::Want::for_requirement(i))
        .collect();
    reporter.step(format!(
        "fetch: {} file(s) for Python {} ({}) into {} from {}",
        pinned.len(),
        target.python,
        target.abi,
        r.dest.display(),
        crate::index::masked(&index.urls.join(", "))
    ));
    let got = {
        let log = crate::index::LineLog::new(reporter, wants.len());
        index.fetch(&wants, &rank, &log).map_err(|e| match e {
            crate::index::IndexError::NoFit { requirement, listed } => Error::usage(
                format!(
                    "the lock has no file of `{requirement}` for Python {} (abi {}, abi3, none; platforms {}); {listed}",
                    target.python,
                    target.abi,
                    target.platforms.join(", ")
                ),
                "check `--python`, `--abi` and `--platform` against the target, or lock again for it (`venvbake lock`)",
            ),
            other => other.into(),
        })?
    };
    // Files from the cache are copied into the wheelhouse.
    for g in &got {
        let Some(name) = g.file.file_name() else {
            continue;
        };
        let dest = r.dest.join(name);
        if g.file != dest {
            crate::sys::fsutil::copy_in(&g.file, &dest)?;
        }
    }
    let fresh = got.iter().filter(|g| !g.cached).count();
    reporter.finish();
    reporter.info(&format!(
        "fetch: {} file(s): {} downloaded, {} from the cache or already there",
        got.len(),
        fresh,
        got.len() - fresh
    ));

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
    fn the_target_takes_its_abi_and_platforms_only() {
        let tags = crate::steps::tags::supported_for(
            3,
            13,
            "cp313",
            &["manylinux2014_x86_64".into(), "any".into()],
        );
        assert_eq!(tags[0], "cp313-cp313-manylinux2014_x86_64");
        assert!(tags.contains(&"cp313-abi3-manylinux2014_x86_64".into()));
        assert!(tags.contains(&"py3-none-any".into()));
        assert!(!tags.iter().any(|t| t.contains("manylinux_2_34")));
        let no_any = crate::steps::tags::supported_for(3, 13, "cp313", &["linux_x86_64".into()]);
        assert!(!no_any.iter().any(|t| t.ends_with("-any")));
    }
}
