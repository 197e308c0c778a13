//! Deciding, per Python requirement, who serves it: apt, the venv, or, as
//! an audited last resort, `pip --break-system-packages`.
//!
//! Pure functions over data: the requirement, the profile's policy and what
//! apt on the target said about the candidate packages ([`OsLookup`]). Every
//! decision carries the reason a person reads in `venvbake plan` and the
//! manifest.

pub mod debver;
pub mod mapping;

use std::collections::BTreeMap;
use std::path::Path;

use pep440_rs::VersionSpecifiers;
use serde::{Deserialize, Serialize};

use crate::decide::mapping::Candidate;
use crate::input::requirements::Requirement;

pub use crate::input::profile::Prefer;

/// What `apt-cache policy` says about one package (see [`crate::target::apt_query::policy`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyEntry {
    pub installed: Option<String>,
    pub candidate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    Apt,
    Venv,
    BreakSystemPackages,
    Unresolved,
}

impl Choice {
    pub fn label(self) -> &'static str {
        match self {
            Choice::Apt => "apt",
            Choice::Venv => "venv",
            Choice::BreakSystemPackages => "break-system-packages",
            Choice::Unresolved => "unresolved",
        }
    }
}

/// `venv`: a requirement of the venv; `system`: needed by the system interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Venv,
    System,
}

/// The OS package apt would install for a distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsCandidate {
    pub package: String,
    /// apt's candidate version (Debian syntax).
    pub version: String,
    /// The same as PEP 440, when it converts.
    pub pep440: Option<String>,
    /// Which mapping source proposed the package.
    pub source: String,
    /// The version installed now, if any.
    pub installed: Option<String>,
}

/// What apt said about a distribution's candidate packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsLookup {
    pub candidate: Option<OsCandidate>,
    /// Every package looked at, with what apt said (`python3-foo (convention): unknown to apt`).
    pub looked_at: Vec<String>,
    /// Why the version could not be compared, if it could not.
    pub unconvertible: Option<String>,
}

/// Confirm `candidates` against apt's answers: the first one apt can install wins.
pub fn lookup(
    candidates: &[Candidate],
    policy: &BTreeMap<String, PolicyEntry>,
    lists: bool,
) -> OsLookup {
    let mut out = OsLookup::default();
    if candidates.is_empty() {
        out.looked_at
            .push("no OS package (the profile maps it to none)".into());
        return out;
    }
    for c in candidates {
        let said = match policy.get(&c.package) {
            None if !lists => "apt has no package lists".to_string(),
            None => "unknown to apt".to_string(),
            Some(PolicyEntry {
                candidate: None, ..
            }) => "no installation candidate".to_string(),
            Some(PolicyEntry {
                candidate: Some(v),
                installed,
            }) => {
                if out.candidate.is_none() {
                    let pep440 = crate::decide::debver::to_pep440(v);
                    if let Err(e) = &pep440 {
                        out.unconvertible = Some(e.to_string());
                    }
                    out.candidate = Some(OsCandidate {
                        package: c.package.clone(),
                        version: v.clone(),
                        pep440: pep440.ok().map(|p| p.to_string()),
                        source: c.source.clone(),
                        installed: installed.clone(),
                    });
                }
                format!("candidate {v}")
            }
        };
        out.looked_at
            .push(format!("{} ({}): {said}", c.package, c.source));
    }
    out
}

/// One decision, as `plan` prints it and the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub scope: Scope,
    pub name: String,
    pub specifier: String,
    /// Line in the requirements file (venv scope) or None (system entries).
    pub line: Option<usize>,
    pub os_candidate: Option<OsCandidate>,
    pub looked_at: Vec<String>,
    pub decision: Choice,
    pub reason: String,
    /// The version that will serve it and where that version comes from
    /// (set by [`Decision::settle`] once the decision is final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ServedVersion>,
}

/// The version a decision installs: apt's candidate, or the lock's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedVersion {
    pub value: String,
    /// `apt` (the OS candidate, as PEP 440), `lock` (the pin) or `pip`
    /// (a range pip resolves when the venv is built).
    pub from: String,
}

impl Decision {
    /// Record which version serves it, and from where, for the decision as
    /// it stands.
    pub fn settle(&mut self) {
        let pin = self
            .specifier
            .strip_prefix("==")
            .filter(|v| !v.contains([',', '*']));
        self.version = match self.decision {
            Choice::Apt => self.os_candidate.as_ref().and_then(|c| {
                Some(ServedVersion {
                    value: c.pep440.clone()?,
                    from: "apt".into(),
                })
            }),
            Choice::Venv | Choice::BreakSystemPackages => Some(match pin {
                Some(v) => ServedVersion {
                    value: v.to_string(),
                    from: "lock".into(),
                },
                None => ServedVersion {
                    value: if self.specifier.is_empty() {
                        "*".into()
                    } else {
                        self.specifier.clone()
                    },
                    from: "pip".into(),
                },
            }),
            Choice::Unresolved => None,
        };
    }

