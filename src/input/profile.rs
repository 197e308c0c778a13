//! Reading and checking a profile (TOML, `schema_version = 1`).
//!
//! A profile turns into a checked [`Profile`] once, before anything runs:
//! unknown keys, wrong types and dangerous values are refused with the
//! profile's file, line, column and key, plus a hint. Relative paths in a
//! profile are relative to the profile file. The requirements file it names
//! is parsed here too (see [`crate::input::requirements`]).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use std::collections::BTreeMap;

use pep440_rs::VersionSpecifiers;
use pep508_rs::{PackageName, VersionOrUrl};

use crate::input::requirements::{Requirements, RequirementsError};

/// Profiles larger than this are refused before parsing.
const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

pub const DEFAULT_PYTHON: &str = "/usr/bin/python3";
pub const DEFAULT_KEEP_GENERATIONS: u32 = 2;
pub const DEFAULT_LOCK_TIMEOUT_S: u64 = 300;
pub const DEFAULT_FACT: &str = "/etc/ansible/facts.d/venvbake.fact";

/// `[outputs] manifest` when the profile does not set it.
pub fn default_manifest(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/venvbake/{name}.json"))
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("could not read profile `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The dotted key the problem is in (`venv.path`), if known.
        key: Option<String>,
        message: String,
        hint: Option<String>,
    },
    #[error("{}: {message}", path.display())]
    Whole {
        path: PathBuf,
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Requirements(#[from] RequirementsError),
}

impl ProfileError {
    pub fn hint(&self) -> String {
        let reference = |key: &Option<String>| match key {
            Some(k) => format!("see the profile reference in the README for `{k}`"),
            None => "see the profile reference in the README".into(),
        };
        match self {
            ProfileError::Read { .. } => "check the path given to venvbake".into(),
            ProfileError::Invalid { hint, key, .. } => {
                hint.clone().unwrap_or_else(|| reference(key))
            }
            ProfileError::Whole { hint, .. } => hint.clone().unwrap_or_else(|| reference(&None)),
            ProfileError::Requirements(e) => e.hint(),
        }
    }
}

/// Which side a requirement prefers (`[python] prefer`, `[python.prefer_for]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    Os,
    Venv,
}

// ---------------------------------------------------------------- raw TOML

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    schema_version: Spanned<i64>,
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    venv: RawVenv,
    #[serde(default)]
    apt: RawApt,
    #[serde(default)]
    outputs: RawOutputs,
    #[serde(default)]
    index: RawIndex,
    #[serde(default)]
    python: RawPython,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPython {
    prefer: Option<Spanned<String>>,
    #[serde(default)]
    prefer_for: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    map: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    system: Vec<Spanned<String>>,
    #[serde(default)]
    break_system_packages: bool,
    require_hashes: Option<bool>,
}

/// `[venv] requirements`: one lock, or one per release (`ID-VERSION_ID` or
/// `ID-VERSION_CODENAME` -> file).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLocks {
    One(String),
    PerRelease(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSystemSite {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    url: Option<Spanned<String>>,
    #[serde(default)]
    extra_urls: Vec<Spanned<String>>,
    cert: Option<Spanned<String>>,
    username_env: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    timeout_s: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVenv {
    path: Spanned<String>,
    python: Option<Spanned<String>>,
    requirements: Spanned<RawLocks>,
    system_site_packages: Option<Spanned<RawSystemSite>>,
    keep_generations: Option<Spanned<i64>>,
    #[serde(default)]
    allow_sdist: bool,
    #[serde(default)]
    installer: Installer,
    pip: Option<bool>,
    #[serde(default)]
    import_check_skip: Vec<Spanned<String>>,
}

/// Who installs the lock into a generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// venvbake's own wheel installer when the wheels come from a local
    /// wheelhouse and fit; pip otherwise.
    #[default]
    Auto,
    /// Always pip.
    Pip,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApt {
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    lock_timeout_s: Option<Spanned<i64>>,
    #[serde(default)]
    install_recommends: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputs {
    manifest: Option<Spanned<String>>,
    ansible_fact: Option<Spanned<String>>,
}

// ---------------------------------------------------------------- checked

/// A checked profile: every value valid, every path resolved.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile file as given.
    pub file: PathBuf,
    /// sha256 of the profile file's bytes.
    pub sha256: String,
    pub name: String,
    pub description: String,
    pub venv: VenvSpec,
    pub apt: AptSpec,
    pub outputs: Outputs,
    pub index: IndexSpec,
    pub python: PythonSpec,
    pub requirements: Requirements,
}

/// `[venv] system_site_packages`: on, off, or on exactly when apt serves a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemSite {
    No,
    Yes,
    Auto,
}

/// `[python]`: who serves each Python requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonSpec {
    pub prefer: Prefer,
    /// Normalised distribution name -> preference.
    pub prefer_for: BTreeMap<String, Prefer>,
    /// Distribution name -> Debian package ("" for none).
    pub map: BTreeMap<String, String>,
    pub system: Vec<SystemEntry>,
    pub break_system_packages: bool,
    pub require_hashes: bool,
}

impl PythonSpec {
    pub fn prefer_for(&self, name: &str) -> Prefer {
        self.prefer_for
            .get(&crate::input::requirements::normalize(name))
            .copied()
            .unwrap_or(self.prefer)
    }

    /// Whether any decision depends on what apt offers.
    pub fn asks_apt(&self) -> bool {
        self.prefer == Prefer::Os
            || self.prefer_for.values().any(|p| *p == Prefer::Os)
            || !self.system.is_empty()
    }
}

/// A distribution the *system* interpreter needs (`[python] system`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemEntry {
    pub name: PackageName,
    pub specifier: VersionSpecifiers,
}

