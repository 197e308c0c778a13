//! The top-level error type, its stable exit codes and its hints.
//!
//! Every module has its own typed error; this module gathers them into
//! [`Error`], which knows the exit code a provisioner script can branch on
//! ([`ExitCode`]) and the one-line hint printed under the message. `main`
//! prints an error exactly once, through [`Error::render`].

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::input::profile::ProfileError;
use crate::input::requirements::RequirementsError;
use crate::sys::exec::CommandError;
use crate::target::TargetError;

/// Stable, documented exit codes. Never renumber: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success (also a no-op apply).
    Ok = 0,
    /// A bug or an unexpected condition in venvbake itself.
    Internal = 1,
    /// Bad input: command line, profile or requirements file.
    Input = 2,
    /// The target cannot be served: no apt/dpkg, no interpreter, no venv module.
    Target = 3,
    /// An apt-get or dpkg command failed.
    Apt = 4,
    /// A lock (dpkg's or venvbake's own) was not released in time.
    Locked = 5,
    /// Creating the venv or installing requirements into it failed.
    Install = 6,
    /// The new generation failed its checks (imports, `pip check`).
    Check = 7,
    /// Reading or writing a file of the target failed.
    Io = 8,
    /// `verify` found the target differs from its manifest.
    Drift = 9,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What venvbake was doing when a command failed: decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Apt,
    Venv,
    Install,
    Check,
    Probe,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Requirements(#[from] RequirementsError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{what}")]
    Command {
        phase: Phase,
        what: String,
        hint: String,
        #[source]
        source: Box<CommandError>,
    },
    /// The native installer failed (missing wheel, hash, broken wheel, disk).
    #[error("{source}")]
    Install {
        #[source]
        source: Box<crate::steps::install::InstallError>,
        hint: String,
    },
    /// The package index (venvbake's own client): unreachable, missing a
    /// file, or serving one that differs from the lock.
    #[error("{}", crate::index::masked(&source.to_string()))]
    Index {
        #[source]
        source: Box<crate::index::IndexError>,
    },
    #[error("the bundle `{}` cannot be used: {message}", file.display())]
    Bundle { file: PathBuf, message: String },
    #[error("the bundle `{}` was built for another target:\n{}", file.display(), fields.iter().map(|(f, b, t)| format!("  {f}: bundle `{b}`, this target `{t}`")).collect::<Vec<_>>().join("\n"))]
    BundleMismatch {
        file: PathBuf,
        fields: Vec<(String, String, String)>,
    },
    #[error("the dpkg lock was still held after {timeout_s} s: {command}")]
    DpkgLocked {
        timeout_s: u64,
        command: String,
        holder: Option<String>,
    },
    #[error("another venvbake run holds `{}` and did not finish within {timeout_s} s", path.display())]
    Busy { path: PathBuf, timeout_s: u64 },
    #[error("the new generation `{generation}` failed its checks:\n  {}", failures.join("\n  "))]
    CheckFailed {
        generation: String,
        failures: Vec<String>,
    },
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is a real directory, not a venvbake-managed symlink", path.display())]
    Occupied { path: PathBuf },
    #[error("no manifest at `{}`", path.display())]
    NoManifest { path: PathBuf },
    #[error("the manifest `{}` is not valid: {message}", path.display())]
    BadManifest { path: PathBuf, message: String },
    #[error("{} Python requirement(s) cannot be served:\n  {}", items.len(), items.join("\n  "))]
    Unresolved { items: Vec<String> },
    #[error("{count} item(s) differ from the manifest of `{profile}`")]
    Drift { profile: String, count: usize },
    /// Bad input that no module below owns (a command-line value, a state
    /// the command cannot act on), with what to do about it.
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// An apply that stopped: the error, and what the venv's fixed path
    /// serves now (read after the failure, so it is always true).
    #[error("{source}")]
    Stopped { source: Box<Error>, state: String },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::generation::manifest::ManifestError> for Error {
    fn from(e: crate::generation::manifest::ManifestError) -> Self {
        use crate::generation::manifest::ManifestError as M;
        match e {
            M::Fs(fs) => fs.into(),
            M::Invalid { path, message } => Error::BadManifest { path, message },
        }
    }
}

impl From<crate::index::IndexError> for Error {
    fn from(e: crate::index::IndexError) -> Self {
        Error::Index {
            source: Box::new(e),
        }
    }
}

impl From<crate::input::credentials::Unset> for Error {
    fn from(e: crate::input::credentials::Unset) -> Self {
        Error::usage(e.to_string(), e.hint())
    }
}

impl From<crate::target::ns::NsError> for Error {
    fn from(e: crate::target::ns::NsError) -> Self {
        use crate::target::ns::NsError as N;
        match e {
            N::NotRoot(t) => t.into(),
            N::Fs(fs) => fs.into(),
        }
    }
}

impl From<crate::sys::fsutil::FsError> for Error {
    fn from(e: crate::sys::fsutil::FsError) -> Self {
        Error::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Bad input, with its hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Stopped { source, .. } => source.exit_code(),
            Error::Profile(_)
            | Error::Requirements(_)
            | Error::Usage { .. }
            | Error::Unresolved { .. } => ExitCode::Input,
            // A `--root` that is not a directory is a typo on the command line.
            Error::Target(TargetError::NoRoot { .. }) => ExitCode::Input,
            Error::Target(_) => ExitCode::Target,
            Error::Command { phase, .. } => match phase {
                Phase::Apt => ExitCode::Apt,
                Phase::Venv | Phase::Install => ExitCode::Install,
                Phase::Check => ExitCode::Check,
                Phase::Probe => ExitCode::Target,
            },
            Error::Install { .. } | Error::Index { .. } => ExitCode::Install,
            Error::Bundle { .. } | Error::BundleMismatch { .. } => ExitCode::Input,
            Error::DpkgLocked { .. } | Error::Busy { .. } => ExitCode::Locked,
            Error::CheckFailed { .. } => ExitCode::Check,
            Error::Io { .. } | Error::Occupied { .. } => ExitCode::Io,
            Error::NoManifest { .. } | Error::BadManifest { .. } => ExitCode::Input,
            Error::Internal(_) => ExitCode::Internal,
            Error::Drift { .. } => ExitCode::Drift,
        }
    }

    /// What to do about it: every error has one (the README promises a
    /// `hint:` line under every message).
    pub fn hint(&self) -> String {
        match self {
            Error::Stopped { source, .. } => source.hint(),
            Error::Profile(e) => e.hint(),
            Error::Requirements(e) => e.hint(),
            Error::Target(e) => e.hint(),
            Error::Command { hint, .. } | Error::Install { hint, .. } => hint.clone(),
            Error::Index { source } => source.hint(),
            Error::Bundle { .. } => "make it again with `venvbake bundle PROFILE --root IMAGE -o FILE`".into(),
            Error::BundleMismatch { .. } => "a bundle stamps images of the same release, interpreter package, venv path and lock, at the same generation; bundle from such an image, or apply with `--wheelhouse` instead".into(),
            Error::DpkgLocked { holder, .. } => match holder {
                Some(h) => format!("`{h}` holds the lock; wait for it or raise `[apt] lock_timeout_s`"),
                None => "another apt or dpkg process (cloud-init, unattended-upgrades) holds the lock; wait for it or raise `[apt] lock_timeout_s`".into(),
            },
            Error::Busy { .. } => "two applies (or a rollback or gc) of one venv path never interleave; run them one after the other, or raise `[apt] lock_timeout_s`".into(),
            Error::CheckFailed { .. } => "fix the lock (missing or incompatible pins) or add the system libraries a failing module needs to `[apt] packages`, and apply again; a module that cannot import during an image build (it needs a display, a device or a service) can be listed in `[venv] import_check_skip`".into(),
            Error::Io { source, .. } if source.raw_os_error() == Some(28) => {
                "the disk is full; free space (old generations: `venvbake gc`) and apply again".into()
            }
            Error::Io { .. } => "check the path's permissions and the file system it is on".into(),
            Error::Occupied { .. } => "move it away, or apply with `--adopt` to have venvbake move it aside to `<path>.adopted-N`; venvbake never deletes what it did not create".into(),
            Error::NoManifest { .. } => "run `venvbake apply` first, or name the manifest with `--manifest`".into(),
            Error::BadManifest { .. } => "re-run `venvbake apply` to rewrite it".into(),
            Error::Unresolved { .. } => "see `venvbake plan` for each decision; pin and hash what the venv must serve, add `[python.map]` entries, or, for `[python] system`, set `break_system_packages = true` as an audited last resort".into(),
            Error::Drift { .. } => "`venvbake apply` rebuilds a changed venv and rewrites the manifest and fact; investigate modified or extra files first".into(),
            Error::Usage { hint, .. } => hint.clone(),
            Error::Internal(_) => "this is a bug in venvbake; please report it with the log".into(),
        }
    }

    /// The text `main` prints: the message, the command's tail if any, and the hint.
    pub fn render(&self) -> String {
        if let Error::Stopped { source, state } = self {
            return format!("{}\n{state}", source.render());
        }
        let mut out = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        // The transparent wrappers already print their inner message, and
        // an I/O error's message ends with its cause.
        if matches!(
            self,
            Error::Profile(_)
                | Error::Requirements(_)
                | Error::Target(_)
                | Error::Install { .. }
                | Error::Index { .. }
                | Error::Io { .. }
        ) {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(s) = source {
            let _ = write!(out, "\n  caused by: {s}");
            source = s.source();
        }
        if let Error::Command { source, .. } = self {
            out.push_str(&source.render_tail());
        }
        if let Error::Install { source, .. } = self {
            if let crate::steps::install::InstallError::Compile(c) = source.as_ref() {
                out.push_str(&c.render_tail());
            }
        }
        let _ = write!(out, "\nhint: {}", self.hint());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_stable() {
        // Documented in the README; scripts branch on these numbers.
        let table = [
            (ExitCode::Ok, 0),
            (ExitCode::Internal, 1),
            (ExitCode::Input, 2),
            (ExitCode::Target, 3),
            (ExitCode::Apt, 4),
            (ExitCode::Locked, 5),
            (ExitCode::Install, 6),
            (ExitCode::Check, 7),
            (ExitCode::Io, 8),
            (ExitCode::Drift, 9),
        ];
        for (code, n) in table {
            assert_eq!(code.code(), n, "{code:?}");
        }
    }

    /// One value of every variant. The match below has no wildcard, so a new
    /// variant does not compile until it is added here too.
    fn every_variant() -> Vec<Error> {
        let cmd = || CommandError {
            command: "apt-get install x".into(),
            status: Some(100),
            spawn: None,
            tail: vec!["E: broken".into()],
            recent: vec![],
        };
        let io = || std::io::Error::other("x");
        let all = vec![
            Error::Profile(crate::input::profile::ProfileError::Invalid {
                path: "p.toml".into(),
                line: 1,
                column: 1,
                key: None,
                message: "x".into(),
                hint: None,
            }),
            Error::Profile(crate::input::profile::ProfileError::Whole {
                path: "p.toml".into(),
                message: "x".into(),
                hint: None,
            }),
            Error::Requirements(RequirementsError::Read {
                path: "l.txt".into(),
                source: io(),
            }),
            Error::Target(TargetError::NotRoot),
            Error::Target(TargetError::NoRoot { root: "/x".into() }),
            Error::Command {
                phase: Phase::Apt,
                what: "x".into(),
                hint: "do this".into(),
                source: Box::new(cmd()),
            },
            Error::Install {
                source: Box::new(crate::steps::install::InstallError::Compile(
                    Box::new(cmd()),
                )),
                hint: "do this".into(),
            },
            Error::Bundle {
                file: "b".into(),
                message: "x".into(),
            },
            Error::BundleMismatch {
                file: "b".into(),
                fields: vec![],
            },
            Error::DpkgLocked {
                timeout_s: 1,
                command: "apt-get".into(),
                holder: None,
            },
            Error::Busy {
                path: "/opt/v".into(),
                timeout_s: 1,
            },
            Error::CheckFailed {
                generation: "g1-aaaaaaaa".into(),
                failures: vec!["x".into()],
            },
            Error::io("write", "/x", io()),
            Error::Occupied { path: "/x".into() },
            Error::NoManifest { path: "/x".into() },
            Error::BadManifest {
                path: "/x".into(),
                message: "x".into(),
            },
            Error::Unresolved { items: vec![] },
            Error::from(crate::index::IndexError::Http(
                crate::index::http::HttpError::Hash {
                    url: "https://builder:s3cret@pypi.example.org/files/six-1.17.0-py2.py3-none-any.whl".into(),
                    got: "aa".into(),
                    expected: "bb".into(),
                },
            )),
            Error::Drift {
                profile: "p".into(),
                count: 1,
            },
            Error::usage("x", "do this"),
            Error::Stopped {
                source: Box::new(Error::usage("x", "do this")),
                state: "state: x".into(),
            },
            Error::Internal("x".into()),
        ];
        for e in &all {
            match e {
                Error::Profile(_)
                | Error::Requirements(_)
                | Error::Target(_)
                | Error::Command { .. }
                | Error::Install { .. }
                | Error::Index { .. }
                | Error::Bundle { .. }
                | Error::BundleMismatch { .. }
                | Error::DpkgLocked { .. }
                | Error::Busy { .. }
                | Error::CheckFailed { .. }
                | Error::Io { .. }
                | Error::Occupied { .. }
                | Error::NoManifest { .. }
                | Error::BadManifest { .. }
                | Error::Unresolved { .. }
                | Error::Drift { .. }
                | Error::Usage { .. }
                | Error::Stopped { .. }
                | Error::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_error_renders_with_a_hint() {
        for e in every_variant() {
            let text = e.render();
            let hint = text
                .lines()
                .find_map(|l| l.strip_prefix("hint: "))
                .unwrap_or_else(|| panic!("no hint line in:\n{text}"));
            assert!(hint.trim().len() > 5, "an empty hint in:\n{text}");
            assert!(text.starts_with("error: "), "{text}");
        }
    }

    /// How every error reads in a Packer log (a snapshot per variant).
    #[test]
    fn error_renderings_snapshot() {
        let all: Vec<String> = every_variant().iter().map(Error::render).collect();
        insta::assert_snapshot!("error_renderings", all.join("\n\n"));
    }

    #[test]
    fn no_hint_claims_a_previous_generation() {
        // Only the apply's `state:` line says what the fixed path serves,
        // read after the failure: a hint cannot know it.
        for e in every_variant() {
            assert!(!e.hint().contains("previous generation"), "{}", e.hint());
        }
    }

    /// The leaf modules' own errors keep the exit codes and hints they had
    /// when those modules returned this type.
    #[test]
    fn leaf_errors_keep_their_exit_codes() {
        let fs = || crate::sys::fsutil::FsError {
            action: "write",
            path: "/x".into(),
            source: std::io::Error::other("x"),
        };
        let cases: Vec<(Error, ExitCode)> = vec![
            (fs().into(), ExitCode::Io),
            (
                crate::generation::manifest::ManifestError::Invalid {
                    path: "/m".into(),
                    message: "x".into(),
                }
                .into(),
                ExitCode::Input,
            ),
            (
                crate::generation::manifest::ManifestError::Fs(fs()).into(),
                ExitCode::Io,
            ),
            (
                crate::input::credentials::Unset {
                    var: "TOKEN".into(),
                }
                .into(),
                ExitCode::Input,
            ),
            (
                crate::target::ns::NsError::NotRoot(TargetError::NotRoot).into(),
                ExitCode::Target,
            ),
            (crate::target::ns::NsError::Fs(fs()).into(), ExitCode::Io),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
            assert!(!e.hint().is_empty(), "{e}");
        }
    }

    #[test]
    fn errors_map_to_codes() {
        assert_eq!(Error::usage("x", "y").exit_code(), ExitCode::Input);
        assert_eq!(
            Error::Busy {
                path: "/x".into(),
                timeout_s: 1
            }
            .exit_code(),
            ExitCode::Locked
        );
        assert_eq!(
            Error::CheckFailed {
                generation: "g1".into(),
                failures: vec![]
            }
            .exit_code(),
            ExitCode::Check
        );
    }
}