    pub fn scope_label(&self) -> &'static str {
        match self.scope {
            Scope::Venv => "requirement",
            Scope::System => "system",
        }
    }
}

/// Whether the OS candidate satisfies `spec`; Err carries the reason it does not.
fn os_satisfies(lookup: &OsLookup, spec: &VersionSpecifiers) -> Result<String, String> {
    let Some(c) = &lookup.candidate else {
        return Err(if lookup.looked_at.is_empty() {
            "no OS package".to_string()
        } else {
            format!("no OS package (looked at {})", lookup.looked_at.join("; "))
        });
    };
    let Some(pep440) = &c.pep440 else {
        return Err(lookup
            .unconvertible
            .clone()
            .unwrap_or_else(|| format!("{} {} has no PEP 440 version", c.package, c.version)));
    };
    let version: pep440_rs::Version = pep440
        .parse()
        .map_err(|_| format!("{pep440} is not PEP 440"))?;
    let shown = if spec.is_empty() {
        "any version".to_string()
    } else {
        format!("`{spec}`")
    };
    if spec.contains(&version) {
        Ok(format!(
            "{} {} ({pep440}) satisfies {shown}",
            c.package, c.version
        ))
    } else {
        Err(format!(
            "{} {} ({pep440}) does not satisfy {shown}",
            c.package, c.version
        ))
    }
}

/// Decide a requirement of the venv.
pub fn decide_requirement(
    req: &Requirement,
    prefer: Prefer,
    lookup: Option<&OsLookup>,
    require_hashes: bool,
    file: &Path,
) -> Decision {
    let base = |decision: Choice, reason: String| Decision {
        scope: Scope::Venv,
        name: req.name.to_string(),
        specifier: req.specifier.to_string(),
        line: Some(req.line),
        os_candidate: lookup.and_then(|l| l.candidate.clone()),
        looked_at: lookup.map(|l| l.looked_at.clone()).unwrap_or_default(),
        decision,
        reason,
        version: None,
    };
    let venv_reason = match (prefer, lookup) {
        (Prefer::Venv, _) => "the profile prefers the venv (reproducible pins)".to_string(),
        (Prefer::Os, _) if !req.marker.is_true() => {
            "it has an environment marker; pip evaluates it in the venv".to_string()
        }
        (Prefer::Os, None) => "apt was not asked".to_string(),
        (Prefer::Os, Some(l)) => match os_satisfies(l, &req.specifier) {
            Ok(why) => return base(Choice::Apt, why),
            Err(why) => format!("{why}; the venv serves it"),
        },
    };
    if require_hashes {
        if let Err(e) = req.check_locked(file) {
            let msg = match e {
                crate::input::requirements::RequirementsError::Line { message, .. } => message,
                other => other.to_string(),
            };
            return base(
                Choice::Unresolved,
                format!(
                    "{venv_reason}, but {msg}: the venv installs only pinned, hashed requirements"
                ),
            );
        }
    }
    base(Choice::Venv, venv_reason)
}

