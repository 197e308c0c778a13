//! Parsing a pinned, hash-checked pip requirements file (a lock), and the
//! typed requirements both lock formats give (a PEP 751 `pylock.toml` is
//! read by `pylock` into the same [`Requirements`]).
//!
//! Every requirement must be pinned with `==` (or `===`) and carry at least
//! one `--hash=sha256:` option, the way `pip-compile --generate-hashes` and
//! `uv pip compile --generate-hashes` write them. Requirements are parsed with
//! `pep508_rs`; continuation lines and comments follow pip's file format.
//! Options that would change where packages come from (`--index-url`, `-f`,
//! `-r`, `-e`, ...) are refused: the profile and the command line decide that.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerTree, PackageName, VerbatimUrl, VersionOrUrl};

pub use crate::input::pylock::{LockScope, LockedPackage};
use crate::sys::codec::{hex_sha256, line_col};

/// Requirements files larger than this are refused before parsing.
const MAX_REQUIREMENTS_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error("could not read requirements file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
        hint: String,
    },
    /// A key of a `pylock.toml`, at its line and column.
    #[error("{}:{line}:{column}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
        hint: String,
    },
    #[error("{}: {message}", path.display())]
    Whole {
        path: PathBuf,
        message: String,
        hint: String,
    },
}

impl RequirementsError {
    pub fn hint(&self) -> String {
        match self {
            RequirementsError::Read { .. } => {
                "`[venv] requirements` is relative to the profile file; check the name".into()
            }
            RequirementsError::Line { hint, .. }
            | RequirementsError::At { hint, .. }
            | RequirementsError::Whole { hint, .. } => hint.clone(),
        }
    }
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// One requirement of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// 1-based line the requirement starts on.
    pub line: usize,
    /// The requirement as written, without its options (`lxml>=4.9 ; python_version < "3.13"`).
    pub text: String,
    /// Normalised (PEP 503) distribution name.
    pub name: PackageName,
    pub specifier: VersionSpecifiers,
    /// The version when pinned with `==`/`===` to exactly one version.
    pub version: Option<Version>,
    pub marker: MarkerTree,
    /// sha256 hex digests allowed for this requirement.
    pub hashes: Vec<String>,
    /// What a `pylock.toml` adds: the package's files and `requires-python`.
    pub locked: Option<LockedPackage>,
}

impl Requirement {
    /// The line pip gets: the requirement and its hashes.
    pub fn pip_line(&self) -> String {
        let mut line = self.text.clone();
        for h in &self.hashes {
            line.push_str(" --hash=sha256:");
            line.push_str(h);
        }
        line
    }

    /// A venv-bound requirement must be pinned and hashed.
    pub fn check_locked(&self, path: &Path) -> Result<(), RequirementsError> {
        let err = |message: String, hint: &str| RequirementsError::Line {
            path: path.to_path_buf(),
            line: self.line,
            message,
            hint: hint.to_string(),
        };
        let Some(version) = &self.version else {
            let how = if self.specifier.is_empty() {
                "not pinned".to_string()
            } else {
                format!("not pinned (`{}`)", self.specifier)
            };
            return Err(err(
                format!("`{}` is {how}", self.name),
                "pin every requirement the venv installs with `==`; generate the lock with `scripts/lock-profile`",
            ));
        };
        if self.hashes.is_empty() {
            return Err(err(
                format!("`{}=={version}` has no `--hash=sha256:` option", self.name),
                "every requirement the venv installs needs hashes; generate the lock with `--generate-hashes` (see `scripts/lock-profile`)",
            ));
        }
        Ok(())
    }

    /// Whether the requirement applies on an interpreter with `env`: its
    /// marker, and a locked package's `requires-python`.
    pub fn applies(&self, env: &MarkerEnvironment) -> bool {
        self.marker.evaluate(env, &[])
            && self
                .locked
                .as_ref()
                .and_then(|l| l.requires_python.as_ref())
                .is_none_or(|rp| rp.contains(&env.python_full_version().version))
    }
}

