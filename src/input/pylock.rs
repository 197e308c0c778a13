//! Reading a PEP 751 lock (`pylock.toml`) into the same typed requirements a
//! hashed requirements file gives.
//!
//! A package becomes one [`Requirement`]: pinned `==` at its `version`, its
//! `marker` and `requires-python` kept for the target, its hashes the sha256
//! of every file it lists, and its files ([`LockedPackage`]) kept so that an
//! install takes exactly the wheels the lock names. The lock's own scope
//! (`requires-python`, `environments`) is kept as a [`LockScope`] and judged
//! once the target's interpreter is known. Everything the spec asks an
//! installer to refuse is refused here with the file, line, column and key:
//! an unknown major `lock-version`, a package with no usable source or more
//! than one, a file without a sha256, `vcs`, `directory` and `archive`
//! sources, and two entries of one name that can apply together. Both
//! shapes tools write are the same TOML: uv's inline `wheels = [{...}]` and
//! pip's `[[packages.wheels]]`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::{Operator, Version, VersionSpecifier, VersionSpecifiers};
use pep508_rs::{MarkerTree, PackageName};
use serde::Deserialize;
use toml::Spanned;

use crate::input::requirements::{LockFormat, Requirement, Requirements, RequirementsError};
use crate::sys::codec::{hex_sha256, line_col};

/// The major `lock-version` this reader follows.
const MAJOR: u64 = 1;

/// A file of a locked package: a wheel or the sdist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFile {
    /// The file's name (`six-1.17.0-py2.py3-none-any.whl`), given or taken
    /// from the end of its URL or path.
    pub name: String,
    pub url: Option<String>,
    /// A local file, made absolute against the lock's directory.
    pub path: Option<PathBuf>,
    pub size: Option<u64>,
    pub sha256: String,
}

/// What a `pylock.toml` says of one package beyond its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// `packages.requires-python`.
    pub requires_python: Option<VersionSpecifiers>,
    pub wheels: Vec<LockedFile>,
    pub sdist: Option<LockedFile>,
}

impl LockedPackage {
    /// The locked file of this name, if any.
    pub fn file(&self, name: &str) -> Option<&LockedFile> {
        self.wheels
            .iter()
            .chain(self.sdist.as_ref())
            .find(|f| f.name == name)
    }
}

/// The lock's own scope: which interpreters and environments it was made for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockScope {
    /// `requires-python` and its line.
    pub requires_python: Option<(VersionSpecifiers, usize)>,
    /// `environments`: the target must match at least one; with their line.
    pub environments: Vec<(MarkerTree, String)>,
    pub environments_line: usize,
}

// ---------------------------------------------------------------- raw TOML

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLock {
    lock_version: Spanned<String>,
    #[serde(default)]
    environments: Option<Spanned<Vec<Spanned<String>>>>,
    requires_python: Option<Spanned<String>>,
    #[serde(default)]
    packages: Vec<Spanned<RawPackage>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: Spanned<String>,
    version: Option<Spanned<String>>,
    marker: Option<Spanned<String>>,
    requires_python: Option<Spanned<String>>,
    vcs: Option<Spanned<toml::Table>>,
    directory: Option<Spanned<toml::Table>>,
    archive: Option<Spanned<toml::Table>>,
    sdist: Option<Spanned<RawFile>>,
    wheels: Option<Spanned<Vec<Spanned<RawFile>>>>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    size: Option<Spanned<i64>>,
    hashes: Option<Spanned<toml::Table>>,
}