/// Where pip looks when no wheelhouse is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSpec {
    /// `--index-url` (None: pip's default, PyPI).
    pub url: Option<String>,
    pub extra_urls: Vec<String>,
    /// A CA bundle on the machine running venvbake, for a TLS-inspecting
    /// proxy or a private index; never copied into the image.
    pub cert: Option<PathBuf>,
    /// Names of environment variables holding the index's user and password.
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    /// How long venvbake's index client waits to connect and for each read
    /// (None: its default).
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvSpec {
    /// The fixed path (in the target) that users and inventories know.
    pub path: PathBuf,
    /// The system interpreter (in the target) that creates the venv.
    pub python: PathBuf,
    /// The lock file(s) on the machine running venvbake.
    pub locks: Locks,
    pub system_site_packages: SystemSite,
    pub keep_generations: u32,
    pub allow_sdist: bool,
    pub installer: Installer,
    /// pip (and setuptools where `ensurepip` adds it) in the venv, as
    /// `python -m venv` gives it. Default false: the venv holds the lock's
    /// distributions only, changes go through the profile, and there are
    /// some 700 modules fewer to compile.
    pub pip: bool,
    /// Requirements whose modules the import check leaves out (normalised,
    /// sorted): they need a display, a device or a service to import. The
    /// dependency check still covers them.
    pub import_check_skip: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSpec {
    pub packages: Vec<String>,
    pub lock_timeout: Duration,
    pub install_recommends: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// Paths in the target.
    pub manifest: PathBuf,
    pub ansible_fact: PathBuf,
}

/// `[venv] requirements`: the lock on the machine running venvbake, one for
/// every release or one per release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locks {
    One(PathBuf),
    /// Release key (`debian-12`, `ubuntu-24.04`, `debian-forky`) -> lock.
    PerRelease(BTreeMap<String, PathBuf>),
}

impl Locks {
    /// The lock for a target known by `keys` (its `ID-VERSION_ID`, then
    /// its `ID-VERSION_CODENAME`).
    pub fn for_release(&self, keys: &[String]) -> Option<&PathBuf> {
        match self {
            Locks::One(p) => Some(p),
            Locks::PerRelease(m) => keys.iter().find_map(|k| m.get(k)),
        }
    }

    /// Every lock file the profile names.
    pub fn files(&self) -> Vec<&PathBuf> {
        match self {
            Locks::One(p) => vec![p],
            Locks::PerRelease(m) => m.values().collect(),
        }
    }
}

/// Which lock a profile is loaded with.
#[derive(Debug, Clone, Copy)]
pub enum LockSelect<'a> {
    /// The profile must name one lock for every release (no target is known).
    Single,
    /// The lock of the release with these keys ([`Locks::for_release`]).
    Release(&'a [String]),
    /// Do not read a lock (`venvbake lock` writes it, `cloud-config` ships
    /// every one): `requirements` is empty, and the checks that compare the
    /// profile with its lock are left to the commands that read one.
    Skip,
}

/// Read and check a profile file and the requirements file it names.
pub fn load(file: &Path) -> Result<Profile, ProfileError> {
    load_for(file, LockSelect::Single)
}

/// Read and check a profile file, with the lock `select` chooses.
pub fn load_for(file: &Path, select: LockSelect) -> Result<Profile, ProfileError> {
    let read_err = |source| ProfileError::Read {
        path: file.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(file).map_err(read_err)?;
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::Whole {
            path: file.to_path_buf(),
            message: format!(
                "the profile is {} bytes; at most {MAX_PROFILE_BYTES} are accepted",
                meta.len()
            ),
            hint: Some("is this really a profile?".into()),
        });
    }
    let bytes = std::fs::read(file).map_err(read_err)?;
    let text = match String::from_utf8(bytes.clone()) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let (line, column) = line_col(&String::from_utf8_lossy(&bytes[..at]), at);
            return Err(ProfileError::Invalid {
                path: file.to_path_buf(),
                line,
                column,
                key: None,
                message: "the profile is not valid UTF-8".into(),
                hint: Some("save the profile as UTF-8".into()),
            });
        }
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    parse_for(file, &text, dir, select)
}