/// Which format a lock is written in (recorded in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockFormat {
    /// A hashed pip requirements file.
    Requirements,
    /// A PEP 751 `pylock.toml`.
    Pylock,
}

/// A parsed requirements file.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub file: PathBuf,
    pub sha256: String,
    pub format: LockFormat,
    /// A `pylock.toml`'s `requires-python` and `environments` (empty for a
    /// requirements file).
    pub scope: LockScope,
    pub items: Vec<Requirement>,
}

impl Requirements {
    /// No lock read (a profile loaded with `LockSelect::Skip`).
    pub fn empty() -> Self {
        Requirements {
            file: PathBuf::new(),
            sha256: String::new(),
            format: LockFormat::Requirements,
            scope: LockScope::default(),
            items: Vec::new(),
        }
    }

    /// Whether the lock was made for an interpreter with `env`: a
    /// `pylock.toml`'s `requires-python`, and one of its `environments`.
    pub fn check_scope(&self, env: &MarkerEnvironment) -> Result<(), RequirementsError> {
        let at = |line: usize, key: &str, message: String, hint: &str| RequirementsError::At {
            path: self.file.clone(),
            line,
            column: 1,
            key: key.into(),
            message,
            hint: hint.into(),
        };
        let python = &env.python_full_version().version;
        if let Some((rp, line)) = &self.scope.requires_python {
            if !rp.contains(python) {
                return Err(at(
                    *line,
                    "requires-python",
                    format!("the lock requires Python `{rp}`; the target's is {python}"),
                    "make a lock for this target's Python (one lock per release: see the README's lock workflow)",
                ));
            }
        }
        let envs = &self.scope.environments;
        if !envs.is_empty() && !envs.iter().any(|(m, _)| m.evaluate(env, &[])) {
            let listed: Vec<&str> = envs.iter().map(|(_, t)| t.as_str()).collect();
            return Err(at(
                self.scope.environments_line,
                "environments",
                format!(
                    "the target (Python {python}, {} on {}) matches none of the lock's environments: {}",
                    env.sys_platform(),
                    env.platform_machine(),
                    listed.join("; ")
                ),
                "lock for this target's environment too",
            ));
        }
        // Two entries of one name that both apply here.
        let applying: Vec<&Requirement> = self.items.iter().filter(|r| r.applies(env)).collect();
        for (i, a) in applying.iter().enumerate() {
            if let Some(b) = applying[i + 1..].iter().find(|b| b.name == a.name) {
                return Err(at(
                    b.line,
                    "packages",
                    format!(
                        "`{}` is locked twice for this target (lines {} and {})",
                        a.name, a.line, b.line
                    ),
                    "give the entries disjoint markers, or regenerate the lock",
                ));
            }
        }
        Ok(())
    }
}

/// Read a lock: a `.toml` file as a PEP 751 `pylock.toml`, anything else
/// as a hashed requirements file.
pub fn load(path: &Path) -> Result<Requirements, RequirementsError> {
    let read_err = |source| RequirementsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_REQUIREMENTS_BYTES {
        return Err(RequirementsError::Whole {
            path: path.to_path_buf(),
            message: format!(
                "the file is {} bytes; at most {MAX_REQUIREMENTS_BYTES} are accepted",
                meta.len()
            ),
            hint: "is this really a requirements file?".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let (line, _) = line_col(&String::from_utf8_lossy(&e.as_bytes()[..at]), at);
        RequirementsError::Line {
            path: path.to_path_buf(),
            line,
            message: "the file is not valid UTF-8".into(),
            hint: "save the requirements file as UTF-8".into(),
        }
    })?;
    if crate::input::pylock::is_pylock(path) {
        return crate::input::pylock::parse(path, &text);
    }
    parse(path, &text)
}

/// Parse one PEP 508 requirement. The distribution name is checked here
/// first: `pep508_rs` 0.9 panics on some invalid names (`s.`), and user input
/// must never crash venvbake.
pub fn parse_pep508(text: &str) -> Result<pep508_rs::Requirement<VerbatimUrl>, String> {
    let trimmed = text.trim_start();
    let name: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if !name.is_empty() && !valid_dist_name(&name) {
        return Err(format!(
            "`{name}` is not a valid distribution name (it must start and end with a letter or digit)"
        ));
    }
    pep508_rs::Requirement::<VerbatimUrl>::from_str(text).map_err(|e| e.message.to_string())
}

/// A PEP 508 distribution name: letters, digits, `.`, `_`, `-`, starting
/// and ending with a letter or digit. Check this before `pep508_rs` sees a name.
pub fn valid_dist_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// One logical line: continuation lines joined, comment removed.
struct Logical {
    line: usize,
    text: String,
}

fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut current: Option<Logical> = None;
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let stripped = strip_comment(raw);
        let (body, continues) = match stripped.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (stripped, false),
        };
        let entry = current.get_or_insert_with(|| Logical {
            line: no,
            text: String::new(),
        });
        entry.text.push(' ');
        entry.text.push_str(body);
        if !continues {
            if let Some(done) = current.take() {
                if !done.text.trim().is_empty() {
                    out.push(done);
                }
            }
        }
    }
    if let Some(done) = current.take() {
        if !done.text.trim().is_empty() {
            out.push(done);
        }
    }
    out
}