/// Whether `path` names a PEP 751 lock: `pylock.toml`, `pylock.NAME.toml`,
/// or any other `.toml` file (read as one; its name is only a convention).
pub fn is_pylock(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// Parse a `pylock.toml`; `path` is the file (for errors and relative `path` keys).
pub fn parse(path: &Path, text: &str) -> Result<Requirements, RequirementsError> {
    let at = |span: std::ops::Range<usize>, key: &str, message: String, hint: &str| {
        let (line, column) = line_col(text, span.start);
        RequirementsError::At {
            path: path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message,
            hint: hint.to_string(),
        }
    };
    let raw: RawLock = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let key = if message.contains("lock-version") {
            "lock-version"
        } else {
            ""
        };
        at(
            span,
            key,
            message,
            "the file is read as a PEP 751 lock (pylock.toml): regenerate it with `uv pip compile ... -o pylock.toml` or `pip lock`",
        )
    })?;
    check_lock_version(&raw.lock_version)
        .map_err(|(message, hint)| at(raw.lock_version.span(), "lock-version", message, hint))?;
    let dir = path.parent().unwrap_or(Path::new("."));

    let mut scope = LockScope::default();
    if let Some(rp) = &raw.requires_python {
        let specs = VersionSpecifiers::from_str(rp.get_ref()).map_err(|e| {
            at(
                rp.span(),
                "requires-python",
                format!("{:?} is not a version specifier: {e}", rp.get_ref()),
                "write a PEP 440 specifier such as \">=3.11\"",
            )
        })?;
        scope.requires_python = Some((specs, line_col(text, rp.span().start).0));
    }
    if let Some(envs) = &raw.environments {
        scope.environments_line = line_col(text, envs.span().start).0;
        for e in envs.get_ref() {
            let marker = parse_marker(e.get_ref()).map_err(|msg| {
                at(
                    e.span(),
                    "environments",
                    format!("{:?} is not a marker: {msg}", e.get_ref()),
                    "each entry of `environments` is a PEP 508 marker",
                )
            })?;
            scope.environments.push((marker, e.get_ref().clone()));
        }
    }
    if raw.packages.is_empty() {
        return Err(RequirementsError::Whole {
            path: path.to_path_buf(),
            message: "the lock has no `[[packages]]`".into(),
            hint: "lock at least one distribution".into(),
        });
    }

    let mut items: Vec<Requirement> = Vec::new();
    for (i, pkg) in raw.packages.iter().enumerate() {
        let key = format!("packages[{i}]");
        let p = pkg.get_ref();
        let line = line_col(text, pkg.span().start).0;
        let name_text = p.name.get_ref();
        if !crate::input::requirements::valid_dist_name(name_text) {
            return Err(at(
                p.name.span(),
                &format!("{key}.name"),
                format!("{name_text:?} is not a valid distribution name"),
                "a name starts and ends with a letter or digit",
            ));
        }
        let name = PackageName::from_str(name_text).map_err(|e| {
            at(
                p.name.span(),
                &format!("{key}.name"),
                format!("{name_text:?} is not a valid distribution name: {e}"),
                "a name starts and ends with a letter or digit",
            )
        })?;
        let key = format!("packages[{i}] ({name})");
        for (table, what) in [
            (&p.vcs, "vcs"),
            (&p.directory, "directory"),
            (&p.archive, "archive"),
        ] {
            if let Some(t) = table {
                return Err(at(
                    t.span(),
                    &format!("{key}.{what}"),
                    format!("`{name}` comes from a `{what}` source, which venvbake does not install"),
                    "an image needs files it can check by hash: lock a released wheel (or an sdist, with `allow_sdist`) from an index instead",
                ));
            }
        }
        let Some(version_text) = &p.version else {
            return Err(at(
                p.name.span(),
                &format!("{key}.version"),
                format!("`{name}` has no `version`"),
                "a wheel or sdist from an index is locked at one version; regenerate the lock",
            ));
        };
        let version = Version::from_str(version_text.get_ref()).map_err(|e| {
            at(
                version_text.span(),
                &format!("{key}.version"),
                format!("{:?} is not a version: {e}", version_text.get_ref()),
                "regenerate the lock",
            )
        })?;
        let marker = match &p.marker {
            None => MarkerTree::TRUE,
            Some(m) => parse_marker(m.get_ref()).map_err(|msg| {
                at(
                    m.span(),
                    &format!("{key}.marker"),
                    format!("{:?} is not a marker: {msg}", m.get_ref()),
                    "write a PEP 508 marker; markers on `extras` and `dependency_groups` are not supported: lock without extras or groups",
                )
            })?,
        };
        let requires_python = p
            .requires_python
            .as_ref()
            .map(|rp| {
                VersionSpecifiers::from_str(rp.get_ref()).map_err(|e| {
                    at(
                        rp.span(),
                        &format!("{key}.requires-python"),
                        format!("{:?} is not a version specifier: {e}", rp.get_ref()),
                        "write a PEP 440 specifier such as \">=3.9\"",
                    )
                })
            })
            .transpose()?;
        let file = |f: &Spanned<RawFile>, what: &str| -> Result<LockedFile, RequirementsError> {
            read_file(f, dir, &|span, sub: &str, message, hint| {
                at(span, &format!("{key}.{what}{sub}"), message, hint)
            })
        };
        let sdist = p.sdist.as_ref().map(|s| file(s, "sdist")).transpose()?;
        let mut wheels = Vec::new();
        if let Some(ws) = &p.wheels {
            for (j, w) in ws.get_ref().iter().enumerate() {
                let f = file(w, &format!("wheels[{j}]"))?;
                if !f.name.ends_with(".whl") {
                    return Err(at(
                        w.span(),
                        &format!("{key}.wheels[{j}]"),
                        format!("`{}` is not a wheel file name", f.name),
                        "a wheel's name ends in `.whl` (PEP 427)",
                    ));
                }
                wheels.push(f);
            }
        }
        if wheels.is_empty() && sdist.is_none() {
            return Err(at(
                pkg.span(),
                &key,
                format!("`{name}` has no usable source: no `wheels` and no `sdist`"),
                "each package needs exactly one source; regenerate the lock",
            ));
        }
        let specifier = VersionSpecifiers::from_iter([VersionSpecifier::from_version(
            Operator::Equal,
            version.clone(),
        )
        .map_err(|e| {
            at(
                version_text.span(),
                &format!("{key}.version"),
                e.to_string(),
                "regenerate the lock",
            )
        })?]);
        let mut text_req = format!("{name}=={version}");
        if let Some(m) = marker.contents() {
            text_req.push_str(&format!(" ; {m}"));
        }
        let hashes: Vec<String> = wheels
            .iter()
            .chain(sdist.as_ref())
            .map(|f| f.sha256.clone())
            .collect();
        let req = Requirement {
            line,
            text: text_req,
            name,
            specifier,
            version: Some(version),
            marker,
            hashes,
            locked: Some(LockedPackage {
                requires_python,
                wheels,
                sdist,
            }),
        };
        // Two entries of one name that can apply together (the spec asks an
        // installer to refuse that). Different markers may select different
        // pins; whether both apply on the target is judged there again.
        if let Some(prev) = items.iter().find(|r| {
            r.name == req.name
                && (r.marker.is_true() || req.marker.is_true() || r.marker == req.marker)
                && python_ranges_overlap(r, &req)
        }) {
            return Err(at(
                pkg.span(),
                &key,
                format!(
                    "`{}` is locked twice (first at line {}) for the same environments",
                    req.name, prev.line
                ),
                "each package may apply once per environment: give the entries disjoint `marker`s, or regenerate the lock",
            ));
        }
        items.push(req);
    }
    Ok(Requirements {
        file: path.to_path_buf(),
        sha256: hex_sha256(text.as_bytes()),
        format: LockFormat::Pylock,
        scope,
        items,
    })
}