/// Parse profile text; `dir` is where relative paths start.
#[cfg(test)]
pub fn parse(file: &Path, text: &str, dir: &Path) -> Result<Profile, ProfileError> {
    parse_for(file, text, dir, LockSelect::Single)
}

/// Parse profile text with the lock `select` chooses.
pub fn parse_for(
    file: &Path,
    text: &str,
    dir: &Path,
    select: LockSelect,
) -> Result<Profile, ProfileError> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or((1, 1));
        let table = enclosing_table(text, line);
        let mut message = e.message().trim().to_string();
        if let Some((key, readable)) = type_error(text, line, &table, &message) {
            return ProfileError::Invalid {
                path: file.to_path_buf(),
                line,
                column,
                message: format!("`{key}`: {readable}"),
                hint: Some(format!(
                    "see the profile reference in the README for `{key}`"
                )),
                key: Some(key),
            };
        }
        if !table.is_empty() && message.starts_with("unknown field") {
            message.push_str(&format!(" (in `[{table}]`)"));
        }
        ProfileError::Invalid {
            path: file.to_path_buf(),
            line,
            column,
            key: (!table.is_empty()).then_some(table),
            message,
            hint: Some(
                "keys and types are listed in the README's profile reference; unknown keys are refused so that typos do not pass silently"
                    .into(),
            ),
        }
    })?;
    let err = |span: std::ops::Range<usize>, key: &str, message: String, hint: Option<&str>| {
        let (line, column) = line_col(text, span.start);
        ProfileError::Invalid {
            path: file.to_path_buf(),
            line,
            column,
            key: Some(key.to_string()),
            message: format!("`{key}`: {message}"),
            hint: hint.map(str::to_string),
        }
    };

    if *raw.schema_version.get_ref() != 1 {
        return Err(err(
            raw.schema_version.span(),
            "schema_version",
            format!(
                "unsupported schema version {}",
                raw.schema_version.get_ref()
            ),
            Some("this venvbake reads `schema_version = 1`"),
        ));
    }
    let name = raw.name.get_ref();
    if !valid_name(name) {
        return Err(err(
            raw.name.span(),
            "name",
            format!("{name:?} is not a valid profile name"),
            Some("use lowercase letters, digits, `-` and `_`, starting with a letter or digit (at most 64)"),
        ));
    }

    let venv_path = check_abs_path(raw.venv.path.get_ref()).map_err(|m| {
        err(
            raw.venv.path.span(),
            "venv.path",
            m,
            Some("use a dedicated absolute path such as `/opt/venvs/ansible`"),
        )
    })?;
    check_venv_location(&venv_path).map_err(|m| {
        err(
            raw.venv.path.span(),
            "venv.path",
            m,
            Some("use a dedicated absolute path such as `/opt/venvs/ansible`"),
        )
    })?;
    let python = match &raw.venv.python {
        None => PathBuf::from(DEFAULT_PYTHON),
        Some(p) => check_abs_path(p.get_ref()).map_err(|m| {
            err(
                p.span(),
                "venv.python",
                m,
                Some("name the interpreter by its absolute path in the target, e.g. `/usr/bin/python3`"),
            )
        })?,
    };
    let req_span = raw.venv.requirements.span();
    let lock_path = |p: &str| -> Result<PathBuf, ProfileError> {
        if p.is_empty() {
            return Err(err(
                req_span.clone(),
                "venv.requirements",
                "must name a lock file".into(),
                None,
            ));
        }
        Ok(dir.join(p))
    };
    let locks = match raw.venv.requirements.get_ref() {
        RawLocks::One(p) => Locks::One(lock_path(p)?),
        RawLocks::PerRelease(m) => {
            if m.is_empty() {
                return Err(err(
                    req_span.clone(),
                    "venv.requirements",
                    "names no lock".into(),
                    Some("name one lock file, or one per release: `{ \"debian-12\" = \"pylock.debian-12.toml\" }`"),
                ));
            }
            let mut out = BTreeMap::new();
            for (k, v) in m {
                if !valid_release_key(k) {
                    return Err(err(
                        req_span.clone(),
                        &format!("venv.requirements.{k}"),
                        format!("{k:?} is not a release key"),
                        Some("key each lock by the target's `ID-VERSION_ID` from /etc/os-release (`debian-12`, `ubuntu-24.04`), or `ID-VERSION_CODENAME` (`debian-forky`)"),
                    ));
                }
                out.insert(k.clone(), lock_path(v)?);
            }
            Locks::PerRelease(out)
        }
    };
    let requirements_file = match select {
        LockSelect::Skip => None,
        LockSelect::Single => match &locks {
            Locks::One(p) => Some(p.clone()),
            Locks::PerRelease(m) => {
                return Err(err(
                    req_span.clone(),
                    "venv.requirements",
                    format!(
                        "names one lock per release ({}), and this command has no target to choose by",
                        m.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    Some("name the target (`--root DIR`, or run on it), or for `fetch` the release (`--release debian-12`)"),
                ))
            }
        },
        LockSelect::Release(keys) => match locks.for_release(keys) {
            Some(p) => Some(p.clone()),
            None => {
                let have = match &locks {
                    Locks::PerRelease(m) => m.keys().cloned().collect::<Vec<_>>().join(", "),
                    Locks::One(_) => String::new(),
                };
                return Err(err(
                    req_span.clone(),
                    "venv.requirements",
                    format!(
                        "names no lock for this target's release `{}` (it has: {have})",
                        keys.join("` or `")
                    ),
                    Some("make one for it on the build host: `venvbake lock PROFILE --root TREE --input REQS.in -o LOCK`, then add it to the table"),
                ));
            }
        },
    };
    let keep_generations = match &raw.venv.keep_generations {
        None => DEFAULT_KEEP_GENERATIONS,
        Some(k) => match u32::try_from(*k.get_ref()) {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(err(
                    k.span(),
                    "venv.keep_generations",
                    format!("{} is out of range", k.get_ref()),
                    Some("keep between 1 and 100 generations (2 lets you roll back once)"),
                ))
            }
        },
    };

    let mut packages = Vec::new();
    for p in &raw.apt.packages {
        let n = p.get_ref();
        if !valid_deb_name(n) {
            return Err(err(
                p.span(),
                "apt.packages",
                format!("{n:?} is not a Debian package name"),
                Some("list plain package names such as `git` or `python3-lxml`"),
            ));
        }
        if !packages.contains(n) {
            packages.push(n.clone());
        }
    }
    let lock_timeout = match &raw.apt.lock_timeout_s {
        None => Duration::from_secs(DEFAULT_LOCK_TIMEOUT_S),
        Some(t) => match u64::try_from(*t.get_ref()) {
            Ok(n) if n <= 24 * 3600 => Duration::from_secs(n),
            _ => {
                return Err(err(
                    t.span(),
                    "apt.lock_timeout_s",
                    format!("{} is out of range", t.get_ref()),
                    Some("give seconds between 0 and 86400"),
                ))
            }
        },
    };

    let out_path = |v: &Option<Spanned<String>>, key: &str, default: String| match v {
        None => Ok(PathBuf::from(default)),
        Some(s) => check_abs_path(s.get_ref()).map_err(|m| err(s.span(), key, m, None)),
    };
    let outputs = Outputs {
        manifest: out_path(
            &raw.outputs.manifest,
            "outputs.manifest",
            default_manifest(name).display().to_string(),
        )?,
        ansible_fact: out_path(
            &raw.outputs.ansible_fact,
            "outputs.ansible_fact",
            DEFAULT_FACT.to_string(),
        )?,
    };

    let check_url = |s: &Spanned<String>, key: &str| -> Result<String, ProfileError> {
        let u = s.get_ref();
        let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
        let authority = u
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        if !scheme_ok || u.chars().any(char::is_whitespace) {
            return Err(err(
                s.span(),
                key,
                format!("{u:?} is not an http(s) URL"),
                Some("write the index's simple API URL, e.g. `https://pypi.example.org/simple`"),
            ));
        }
        if authority.contains('@') {
            return Err(err(
                s.span(),
                key,
                "the URL carries credentials".into(),
                Some("never put credentials in a profile: it is copied around and recorded"),
            ));
        }
        Ok(u.clone())
    };
    let env_name = |v: &Option<Spanned<String>>,
                    key: &str|
     -> Result<Option<String>, ProfileError> {
        let Some(v) = v else { return Ok(None) };
        let n = v.get_ref();
        let ok = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Some(n.clone()))
        } else {
            Err(err(
                v.span(),
                key,
                format!("{n:?} is not an environment variable name"),
                Some("name the variable that holds the value (e.g. \"CORP_PYPI_TOKEN\"); never the value itself"),
            ))
        }
    };
    let index = IndexSpec {
        url: raw
            .index
            .url
            .as_ref()
            .map(|u| check_url(u, "index.url"))
            .transpose()?,
        extra_urls: raw
            .index
            .extra_urls
            .iter()
            .map(|u| check_url(u, "index.extra_urls"))
            .collect::<Result<_, _>>()?,
        cert: raw.index.cert.as_ref().map(|c| dir.join(c.get_ref())),
        username_env: env_name(&raw.index.username_env, "index.username_env")?,
        password_env: env_name(&raw.index.password_env, "index.password_env")?,
        timeout: match &raw.index.timeout_s {
            None => None,
            Some(t) => match u64::try_from(*t.get_ref()) {
                Ok(n) if (1..=3600).contains(&n) => Some(Duration::from_secs(n)),
                _ => {
                    return Err(err(
                        t.span(),
                        "index.timeout_s",
                        format!("{} is out of range", t.get_ref()),
                        Some("give seconds between 1 and 3600"),
                    ))
                }
            },
        },
    };

    // A lock that cannot be read is the profile's line that names it.
    let requirements = requirements_file.as_deref().map(|f| crate::input::requirements::load(f).map_err(|e| match e {
        RequirementsError::Read { path, source } => err(
            raw.venv.requirements.span(),
            "venv.requirements",
            format!("could not read `{}`: {source}", path.display()),
            Some("the path is relative to the profile file; check the name, and that venvbake may read it"),
        ),
        other => other.into(),
    })).transpose()?;
    // The items the profile's names are checked against (none when no lock is read).
    let items: &[crate::input::requirements::Requirement] =
        requirements.as_ref().map_or(&[], |r| &r.items);
    let lock_name = requirements_file
        .as_deref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let checked = requirements.is_some();

    let prefer_value = |s: &Spanned<String>, key: &str| {
        match s.get_ref().as_str() {
        "os" => Ok(Prefer::Os),
        "venv" => Ok(Prefer::Venv),
        other => Err(err(
            s.span(),
            key,
            format!("{other:?} is neither \"os\" nor \"venv\""),
            Some("\"os\": apt serves what the distribution packages in a satisfying version; \"venv\": the venv serves everything"),
        )),
    }
    };
    let prefer = match &raw.python.prefer {
        None => Prefer::Venv,
        Some(p) => prefer_value(p, "python.prefer")?,
    };
    let mut prefer_for = BTreeMap::new();
    for (name, value) in &raw.python.prefer_for {
        let key = crate::input::requirements::normalize(name);
        if checked && !items.iter().any(|r| r.name.as_ref() == key) {
            return Err(err(
                value.span(),
                &format!("python.prefer_for.{name}"),
                format!("`{name}` is not a requirement of `{lock_name}`"),
                Some("name a distribution the requirements file lists"),
            ));
        }
        prefer_for.insert(
            key,
            prefer_value(value, &format!("python.prefer_for.{name}"))?,
        );
    }
    let mut map = BTreeMap::new();
    for (name, pkg) in &raw.python.map {
        let p = pkg.get_ref();
        if !p.is_empty() && !valid_deb_name(p) {
            return Err(err(
                pkg.span(),
                &format!("python.map.{name}"),
                format!("{p:?} is not a Debian package name"),
                Some("map to a package such as \"python3-psycopg2\", or to \"\" for none"),
            ));
        }
        map.insert(name.clone(), p.clone());
    }
    let mut system: Vec<SystemEntry> = Vec::new();
    for entry in &raw.python.system {
        let text = entry.get_ref();
        let parsed = crate::input::requirements::parse_pep508(text).map_err(|e| {
            err(
                entry.span(),
                "python.system",
                format!("{text:?} is not a requirement: {e}"),
                Some("write a distribution name, optionally with a version specifier: \"pyOpenSSL>=23\""),
            )
        })?;
        let specifier = match parsed.version_or_url {
            None => VersionSpecifiers::empty(),
            Some(VersionOrUrl::VersionSpecifier(s)) if parsed.marker.is_true() => s,
            _ => {
                return Err(err(
                    entry.span(),
                    "python.system",
                    format!("{text:?}: URLs and markers are not supported here"),
                    Some("write a distribution name, optionally with a version specifier"),
                ))
            }
        };
        if system.iter().any(|s| s.name == parsed.name) {
            return Err(err(
                entry.span(),
                "python.system",
                format!("`{}` is listed twice", parsed.name),
                None,
            ));
        }
        system.push(SystemEntry {
            name: parsed.name,
            specifier,
        });
    }
    let python_spec = PythonSpec {
        prefer,
        prefer_for,
        map,
        system,
        break_system_packages: raw.python.break_system_packages,
        require_hashes: raw.python.require_hashes.unwrap_or(true),
    };
    // What only the venv can serve must be pinned and hashed: say so now,
    // before anything touches a target.
    if let Some(requirements) = requirements.as_ref().filter(|_| python_spec.require_hashes) {
        for r in &requirements.items {
            if python_spec.prefer_for(r.name.as_ref()) == Prefer::Venv {
                r.check_locked(&requirements.file)?;
            }
        }
    }
    let mut import_check_skip = Vec::new();
    for s in &raw.venv.import_check_skip {
        let key = crate::input::requirements::normalize(s.get_ref());
        if checked && !items.iter().any(|r| r.name.as_ref() == key) {
            return Err(err(
                s.span(),
                "venv.import_check_skip",
                format!("`{}` is not a requirement of `{lock_name}`", s.get_ref()),
                Some("name distributions the lock lists and the venv serves; the check imports the others"),
            ));
        }
        if !import_check_skip.contains(&key) {
            import_check_skip.push(key);
        }
    }
    import_check_skip.sort();
    let system_site_packages = match &raw.venv.system_site_packages {
        None => SystemSite::No,
        Some(v) => match v.get_ref() {
            RawSystemSite::Bool(true) => SystemSite::Yes,
            RawSystemSite::Bool(false) => SystemSite::No,
            RawSystemSite::Text(t) if t == "auto" => SystemSite::Auto,
            RawSystemSite::Text(t) => {
                return Err(err(
                    v.span(),
                    "venv.system_site_packages",
                    format!("{t:?} is not true, false or \"auto\""),
                    Some("\"auto\" turns them on exactly when apt serves a requirement"),
                ))
            }
        },
    };

    Ok(Profile {
        file: file.to_path_buf(),
        sha256: hex_sha256(text.as_bytes()),
        name: name.clone(),
        description: raw.description,
        venv: VenvSpec {
            path: venv_path,
            python,
            locks,
            system_site_packages,
            keep_generations,
            allow_sdist: raw.venv.allow_sdist,
            installer: raw.venv.installer,
            pip: raw.venv.pip.unwrap_or(false),
            import_check_skip,
        },
        apt: AptSpec {
            packages,
            lock_timeout,
            install_recommends: raw.apt.install_recommends,
        },
        outputs,
        index,
        python: python_spec,
        requirements: requirements.unwrap_or_else(crate::input::requirements::Requirements::empty),
    })
}