/// pip's rule: `#` starts a comment at the line start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

impl Requirements {
    /// Check every requirement is pinned and hashed.
    #[cfg(test)]
    pub fn check_locked(&self) -> Result<(), RequirementsError> {
        self.items
            .iter()
            .try_for_each(|r| r.check_locked(&self.file))
    }
}

/// Parse a requirements file. Requirements may be ranges or unhashed here;
/// [`Requirement::check_locked`] enforces pins and hashes where needed.
pub fn parse(path: &Path, text: &str) -> Result<Requirements, RequirementsError> {
    let err = |line: usize, message: String, hint: &str| RequirementsError::Line {
        path: path.to_path_buf(),
        line,
        message,
        hint: hint.to_string(),
    };
    let mut items: Vec<Requirement> = Vec::new();
    for logical in logical_lines(text) {
        let line = logical.line;
        let body = logical.text.trim();
        // Split the requirement from its options at the first ` -` token.
        let (req_text, opts) = split_options(body);
        if req_text.is_empty() {
            let opt = opts.first().map(String::as_str).unwrap_or("");
            if opt == "--require-hashes" {
                continue;
            }
            return Err(err(
                line,
                format!("option `{opt}` is not accepted in a venvbake lock"),
                "the index comes from the profile or `--wheelhouse`; keep only pinned requirements with `--hash` options",
            ));
        }
        let mut hashes = Vec::new();
        let mut iter = opts.iter();
        while let Some(opt) = iter.next() {
            let value = if let Some(v) = opt.strip_prefix("--hash=") {
                v.to_string()
            } else if opt == "--hash" {
                match iter.next() {
                    Some(v) => v.clone(),
                    None => {
                        return Err(err(
                            line,
                            "`--hash` needs a value".into(),
                            "write `--hash=sha256:<64 hex digits>`",
                        ))
                    }
                }
            } else {
                return Err(err(
                    line,
                    format!("option `{opt}` is not accepted on a requirement line"),
                    "only `--hash=sha256:...` options may follow a requirement",
                ));
            };
            let Some((alg, digest)) = value.split_once(':') else {
                return Err(err(
                    line,
                    format!("`--hash={value}` has no algorithm"),
                    "write `--hash=sha256:<64 hex digits>`",
                ));
            };
            match alg {
                "sha256" => {
                    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(
                            line,
                            format!("`sha256:{digest}` is not a sha256 digest"),
                            "a sha256 digest is 64 hexadecimal digits; regenerate the lock",
                        ));
                    }
                    hashes.push(digest.to_ascii_lowercase());
                }
                "sha384" | "sha512" => {}
                other => {
                    return Err(err(
                        line,
                        format!("unknown hash algorithm `{other}`"),
                        "use sha256",
                    ))
                }
            }
        }
        let req = parse_pep508(req_text).map_err(|e| {
            err(
                line,
                format!("`{req_text}` is not a valid requirement: {e}"),
                "write `name==version` (PEP 508)",
            )
        })?;
        let specifier = match &req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specs)) => specs.clone(),
            Some(VersionOrUrl::Url(_)) => {
                return Err(err(
                    line,
                    format!("`{}` is a URL requirement", req.name),
                    "put the wheel in a wheelhouse and pin it by name and version",
                ))
            }
            None => VersionSpecifiers::empty(),
        };
        let version = {
            let specs: Vec<_> = specifier.iter().collect();
            match specs.as_slice() {
                [s] if matches!(s.operator(), Operator::Equal | Operator::ExactEqual) => {
                    Some(s.version().clone())
                }
                _ => None,
            }
        };
        if let Some(prev) = items.iter().find(|r| {
            r.name == req.name
                && (r.marker.is_true() || req.marker.is_true() || r.marker == req.marker)
        }) {
            let msg = if prev.specifier == specifier {
                format!(
                    "`{}` is listed twice (first on line {})",
                    req.name, prev.line
                )
            } else {
                format!(
                    "`{}` is `{}` here and `{}` on line {}",
                    req.name, specifier, prev.specifier, prev.line
                )
            };
            return Err(err(
                line,
                msg,
                "list each distribution once (different markers may select different pins)",
            ));
        }
        items.push(Requirement {
            line,
            text: req_text.to_string(),
            name: req.name,
            specifier,
            version,
            marker: req.marker,
            hashes,
            locked: None,
        });
    }
    if items.is_empty() {
        return Err(RequirementsError::Whole {
            path: path.to_path_buf(),
            message: "the file has no requirements".into(),
            hint: "list at least one pinned, hashed requirement".into(),
        });
    }
    Ok(Requirements {
        file: path.to_path_buf(),
        sha256: hex_sha256(text.as_bytes()),
        format: LockFormat::Requirements,
        scope: LockScope::default(),
        items,
    })
}

