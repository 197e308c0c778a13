//! `venvbake inventory`: the Ansible variables that point at a baked venv.
//!
//! Reads the manifest of a profile (found through the Ansible fact, which
//! lists every profile applied on the target, or named with `--manifest`) and
//! prints inventory variables as YAML, INI or JSON on stdout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::generation::manifest::{self, Manifest};
use crate::input::profile::DEFAULT_FACT;
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Ini,
    Json,
}

/// Find the manifest for `name` (or the only profile) on the target.
pub fn find_manifest(
    target: &Target,
    name: Option<&str>,
    explicit: Option<&Path>,
) -> Result<(PathBuf, Manifest)> {
    let path = match (explicit, name) {
        (Some(p), _) => p.to_path_buf(),
        (None, name) => {
            let fact = manifest::read_fact(&target.host_path(Path::new(DEFAULT_FACT)));
            match name {
                Some(n) => fact
                    .profiles
                    .get(n)
                    .map(|e| e.manifest.clone())
                    .unwrap_or_else(|| crate::input::profile::default_manifest(n)),
                None => match fact.profiles.len() {
                    1 => fact
                        .profiles
                        .values()
                        .map(|e| e.manifest.clone())
                        .next()
                        .unwrap_or_default(),
                    0 => {
                        return Err(Error::NoManifest {
                            path: PathBuf::from(DEFAULT_FACT),
                        })
                    }
                    _ => {
                        let names: Vec<&str> = fact.profiles.keys().map(String::as_str).collect();
                        return Err(Error::usage(
                            format!(
                                "several profiles are applied on this target ({})",
                                names.join(", ")
                            ),
                            format!("name one: `venvbake inventory {}`", names[0]),
                        ));
                    }
                },
            }
        }
    };
    let host = target.host_path(&path);
    match manifest::read(&host)? {
        Some(m) => {
            if explicit.is_none() {
                if let Some(n) = name {
                    check_describes(&path, &m, n)?;
                }
            }
            Ok((path, m))
        }
        None => Err(Error::NoManifest { path }),
    }
}

/// A manifest found for profile `name` must describe that profile: a
/// manifest path can lead (through the venv's fixed path) to another
/// profile's manifest after a hand-over, or when two profiles share a path.
pub fn check_describes(path: &Path, m: &Manifest, name: &str) -> Result<()> {
    if m.profile.name == name {
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "the manifest `{}` describes profile `{}`, not `{name}`",
            path.display(),
            m.profile.name
        ),
        match &m.taken_over_from {
            Some(old) if old == name => format!(
                "`{}` took the venv path over from `{name}`; name `{}`, or apply `{name}` with a path of its own",
                m.profile.name, m.profile.name
            ),
            _ => format!("name `{}`, or apply `{name}` again", m.profile.name),
        },
    ))
}

/// The variables, in a stable order.
pub fn variables(m: &Manifest) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert(
        "ansible_python_interpreter",
        m.interpreter.display().to_string(),
    );
    v.insert("venvbake_profile", m.profile.name.clone());
    v.insert("venvbake_venv", m.venv.path.display().to_string());
    v.insert("venvbake_generation", m.venv.generation.clone());
    v.insert("venvbake_python_version", m.python.version.clone());
    v
}

pub fn render(m: &Manifest, format: Format) -> String {
    let vars = variables(m);
    match format {
        Format::Yaml => {
            let mut s = String::from("all:\n  vars:\n");
            for (k, v) in &vars {
                // JSON strings are valid YAML scalars: safe for any value.
                s.push_str(&format!(
                    "    {k}: {}\n",
                    serde_json::Value::String(v.clone())
                ));
            }
            s
        }
        Format::Ini => {
            let mut s = String::from("[all:vars]\n");
            for (k, v) in &vars {
                s.push_str(&format!("{k}={v}\n"));
            }
            s
        }
        Format::Json => {
            let doc = serde_json::json!({ "all": { "vars": vars } });
            let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}