/// Decide a distribution the *system* interpreter needs.
pub fn decide_system(
    name: &str,
    spec: &VersionSpecifiers,
    lookup: &OsLookup,
    break_system_packages: bool,
    locked: Option<&Requirement>,
    externally_managed: bool,
) -> Decision {
    let base = |decision: Choice, reason: String| Decision {
        scope: Scope::System,
        name: name.to_string(),
        specifier: spec.to_string(),
        line: None,
        os_candidate: lookup.candidate.clone(),
        looked_at: lookup.looked_at.clone(),
        decision,
        reason,
        version: None,
    };
    let why_not = match os_satisfies(lookup, spec) {
        Ok(why) => return base(Choice::Apt, why),
        Err(why) => why,
    };
    if !break_system_packages {
        return base(
            Choice::Unresolved,
            format!("{why_not}; system packages come only from apt unless `break_system_packages = true`"),
        );
    }
    let Some(req) = locked.filter(|r| r.version.is_some() && !r.hashes.is_empty()) else {
        return base(
            Choice::Unresolved,
            format!("{why_not}; `--break-system-packages` installs only what the lock pins with hashes, and the lock has no such line for it"),
        );
    };
    let pinned = req
        .version
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if !spec.is_empty() && !req.version.as_ref().is_some_and(|v| spec.contains(v)) {
        return base(
            Choice::Unresolved,
            format!("{why_not}; the lock pins {pinned}, which does not satisfy `{spec}`"),
        );
    }
    let flag = if externally_managed {
        "pip --break-system-packages installs the locked"
    } else {
        "the interpreter is not externally managed (no EXTERNALLY-MANAGED marker), so plain pip installs the locked"
    };
    base(
        Choice::BreakSystemPackages,
        format!("{why_not}; {flag} {name}=={pinned} (audited last resort)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const H: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

    fn req(text: &str) -> Requirement {
        crate::input::requirements::parse(Path::new("r.txt"), text)
            .unwrap()
            .items
            .remove(0)
    }

    fn policy(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, PolicyEntry> {
        entries
            .iter()
            .map(|(p, c)| {
                (
                    p.to_string(),
                    PolicyEntry {
                        installed: None,
                        candidate: c.map(str::to_string),
                    },
                )
            })
            .collect()
    }

    fn cand(pkgs: &[&str]) -> Vec<Candidate> {
        pkgs.iter()
            .map(|p| Candidate {
                package: p.to_string(),
                source: "convention".into(),
            })
            .collect()
    }

    #[test]
    fn lookup_takes_the_first_installable_candidate() {
        let l = lookup(
            &cand(&["python3-a", "python3-b", "python3-c"]),
            &policy(&[("python3-b", None), ("python3-c", Some("1:2.0-1"))]),
            true,
        );
        let c = l.candidate.unwrap();
        assert_eq!(
            (c.package.as_str(), c.pep440.as_deref()),
            ("python3-c", Some("2.0"))
        );
        assert_eq!(
            l.looked_at,
            [
                "python3-a (convention): unknown to apt",
                "python3-b (convention): no installation candidate",
                "python3-c (convention): candidate 1:2.0-1"
            ]
        );
    }

    #[test]
    fn decision_table_for_requirements() {
        let os = lookup(
            &cand(&["python3-lxml"]),
            &policy(&[("python3-lxml", Some("4.9.2-1+b1"))]),
            true,
        );
        let none = lookup(&cand(&["python3-nope"]), &policy(&[]), true);
        let pinned = format!("lxml==5.3.0 --hash=sha256:{H}\n");
        let cases: [(&str, Prefer, &OsLookup, bool, Choice); 8] = [
            ("lxml>=4.9\n", Prefer::Os, &os, true, Choice::Apt),
            ("lxml\n", Prefer::Os, &os, true, Choice::Apt),
            ("lxml>=5\n", Prefer::Os, &os, true, Choice::Unresolved),
            ("lxml>=5\n", Prefer::Os, &os, false, Choice::Venv),
            (&pinned, Prefer::Os, &os, true, Choice::Venv),
            (&pinned, Prefer::Venv, &os, true, Choice::Venv),
            ("lxml>=4.9\n", Prefer::Venv, &os, true, Choice::Unresolved),
            ("lxml>=4.9\n", Prefer::Os, &none, true, Choice::Unresolved),
        ];
        for (text, prefer, l, hashes, want) in cases {
            let d = decide_requirement(&req(text), prefer, Some(l), hashes, Path::new("r.txt"));
            assert_eq!(
                d.decision, want,
                "{text} {prefer:?} hashes={hashes}: {}",
                d.reason
            );
        }
        let d = decide_requirement(
            &req(&pinned),
            Prefer::Os,
            Some(&os),
            true,
            Path::new("r.txt"),
        );
        assert!(
            d.reason.contains("does not satisfy `==5.3.0`"),
            "{}",
            d.reason
        );
        let d = decide_requirement(
            &req("lxml ; python_version < '3.13'\n"),
            Prefer::Os,
            Some(&os),
            false,
            Path::new("r.txt"),
        );
        assert_eq!(d.decision, Choice::Venv, "markers are left to pip");
    }

    #[test]
    fn decision_table_for_system_entries() {
        let os = lookup(
            &cand(&["python3-openssl"]),
            &policy(&[("python3-openssl", Some("23.0.0-1"))]),
            true,
        );
        let none = lookup(&cand(&["python3-cowsay"]), &policy(&[]), true);
        let locked = req(&format!("cowsay==6.1 --hash=sha256:{H}\n"));
        let any = VersionSpecifiers::empty();
        let ge7 = VersionSpecifiers::from_str(">=7").unwrap();
        assert_eq!(
            decide_system("pyopenssl", &any, &os, false, None, true).decision,
            Choice::Apt
        );
        let d = decide_system("cowsay", &any, &none, false, Some(&locked), true);
        assert_eq!(d.decision, Choice::Unresolved);
        assert!(
            d.reason.contains("break_system_packages = true"),
            "{}",
            d.reason
        );
        let d = decide_system("cowsay", &any, &none, true, Some(&locked), true);
        assert_eq!(d.decision, Choice::BreakSystemPackages, "{}", d.reason);
        assert!(d.reason.contains("--break-system-packages"));
        let d = decide_system("cowsay", &any, &none, true, Some(&locked), false);
        assert!(d.reason.contains("not externally managed"), "{}", d.reason);
        assert_eq!(
            decide_system("cowsay", &any, &none, true, None, true).decision,
            Choice::Unresolved
        );
        assert_eq!(
            decide_system("cowsay", &ge7, &none, true, Some(&locked), true).decision,
            Choice::Unresolved
        );
    }
}