/// Split `name==1 ; marker --hash=a --hash b` into the requirement and option tokens.
fn split_options(body: &str) -> (&str, Vec<String>) {
    let mut cut = body.len();
    let bytes = body.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'-' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            // A marker never contains ` -` outside quotes, but a quoted value could.
            let before = &body[..i];
            if before.matches('"').count().is_multiple_of(2)
                && before.matches('\'').count().is_multiple_of(2)
            {
                cut = i;
                break;
            }
        }
    }
    let opts = body[cut..].split_whitespace().map(str::to_string).collect();
    (body[..cut].trim(), opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";
    const H2: &str = "0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3";

    fn p(text: &str) -> Result<Requirements, RequirementsError> {
        parse(Path::new("req.txt"), text)
    }

    fn line_err(text: &str) -> (usize, String) {
        match p(text).and_then(|r| r.check_locked().map(|()| r)) {
            Err(RequirementsError::Line { line, message, .. }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_uv_style_lock() {
        let text = format!(
            "# This file was autogenerated\nsix==1.16.0 \\\n    --hash=sha256:{H1} \\\n    --hash=sha256:{H2}\n    # via foo\ncffi==2.1.1 ; platform_python_implementation != 'PyPy' \\\n    --hash=sha256:{H1}\nPyYAML==6.0.3 --hash sha256:{H2}\n"
        );
        let r = p(&text).unwrap();
        assert_eq!(r.items.len(), 3);
        assert_eq!(r.items[0].name.as_ref(), "six");
        assert_eq!(r.items[0].line, 2);
        assert_eq!(r.items[0].hashes, [H1, H2]);
        assert_eq!(r.items[1].line, 6);
        assert!(!r.items[1].marker.is_true());
        assert_eq!(r.items[2].name.as_ref(), "pyyaml");
        assert_eq!(r.items[2].version.as_ref().unwrap().to_string(), "6.0.3");
        assert_eq!(
            r.items[1].pip_line(),
            format!("cffi==2.1.1 ; platform_python_implementation != 'PyPy' --hash=sha256:{H1}")
        );
        r.check_locked().unwrap();
    }

    #[test]
    fn unpinned_is_refused_with_line() {
        let (line, msg) = line_err(&format!("# c\nsix>=1.0 --hash=sha256:{H1}\n"));
        assert_eq!(line, 2);
        assert!(msg.contains("not pinned"), "{msg}");
        let (_, msg) = line_err("six\n");
        assert!(msg.contains("not pinned"), "{msg}");
        // Ranges parse; only the lock check refuses them.
        let r = p("lxml>=4.9\n").unwrap();
        assert_eq!(r.items[0].specifier.to_string(), ">=4.9");
        assert!(r.items[0].version.is_none());
    }

    #[test]
    fn unhashed_is_refused() {
        let (line, msg) = line_err(&format!("six==1.16.0 --hash=sha256:{H1}\nidna==3.7\n"));
        assert_eq!(line, 2);
        assert!(msg.contains("--hash"), "{msg}");
    }

    #[test]
    fn bad_hashes_are_refused() {
        let (_, msg) = line_err("six==1.16.0 --hash=sha256:abc\n");
        assert!(msg.contains("not a sha256"), "{msg}");
        let (_, msg) = line_err(&format!("six==1.16.0 --hash=md5:{H1}\n"));
        assert!(msg.contains("unknown hash"), "{msg}");
    }

    #[test]
    fn source_options_are_refused() {
        for opt in [
            "--index-url https://x/simple",
            "-f /tmp",
            "-r other.txt",
            "-e .",
        ] {
            let (line, msg) = line_err(&format!("{opt}\nsix==1.16.0 --hash=sha256:{H1}\n"));
            assert_eq!(line, 1, "{opt}");
            assert!(msg.contains("not accepted"), "{msg}");
        }
    }

    #[test]
    fn duplicates_and_conflicts_are_refused() {
        let (line, msg) = line_err(&format!(
            "six==1.16.0 --hash=sha256:{H1}\nSix==1.15.0 --hash=sha256:{H2}\n"
        ));
        assert_eq!(line, 2);
        assert!(msg.contains("line 1"), "{msg}");
        // Different markers may pick different pins.
        p(&format!(
            "numpy==1.26.4 ; python_version < '3.12' --hash=sha256:{H1}\nnumpy==2.1.0 ; python_version >= '3.12' --hash=sha256:{H2}\n"
        ))
        .unwrap();
    }

    #[test]
    fn url_requirements_are_refused() {
        let (_, msg) = line_err(&format!(
            "six @ https://example.org/six.whl --hash=sha256:{H1}\n"
        ));
        assert!(msg.contains("URL"), "{msg}");
    }

    #[test]
    fn empty_file_is_refused() {
        assert!(matches!(
            p("# nothing\n\n"),
            Err(RequirementsError::Whole { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = p(&text).map(|r| r.check_locked());
        }

        #[test]
        fn requirement_like_lines_never_panic(
            name in "[A-Za-z0-9._-]{0,12}",
            op in proptest::sample::select(vec!["==", ">=", "~=", "===", "!=", "", "=", "<"]),
            version in "[0-9a-z.*+!-]{0,10}",
            tail in "( ; [a-z_]{1,8} [<>=!]{1,2} '[0-9.]{0,4}')?( --hash=sha256:[0-9a-f]{0,64})*( \\\\)?",
        ) {
            let _ = p(&format!("{name}{op}{version}{tail}\n")).map(|r| r.check_locked());
        }
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("huge.txt");
        std::fs::write(&f, "#".repeat(9 * 1024 * 1024)).unwrap();
        assert!(matches!(load(&f), Err(RequirementsError::Whole { .. })));
        std::fs::write(&f, b"six==1.0 --hash=sha256:\xff\n").unwrap();
        assert!(matches!(
            load(&f),
            Err(RequirementsError::Line { line: 1, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "s.==1",
            "s.",
            "-a==1",
            "a_==1 --hash=sha256:x",
            "\\",
            "==",
            "a==",
            "a==1 --hash",
            "a==1 --hash=",
            "\u{0}",
            "a[==1",
            "'",
            "a==1 ; python_version <",
        ] {
            let _ = p(text);
        }
    }
}