fn check_lock_version(v: &Spanned<String>) -> Result<(), (String, &'static str)> {
    let text = v.get_ref();
    let major = text
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|_| Version::from_str(text).is_ok());
    match major {
        Some(MAJOR) => Ok(()),
        Some(m) => Err((
            format!("lock-version {text:?} (major {m}) is not supported; venvbake reads 1.x"),
            "write the lock with a tool that emits lock-version 1.x, or update venvbake",
        )),
        None => Err((
            format!("{text:?} is not a lock version"),
            "`lock-version` is \"1.0\" in a PEP 751 lock",
        )),
    }
}

/// Two entries' `requires-python` ranges may overlap unless both are set
/// and no Python minor version satisfies both (a quick, safe test).
fn python_ranges_overlap(a: &Requirement, b: &Requirement) -> bool {
    let rp = |r: &Requirement| r.locked.as_ref().and_then(|l| l.requires_python.clone());
    let (Some(x), Some(y)) = (rp(a), rp(b)) else {
        return true;
    };
    (0..=40).any(|minor| {
        (0..=30).any(|patch| {
            let v = Version::new([3, minor, patch]);
            x.contains(&v) && y.contains(&v)
        })
    })
}

fn parse_marker(text: &str) -> Result<MarkerTree, String> {
    MarkerTree::from_str(text).map_err(|e| e.message.to_string())
}

type At<'a> = dyn Fn(std::ops::Range<usize>, &str, String, &str) -> RequirementsError + 'a;

