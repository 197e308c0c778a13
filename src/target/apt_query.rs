//! What apt in the target says about packages, asked without changing
//! anything: `apt-cache policy` (installed and candidate versions), with no
//! cache written. Part of observing the target; the installs are in
//! `crate::steps::apt`.

use std::path::Path;

use crate::decide::PolicyEntry;
use crate::error::{Error, Phase, Result};
use crate::sys::exec::{self, Cmd};
use crate::target::Target;

/// `apt-cache policy` that only reads: an empty cache file name makes apt
/// build its package cache in memory instead of writing `pkgcache.bin` and
/// `srcpkgcache.bin` into the target (`plan` must change nothing).
pub fn policy_cmd(base: &[(String, String)], chroot: Option<&Path>, packages: &[String]) -> Cmd {
    Cmd::new("apt-cache", base)
        .chroot(chroot)
        .args([
            "-o",
            "Dir::Cache::pkgcache=",
            "-o",
            "Dir::Cache::srcpkgcache=",
            "policy",
            "--",
        ])
        .args(packages.iter().cloned())
}

/// Parse `apt-cache policy` output; packages apt does not know are absent.
pub fn parse_policy(text: &str) -> std::collections::BTreeMap<String, PolicyEntry> {
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            current = line
                .strip_suffix(':')
                .filter(|n| !n.contains(' '))
                .map(str::to_string);
            if let Some(n) = &current {
                out.insert(n.clone(), PolicyEntry::default());
            }
            continue;
        }
        let Some(entry) = current.as_ref().and_then(|n| out.get_mut(n)) else {
            continue;
        };
        let value = |v: &str| {
            let v = v.trim();
            (v != "(none)" && !v.is_empty()).then(|| v.to_string())
        };
        if let Some(v) = line.trim_start().strip_prefix("Installed:") {
            entry.installed = value(v);
        } else if let Some(v) = line.trim_start().strip_prefix("Candidate:") {
            entry.candidate = value(v);
        }
    }
    out
}

/// Ask apt in the target about `packages` (read-only).
pub fn policy(
    target: &Target,
    base: &[(String, String)],
    packages: &[String],
) -> Result<std::collections::BTreeMap<String, PolicyEntry>> {
    if packages.is_empty() {
        return Ok(Default::default());
    }
    let cmd = policy_cmd(base, target.chroot(), packages);
    let out = exec::run(&cmd, usize::MAX, &mut |_| {}).map_err(|e| Error::Command {
        phase: Phase::Apt,
        what: "asking apt about OS packages failed".into(),
        hint: ("the target's apt cache may be broken; try `apt-get update` in it".into()),
        source: Box::new(e),
    })?;
    Ok(parse_policy(&out.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_output_is_parsed() {
        let text = "python3-lxml:\n  Installed: (none)\n  Candidate: 4.9.2-1+b1\n  Version table:\n     4.9.2-1+b1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\npython3-six:\n  Installed: 1.16.0-4\n  Candidate: 1.16.0-4\nN: Unable to locate package python3-nope\nvirtual:\n  Installed: (none)\n  Candidate: (none)\n";
        let m = parse_policy(text);
        assert_eq!(m["python3-lxml"].candidate.as_deref(), Some("4.9.2-1+b1"));
        assert_eq!(m["python3-lxml"].installed, None);
        assert_eq!(m["python3-six"].installed.as_deref(), Some("1.16.0-4"));
        assert_eq!(m["virtual"].candidate, None);
        assert!(!m.contains_key("python3-nope"));
        assert_eq!(m.len(), 3);
    }
}