/// `ID-VERSION_ID` or `ID-VERSION_CODENAME`: lowercase letters, digits, `.`, `_`, `-`.
fn valid_release_key(key: &str) -> bool {
    key.split_once('-')
        .is_some_and(|(id, rest)| !id.is_empty() && !rest.is_empty())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// A serde type error (`invalid type: string "2", expected i64`) as the key
/// it is in and words a person uses: (`apt.lock_timeout_s`, `expected an
/// integer, found a string ("2")`). None for other errors.
fn type_error(text: &str, line: usize, table: &str, message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.split_once(", expected ")?;
    let name = text
        .lines()
        .nth(line.checked_sub(1)?)?
        .split_once('=')?
        .0
        .trim()
        .trim_matches('"');
    if name.is_empty() {
        return None;
    }
    let key = if table.is_empty() {
        name.to_string()
    } else {
        format!("{table}.{name}")
    };
    let expected = match expected.trim() {
        "i64" | "u64" | "i32" | "u32" | "an integer" => "an integer",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" => "a string",
        "a sequence" => "an array",
        other if other.starts_with("struct") || other.starts_with("a map") => "a table",
        other => other,
    };
    let (kind, value) = found.split_once(' ').unwrap_or((found, ""));
    let found = match kind {
        "string" => format!("a string ({value})"),
        "integer" => format!("an integer ({})", value.trim_matches('`')),
        "floating" => "a floating-point number".into(),
        "boolean" => format!("a boolean ({})", value.trim_matches('`')),
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        _ => found.to_string(),
    };
    Some((key, format!("expected {expected}, found {found}")))
}

/// The `[table]` header in force at 1-based `line` ("" for the top level).
fn enclosing_table(text: &str, line: usize) -> String {
    text.lines()
        .take(line)
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .map(|t| t.trim_matches(['[', ' ']).to_string())
        })
        .last()
        .unwrap_or_default()
}