fn read_file(f: &Spanned<RawFile>, dir: &Path, at: &At) -> Result<LockedFile, RequirementsError> {
    let raw = f.get_ref();
    let (url, path) = (raw.url.as_ref(), raw.path.as_ref());
    if url.is_none() && path.is_none() {
        return Err(at(
            f.span(),
            "",
            "the file has neither `url` nor `path`".into(),
            "each wheel and sdist needs a `url` or a `path`",
        ));
    }
    let last = |s: &str| {
        s.split(['?', '#'])
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let name = match (&raw.name, url, path) {
        (Some(n), _, _) => n.get_ref().clone(),
        (None, Some(u), _) => last(u.get_ref()),
        (None, None, Some(p)) => last(p.get_ref()),
        (None, None, None) => String::new(),
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        let span = raw.name.as_ref().map_or(f.span(), |n| n.span());
        return Err(at(
            span,
            ".name",
            format!("{name:?} is not a file name"),
            "give the file's `name`, or a `url` or `path` that ends in it",
        ));
    }
    let size = match &raw.size {
        None => None,
        Some(s) => Some(u64::try_from(*s.get_ref()).map_err(|_| {
            at(
                s.span(),
                ".size",
                format!("{} is not a size", s.get_ref()),
                "`size` is the file's length in bytes",
            )
        })?),
    };
    let Some(hashes) = &raw.hashes else {
        return Err(at(
            f.span(),
            ".hashes",
            format!("`{name}` has no `hashes`"),
            "every file of a lock needs a sha256; regenerate the lock (uv and pip write them)",
        ));
    };
    let sha256 = match hashes.get_ref().get("sha256") {
        Some(toml::Value::String(h))
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            h.to_ascii_lowercase()
        }
        Some(other) => {
            return Err(at(
                hashes.span(),
                ".hashes.sha256",
                format!("{other} is not a sha256 digest"),
                "a sha256 digest is 64 hexadecimal digits",
            ))
        }
        None => {
            return Err(at(
                hashes.span(),
                ".hashes",
                format!("`{name}` has no sha256 hash"),
                "venvbake checks files by sha256; lock with a tool that records it",
            ))
        }
    };
    Ok(LockedFile {
        name,
        url: url.map(|u| u.get_ref().clone()),
        path: path.map(|p| dir.join(p.get_ref())),
        size,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "a5663118de4908c91729bea0acadca56526eb2698e83de10cd116ae0f4e97c64";
    const H2: &str = "472c87d80f36026ae83c6ddd0f1d05d4e510134ed462851fd5f754c8c3cbb88d";

    fn p(text: &str) -> Result<Requirements, RequirementsError> {
        parse(Path::new("/locks/pylock.toml"), text)
    }

    /// line, column, key and message of a refusal.
    fn refusal(text: &str) -> (usize, usize, String, String) {
        match p(text) {
            Err(RequirementsError::At {
                line,
                column,
                key,
                message,
                ..
            }) => (line, column, key, message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn uv_shape() -> String {
        format!(
            r#"# uv
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "jmespath"
version = "1.1.0"
sdist = {{ url = "https://files.example/jmespath-1.1.0.tar.gz", size = 27377, hashes = {{ sha256 = "{H2}" }} }}
wheels = [{{ url = "https://files.example/jmespath-1.1.0-py3-none-any.whl", upload-time = 2026-01-22T16:35:24Z, size = 20419, hashes = {{ sha256 = "{H1}" }} }}]

[[packages]]
name = "Tomli"
version = "2.0.1"
marker = "python_full_version < '3.11'"
wheels = [{{ path = "wheels/tomli-2.0.1-py3-none-any.whl", hashes = {{ sha256 = "{H1}" }} }}]
"#
        )
    }

    #[test]
    fn reads_uv_s_inline_shape() {
        let r = p(&uv_shape()).unwrap();
        assert_eq!(r.format, LockFormat::Pylock);
        assert_eq!(r.items.len(), 2);
        let j = &r.items[0];
        assert_eq!(j.name.as_ref(), "jmespath");
        assert_eq!(j.line, 6);
        assert_eq!(j.version.as_ref().unwrap().to_string(), "1.1.0");
        assert_eq!(j.hashes, [H1, H2]);
        let l = j.locked.as_ref().unwrap();
        assert_eq!(l.wheels[0].name, "jmespath-1.1.0-py3-none-any.whl");
        assert_eq!(l.wheels[0].size, Some(20419));
        assert_eq!(l.sdist.as_ref().unwrap().name, "jmespath-1.1.0.tar.gz");
        let t = &r.items[1];
        assert_eq!(t.name.as_ref(), "tomli");
        assert!(!t.marker.is_true());
        assert_eq!(
            t.locked.as_ref().unwrap().wheels[0].path.as_deref(),
            Some(Path::new("/locks/wheels/tomli-2.0.1-py3-none-any.whl"))
        );
        assert_eq!(
            r.scope
                .requires_python
                .as_ref()
                .map(|(s, l)| (s.to_string(), *l)),
            Some((">=3.11".into(), 4))
        );
        // What pip gets: the pin, the marker and every hash.
        assert_eq!(
            j.pip_line(),
            format!("jmespath==1.1.0 --hash=sha256:{H1} --hash=sha256:{H2}")
        );
    }

    #[test]
    fn reads_pip_s_table_shape() {
        let text = format!(
            "lock-version = \"1.0\"\ncreated-by = \"pip\"\n\n[[packages]]\nname = \"jmespath\"\nversion = \"1.1.0\"\n\n[[packages.wheels]]\nname = \"jmespath-1.1.0-py3-none-any.whl\"\nurl = \"https://files.example/x/jmespath-1.1.0-py3-none-any.whl\"\n\n[packages.wheels.hashes]\nsha256 = \"{H1}\"\n"
        );
        let r = p(&text).unwrap();
        assert_eq!(r.items[0].hashes, [H1]);
        assert_eq!(r.items[0].line, 4);
        assert!(r.scope.requires_python.is_none());
    }

    #[test]
    fn hostile_locks_are_refused_with_line_column_and_key() {
        let wheel = format!(
            "wheels = [{{ url = \"https://x/six-1.17.0-py2.py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]"
        );
        let pkg = |body: &str| {
            format!("lock-version = \"1.0\"\ncreated-by = \"t\"\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\n{body}\n")
        };
        // An unknown major version.
        let (line, col, key, msg) =
            refusal(&pkg(&wheel).replace("lock-version = \"1.0\"", "lock-version = \"2.0\""));
        assert_eq!((line, col, key.as_str()), (1, 16, "lock-version"));
        assert!(msg.contains("not supported"), "{msg}");
        // No source at all.
        let (line, _, key, msg) = refusal(&pkg(""));
        assert_eq!(line, 3);
        assert!(key.starts_with("packages[0] (six)"), "{key}");
        assert!(msg.contains("no usable source"), "{msg}");
        // A wheel without hashes, and one without sha256.
        let (line, _, key, msg) = refusal(&pkg(
            "wheels = [{ url = \"https://x/six-1.17.0-py2.py3-none-any.whl\" }]",
        ));
        assert_eq!(line, 6);
        assert_eq!(key, "packages[0] (six).wheels[0].hashes");
        assert!(msg.contains("no `hashes`"), "{msg}");
        let (_, _, _, msg) = refusal(&pkg(
            "wheels = [{ url = \"https://x/six-1.17.0-py2.py3-none-any.whl\", hashes = { sha512 = \"00\" } }]",
        ));
        assert!(msg.contains("no sha256"), "{msg}");
        // vcs, directory and archive sources.
        for what in ["vcs", "directory", "archive"] {
            let (line, _, key, msg) = refusal(&pkg(&format!(
                "{what} = {{ url = \"https://x/y\", path = \".\" }}"
            )));
            assert_eq!(line, 6, "{what}");
            assert_eq!(key, format!("packages[0] (six).{what}"));
            assert!(msg.contains(&format!("`{what}` source")), "{msg}");
        }
        // Two entries that apply together.
        let twice = format!(
            "{}[[packages]]\nname = \"Six\"\nversion = \"1.16.0\"\n{wheel}\n",
            pkg(&wheel)
        );
        let (line, _, _, msg) = refusal(&twice);
        assert_eq!(line, 7);
        assert!(msg.contains("locked twice (first at line 3)"), "{msg}");
        // ... but disjoint markers may each pin their own.
        let split = format!(
            "{}[[packages]]\nname = \"six\"\nversion = \"1.16.0\"\nmarker = \"python_version >= '3.13'\"\n{wheel}\n",
            pkg(&format!("marker = \"python_version < '3.13'\"\n{wheel}"))
        );
        assert_eq!(p(&split).unwrap().items.len(), 2);
        // Malformed TOML, pointed at.
        let (line, _, _, _) = refusal("lock-version = \"1.0\"\n[[packages]\n");
        assert_eq!(line, 2);
        // Not a wheel's name.
        let (_, _, _, msg) = refusal(&pkg(&format!(
            "wheels = [{{ url = \"https://x/six.zip\", hashes = {{ sha256 = \"{H1}\" }} }}]"
        )));
        assert!(msg.contains("not a wheel file name"), "{msg}");
    }

    fn env(python: &str, machine: &str) -> pep508_rs::MarkerEnvironment {
        let minor: String = python.split('.').take(2).collect::<Vec<_>>().join(".");
        pep508_rs::MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: python,
            os_name: "posix",
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "6.1.0",
            platform_system: "Linux",
            platform_version: "#1 SMP",
            python_full_version: python,
            python_version: &minor,
            sys_platform: "linux",
        })
        .unwrap()
    }

    #[test]
    fn the_lock_s_scope_is_judged_for_the_target() {
        let wheel = format!(
            "wheels = [{{ url = \"https://x/six-1.17.0-py2.py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]"
        );
        let lock = |head: &str| {
            p(&format!(
                "lock-version = \"1.0\"\n{head}\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\n{wheel}\n"
            ))
            .unwrap()
        };
        let scope_err = |r: &Requirements, e| match r.check_scope(&e) {
            Err(RequirementsError::At {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a refusal, got {other:?}"),
        };
        let r = lock("requires-python = \">=3.12\"");
        r.check_scope(&env("3.13.5", "x86_64")).unwrap();
        let (line, key, msg) = scope_err(&r, env("3.11.2", "x86_64"));
        assert_eq!((line, key.as_str()), (2, "requires-python"));
        assert!(msg.contains("the target's is 3.11.2"), "{msg}");
        let r =
            lock("environments = [\"platform_machine == 'aarch64'\", \"python_version < '3.10'\"]");
        r.check_scope(&env("3.11.2", "aarch64")).unwrap();
        let (line, key, msg) = scope_err(&r, env("3.11.2", "x86_64"));
        assert_eq!((line, key.as_str()), (2, "environments"));
        assert!(
            msg.contains("matches none of the lock's environments"),
            "{msg}"
        );
        // Markers that differ in text but both hold on the target.
        let twice = p(&format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nmarker = \"python_version >= '3.10'\"\n{wheel}\n[[packages]]\nname = \"six\"\nversion = \"1.16.0\"\nmarker = \"sys_platform == 'linux'\"\n{wheel}\n"
        ))
        .unwrap();
        let (line, _, msg) = scope_err(&twice, env("3.11.2", "x86_64"));
        assert_eq!(line, 7);
        assert!(
            msg.contains("locked twice for this target (lines 2 and 7)"),
            "{msg}"
        );
        // A package's own requires-python.
        let r = p(&format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"tomli\"\nversion = \"2.0.1\"\nrequires-python = \"<3.11\"\n{}\n",
            wheel.replace("six-1.17.0-py2.py3", "tomli-2.0.1-py3")
        ))
        .unwrap();
        assert!(!r.items[0].applies(&env("3.11.2", "x86_64")));
        assert!(r.items[0].applies(&env("3.10.12", "x86_64")));
    }

    #[test]
    fn a_requirements_file_named_toml_is_not_silently_accepted() {
        let (line, _, _, _) = refusal("six==1.17.0 --hash=sha256:abc\n");
        assert_eq!(line, 1);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = p(&text);
        }

        #[test]
        fn lock_like_text_never_panics(
            version in "[0-9a-z.]{0,6}",
            name in "[A-Za-z0-9._-]{0,10}",
            marker in "[a-z_ <>=!'0-9.]{0,30}",
            rp in "[<>=!~0-9.*, ]{0,12}",
        ) {
            let _ = p(&format!(
                "lock-version = \"{version}\"\nrequires-python = \"{rp}\"\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nmarker = \"{marker}\"\nrequires-python = \"{rp}\"\nwheels = [{{ name = \"{name}.whl\", path = \"{name}\", hashes = {{ sha256 = \"{H1}\" }} }}]\n"
            ));
        }
    }
}
