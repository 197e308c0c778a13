//! Settings: what a command line adds to a profile, resolved and checked
//! once, before any work starts. Paths become absolute (commands later run
//! chrooted, and bind mounts need them), sources are checked to exist, and
//! the CA bundle override (`--cert` over `[index] cert`) is decided here and
//! nowhere else.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::input::profile::Profile;

/// Where a generation's files come from, and what the index is trusted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// `--wheelhouse`: a directory of wheels (offline).
    pub wheelhouse: Option<PathBuf>,
    /// `--bundle`: a file made by `venvbake bundle`.
    pub bundle: Option<PathBuf>,
    /// The CA bundle the index is verified with: `--cert`, else `[index] cert`.
    pub cert: Option<PathBuf>,
    /// The build host's download cache (`--cache-dir`, `VENVBAKE_CACHE_DIR`,
    /// else `/var/cache/venvbake`); None with `--no-cache`.
    pub cache: Option<PathBuf>,
    /// What the index's PEP 658 metadata says the lock's versions require
    /// (name → version, `Requires-Dist`), read on the build host before
    /// planning, for the conflict check when no wheelhouse holds the wheels.
    pub index_requires: std::collections::BTreeMap<String, (String, Vec<String>)>,
}

impl Sources {
    /// Resolve the command line's `--wheelhouse`, `--bundle` and `--cert`
    /// against `profile`.
    pub fn resolve(
        profile: &Profile,
        wheelhouse: Option<PathBuf>,
        bundle: Option<PathBuf>,
        cert: Option<PathBuf>,
    ) -> Result<Self> {
        let sources = Sources {
            wheelhouse: wheelhouse.map(absolute),
            bundle: bundle.map(absolute),
            cert: cert_for(profile, cert),
            cache: None,
            index_requires: Default::default(),
        };
        if let Some(w) = sources.wheelhouse.as_ref().filter(|w| !w.is_dir()) {
            return Err(Error::usage(
                format!("the wheelhouse `{}` is not a directory", w.display()),
                "give `--wheelhouse` the folder `venvbake fetch` filled",
            ));
        }
        if let Some(c) = sources.cert.as_ref().filter(|c| !c.is_file()) {
            return Err(Error::usage(
                format!("the CA bundle `{}` is not a file", c.display()),
                "give `--cert` or `[index] cert` a PEM file of the CA certificates to trust",
            ));
        }
        Ok(sources)
    }
}

/// Where the download cache lives unless `--cache-dir` or `VENVBAKE_CACHE_DIR` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/venvbake";

/// The download cache: `--no-cache` turns it off; else `--cache-dir`, then
/// `VENVBAKE_CACHE_DIR`, then `/var/cache/venvbake` (on the build host).
pub fn cache_dir(
    cli: Option<PathBuf>,
    no_cache: bool,
    host_env: &[(String, String)],
) -> Option<PathBuf> {
    if no_cache {
        return None;
    }
    let env = host_env
        .iter()
        .find(|(k, v)| k == "VENVBAKE_CACHE_DIR" && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v));
    Some(absolute(
        cli.or(env)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR)),
    ))
}

/// The CA bundle for the index: `--cert` overrides `[index] cert`.
pub fn cert_for(profile: &Profile, cli: Option<PathBuf>) -> Option<PathBuf> {
    cli.or_else(|| profile.index.cert.clone()).map(absolute)
}

/// `p` made absolute against the working directory (unchanged if that fails).
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn profile(dir: &Path, extra: &str) -> Profile {
        std::fs::write(
            dir.join("l.txt"),
            "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n",
        )
        .unwrap();
        let text = format!(
            "schema_version = 1\nname = \"t\"\n[venv]\npath = \"/opt/venvs/t\"\nrequirements = \"l.txt\"\n{extra}"
        );
        crate::input::profile::parse(&dir.join("p.toml"), &text, dir).unwrap()
    }

    #[test]
    fn the_command_line_cert_overrides_the_profiles_and_paths_are_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("corp.pem"), "x").unwrap();
        std::fs::write(dir.path().join("cli.pem"), "x").unwrap();
        let p = profile(dir.path(), "[index]\ncert = \"corp.pem\"\n");
        let s = Sources::resolve(&p, None, None, None).unwrap();
        assert_eq!(s.cert, Some(dir.path().join("corp.pem")));
        let s = Sources::resolve(&p, None, None, Some(dir.path().join("cli.pem"))).unwrap();
        assert_eq!(s.cert, Some(dir.path().join("cli.pem")));
        let s = Sources::resolve(&p, Some(PathBuf::from(".")), None, None).unwrap();
        assert!(s.wheelhouse.is_some_and(|w| w.is_absolute()));
    }

    #[test]
    fn missing_sources_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path(), "");
        let e = Sources::resolve(&p, Some(dir.path().join("nope")), None, None).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        let e = Sources::resolve(&p, None, None, Some(dir.path().join("no.pem"))).unwrap_err();
        assert!(e.to_string().contains("is not a file"), "{e}");
        assert_eq!(e.exit_code(), crate::error::ExitCode::Input);
    }
}