pub use crate::sys::codec::{hex_sha256, line_col};

/// `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// Debian policy: `[a-z0-9][a-z0-9+.-]+`, optionally `:arch`.
pub fn valid_deb_name(name: &str) -> bool {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let mut chars = pkg.chars();
    let ok_pkg = pkg.len() >= 2
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let ok_arch = arch.is_none_or(|a| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    ok_pkg && ok_arch
}

/// An absolute, normal path: no `.`/`..`, no empty or NUL characters.
fn check_abs_path(raw: &str) -> Result<PathBuf, String> {
    if raw.contains('\0') || raw.contains('\n') {
        return Err("the path contains a NUL or newline character".into());
    }
    let p = Path::new(raw);
    if !p.is_absolute() {
        return Err(format!("{raw:?} is not an absolute path"));
    }
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => clean.push(n),
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("{raw:?} contains `.` or `..`"))
            }
        }
    }
    Ok(clean)
}

/// System locations that must never become (or contain) a venv symlink.
const FORBIDDEN_UNDER: [&str; 15] = [
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc",
    "/sys", "/dev", "/run", "/tmp", "/var/tmp",
];
const FORBIDDEN_EXACT: [&str; 9] = [
    "/", "/opt", "/srv", "/var", "/var/lib", "/home", "/root", "/mnt", "/media",
];

pub fn check_venv_location(p: &Path) -> Result<(), String> {
    if FORBIDDEN_EXACT.iter().any(|f| p == Path::new(f)) {
        return Err(format!(
            "`{}` is a system directory; the venv needs a path of its own",
            p.display()
        ));
    }
    if let Some(f) = FORBIDDEN_UNDER.iter().find(|f| p.starts_with(f)) {
        return Err(format!(
            "`{}` is under `{f}`, which belongs to the OS",
            p.display()
        ));
    }
    if p.starts_with("/var/lib/dpkg") || p.starts_with("/var/lib/apt") {
        return Err(format!("`{}` belongs to dpkg/apt", p.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_req(dir: &Path) {
        std::fs::write(
            dir.join("req.txt"),
            "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n",
        )
        .unwrap();
    }

    fn parse_in(text: &str) -> Result<Profile, ProfileError> {
        let dir = tempfile::tempdir().unwrap();
        write_req(dir.path());
        parse(&dir.path().join("p.toml"), text, dir.path())
    }

    const GOOD: &str = r#"
schema_version = 1
name = "ansible"
description = "Ansible controller libs"

[venv]
path = "/opt/venvs/ansible"
requirements = "req.txt"

[apt]
packages = ["git", "git"]
"#;

    #[test]
    fn defaults_apply() {
        let p = parse_in(GOOD).unwrap();
        assert_eq!(p.name, "ansible");
        assert_eq!(p.venv.python, Path::new("/usr/bin/python3"));
        assert_eq!(p.venv.keep_generations, 2);
        assert_eq!(p.venv.system_site_packages, SystemSite::No);
        assert_eq!(p.python.prefer, Prefer::Venv);
        assert!(p.python.require_hashes);
        assert!(!p.python.asks_apt());
        assert_eq!(p.apt.packages, ["git"]);
        assert_eq!(p.apt.lock_timeout, Duration::from_secs(300));
        assert_eq!(
            p.outputs.manifest,
            Path::new("/var/lib/venvbake/ansible.json")
        );
        assert_eq!(p.outputs.ansible_fact, Path::new(DEFAULT_FACT));
        assert_eq!(p.requirements.items.len(), 1);
    }

    fn invalid(text: &str) -> (usize, usize, String) {
        match parse_in(text) {
            Err(ProfileError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let (line, col, msg) = invalid(&GOOD.replace("path = ", "pathh = "));
        assert_eq!((line, col), (7, 1), "{msg}");
        assert!(msg.contains("pathh") && msg.contains("`[venv]`"), "{msg}");
    }

    #[test]
    fn installer_is_auto_unless_pip_is_asked_for() {
        assert_eq!(parse_in(GOOD).unwrap().venv.installer, Installer::Auto);
        let pip = GOOD.replace("requirements = ", "installer = \"pip\"\nrequirements = ");
        assert_eq!(parse_in(&pip).unwrap().venv.installer, Installer::Pip);
        let (line, _, msg) =
            invalid(&GOOD.replace("requirements = ", "installer = \"uv\"\nrequirements = "));
        assert_eq!(line, 8, "{msg}");
        assert!(msg.contains("`auto`") && msg.contains("`pip`"), "{msg}");
    }

    #[test]
    fn pip_is_left_out_unless_asked_for() {
        assert!(!parse_in(GOOD).unwrap().venv.pip);
        let with = GOOD.replace("requirements = ", "pip = true\nrequirements = ");
        assert!(parse_in(&with).unwrap().venv.pip);
    }

    #[test]
    fn wrong_type_is_refused() {
        let (line, _, msg) = invalid(&GOOD.replace("[apt]", "[apt]\nlock_timeout_s = \"ten\""));
        assert_eq!(line, 11, "{msg}");
    }

    #[test]
    fn dangerous_venv_paths_are_refused() {
        for bad in [
            "venvs/x",
            "/",
            "/usr/local/venv",
            "/etc/x",
            "/opt",
            "/opt/../etc/x",
            "/proc/1",
            "/boot/v",
            "/tmp/v",
        ] {
            let text = GOOD.replace("/opt/venvs/ansible", bad);
            let (line, _, msg) = invalid(&text);
            assert_eq!(line, 7, "{bad}: {msg}");
            assert!(msg.contains("venv.path"), "{bad}: {msg}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["Ansible", "a/b", "-x", "", "a b", "x;rm"] {
            let text = GOOD.replace("\"ansible\"", &format!("{bad:?}"));
            let (line, _, msg) = invalid(&text);
            assert_eq!(line, 3, "{bad}: {msg}");
        }
    }

    #[test]
    fn bad_apt_names_are_refused() {
        let (line, _, msg) =
            invalid(&GOOD.replace("\"git\", \"git\"", "\"git\", \"git; rm -rf /\""));
        assert_eq!(line, 11, "{msg}");
    }

    #[test]
    fn index_urls_are_checked_and_never_carry_credentials() {
        let p = parse_in(&format!(
            "{GOOD}\n[index]\nurl = \"https://pypi.example.org/simple\"\ncert = \"ca.pem\"\n"
        ))
        .unwrap();
        assert_eq!(
            p.index.url.as_deref(),
            Some("https://pypi.example.org/simple")
        );
        assert!(p.index.cert.unwrap().ends_with("ca.pem"));
        let (line, _, msg) = invalid(&format!(
            "{GOOD}\n[index]\nurl = \"https://bob:s3cret@pypi.example.org/simple\"\n"
        ));
        assert_eq!(line, 14, "{msg}");
        assert!(
            msg.contains("credentials") && !msg.contains("s3cret"),
            "{msg}"
        );
        let (_, _, msg) = invalid(&format!("{GOOD}\n[index]\nextra_urls = [\"ftp://x\"]\n"));
        assert!(msg.contains("index.extra_urls"), "{msg}");
    }

    #[test]
    fn python_policy_is_read_and_checked() {
        let text = format!("{GOOD}\n[python]\nprefer = \"os\"\nsystem = [\"pyOpenSSL>=23\", \"lxml\"]\nbreak_system_packages = true\n[python.prefer_for]\nSix = \"venv\"\n[python.map]\n\"psycopg2-binary\" = \"python3-psycopg2\"\n");
        let p = parse_in(&text.replace(
            "requirements = \"req.txt\"",
            "requirements = \"req.txt\"\nsystem_site_packages = \"auto\"",
        ))
        .unwrap();
        assert_eq!(p.python.prefer, Prefer::Os);
        assert_eq!(p.python.prefer_for("six"), Prefer::Venv);
        assert_eq!(p.python.system.len(), 2);
        assert_eq!(p.python.system[0].specifier.to_string(), ">=23");
        assert_eq!(p.venv.system_site_packages, SystemSite::Auto);
        assert!(p.python.asks_apt());
        let (line, _, msg) = invalid(&format!("{GOOD}\n[python]\nprefer = \"apt\"\n"));
        assert_eq!(line, 14, "{msg}");
        let (_, _, msg) = invalid(&format!("{GOOD}\n[python.prefer_for]\nlxml = \"os\"\n"));
        assert!(msg.contains("not a requirement"), "{msg}");
        let (_, _, msg) = invalid(&format!(
            "{GOOD}\n[python]\nsystem = [\"x @ https://e.org/x.whl\"]\n"
        ));
        assert!(msg.contains("python.system"), "{msg}");
        let (_, _, msg) = invalid(&GOOD.replace(
            "requirements = \"req.txt\"",
            "requirements = \"req.txt\"\nsystem_site_packages = \"sometimes\"",
        ));
        assert!(msg.contains("venv.system_site_packages"), "{msg}");
    }

    #[test]
    fn schema_version_is_checked() {
        let (line, _, _) = invalid(&GOOD.replace("schema_version = 1", "schema_version = 2"));
        assert_eq!(line, 2);
    }

    #[test]
    fn a_lock_per_release_is_chosen_by_the_target_s_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_req(dir.path());
        let text = GOOD.replace(
            "requirements = \"req.txt\"",
            "requirements = { \"debian-12\" = \"req.txt\", \"debian-forky\" = \"nope.txt\" }",
        );
        let file = dir.path().join("p.toml");
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = parse_for(
            &file,
            &text,
            dir.path(),
            LockSelect::Release(&keys(&["debian-12", "debian-bookworm"])),
        )
        .unwrap();
        assert_eq!(got.requirements.items.len(), 1);
        // No VERSION_ID (a testing release): the codename key.
        let err = parse_for(
            &file,
            &text,
            dir.path(),
            LockSelect::Release(&keys(&["debian-forky"])),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope.txt"), "{err}");
        let err = parse_for(
            &file,
            &text,
            dir.path(),
            LockSelect::Release(&keys(&["debian-13", "debian-trixie"])),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`venv.requirements`: names no lock for this target's release `debian-13` or `debian-trixie` (it has: debian-12, debian-forky)"),
            "{err}"
        );
        // No target to choose by.
        let err = parse_for(&file, &text, dir.path(), LockSelect::Single).unwrap_err();
        assert!(
            err.to_string().contains("names one lock per release"),
            "{err}"
        );
        // Nothing read: the lock may not exist yet.
        let got = parse_for(
            &file,
            &text.replace("req.txt", "later.toml"),
            dir.path(),
            LockSelect::Skip,
        )
        .unwrap();
        assert!(got.requirements.items.is_empty());
        let err = parse_in(&GOOD.replace(
            "requirements = \"req.txt\"",
            "requirements = { \"Debian 12\" = \"req.txt\" }",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("is not a release key"), "{err}");
    }

    #[test]
    fn missing_requirements_file_is_named() {
        let err = parse_in(&GOOD.replace("req.txt", "nope.txt")).unwrap_err();
        assert!(err.to_string().contains("nope.txt"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let dir = tempfile::tempdir().unwrap();
            write_req(dir.path());
            let _ = parse(&dir.path().join("p.toml"), &text, dir.path());
        }

        #[test]
        fn mutated_profiles_never_panic(cut in 0usize..200, insert in "[\\[\\]=\"a-z0-9 .\n#{}]{0,12}") {
            let dir = tempfile::tempdir().unwrap();
            write_req(dir.path());
            let mut text = GOOD.to_string();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &insert);
            }
            match parse(&dir.path().join("p.toml"), &text, dir.path()) {
                Ok(_) => {}
                Err(ProfileError::Invalid { line, .. }) => proptest::prop_assert!(line >= 1),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }

    #[test]
    fn deb_names() {
        for ok in [
            "git",
            "python3-lxml",
            "libc6:amd64",
            "g++",
            "python3.11-venv",
        ] {
            assert!(valid_deb_name(ok), "{ok}");
        }
        for bad in ["Git", "a", "-x", "x y", "x;y", "x:"] {
            assert!(!valid_deb_name(bad), "{bad}");
        }
    }
}
