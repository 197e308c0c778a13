//! Debian package versions as PEP 440 versions.
//!
//! To check an OS package against a requirement's specifier, its Debian
//! version (`[epoch:]upstream[-revision]`) is reduced to the upstream
//! version a PyPI release would carry: the epoch and the Debian revision go
//! (they are packaging artefacts), repack markers (`+dfsg`, `+ds`,
//! `+repack`) and binNMU/stable-update suffixes (`+b1`, `+deb12u1`) go,
//! `X+reallyY` means `Y`, and `~` (sorts before) introduces a pre-release
//! (`1.2~rc1` is `1.2rc1`). What cannot be read as PEP 440 after that is
//! reported, never guessed.

use std::str::FromStr;

use pep440_rs::Version;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Debian version `{debian}` has no PEP 440 equivalent: {reason}")]
pub struct Unconvertible {
    pub debian: String,
    pub reason: String,
}

/// Convert a Debian version to the PEP 440 version of the upstream release.
pub fn to_pep440(debian: &str) -> Result<Version, Unconvertible> {
    let fail = |reason: &str| Unconvertible {
        debian: debian.to_string(),
        reason: reason.to_string(),
    };
    let mut v = debian.trim();
    if v.is_empty() {
        return Err(fail("empty"));
    }
    // Epoch: digits before the first colon.
    if let Some((epoch, rest)) = v.split_once(':') {
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("malformed epoch"));
        }
        v = rest;
    }
    // Debian revision: after the last hyphen.
    if let Some((upstream, _revision)) = v.rsplit_once('-') {
        v = upstream;
    }
    let mut up = v.to_string();
    // `2.0+really1.9`: the package really holds 1.9.
    if let Some(at) = up.rfind("+really") {
        up = up[at + "+really".len()..].to_string();
    }
    // Repack markers and everything after them.
    for marker in [
        "+dfsg", "~dfsg", ".dfsg", "+ds", "~ds", "+repack", "~repack", "+nmu",
    ] {
        if let Some(at) = up.find(marker) {
            up.truncate(at);
        }
    }
    // Native-package binNMUs and stable updates: `+b1`, `+deb12u1`, `+ubuntu0.1`.
    while let Some(at) = up.rfind('+') {
        let tail = &up[at + 1..];
        let binnmu = tail
            .strip_prefix('b')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let update = tail.starts_with("deb") || tail.starts_with("ubuntu");
        if binnmu || update {
            up.truncate(at);
        } else {
            break;
        }
    }
    if up.is_empty() {
        return Err(fail("no upstream version left"));
    }
    // A snapshot *before* a release cannot be placed in PEP 440 order.
    for snap in ["~git", "~svn", "~hg", "~bzr", "~cvs", "~snapshot"] {
        if up.contains(snap) {
            return Err(fail("a VCS snapshot before a release"));
        }
    }
    // `~` sorts before: a pre-release or dev release (`1.2~rc1`, `1.0~dev3`).
    let candidate = up.replace('~', "");
    Version::from_str(&candidate).map_err(|e| fail(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conv(d: &str) -> String {
        to_pep440(d)
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("ERR {}", e.reason))
    }

    #[test]
    fn real_debian_versions() {
        let table = [
            ("1:3.12.0-1", "3.12.0"),
            ("4.9.2-1+b1", "4.9.2"),
            ("23.0.0-1", "23.0.0"),
            ("2.0.1+dfsg-2", "2.0.1"),
            ("1.2~rc1-3", "1.2rc1"),
            ("3.11.2-6+deb12u8", "3.11.2"),
            ("2.28.1+dfsg-1", "2.28.1"),
            ("1.26.12-1+deb12u1", "1.26.12"),
            ("0.9.3+really0.9.2-1", "0.9.2"),
            ("2:1.0-1", "1.0"),
            ("6.0.1-2", "6.0.1"),
            ("38.0.4-3~deb12u1", "38.0.4"),
            ("5.3.0-1ubuntu1", "5.3.0"),
            ("1.0~b2-1", "1.0b2"),
            ("1.0~alpha1-1", "1.0a1"),
            ("2.0~dev3-1", "2.0.dev3"),
            ("4.12.2+ds-1", "4.12.2"),
            ("0.10.0+ds1-3", "0.10.0"),
            ("1.16.0-4", "1.16.0"),
            ("20220614", "20220614"),
            ("1.5+b2", "1.5"),
            ("2.4.1+git20230101-1", "2.4.1+git20230101"),
            ("3.1.2-1.1", "3.1.2"),
        ];
        for (deb, want) in table {
            assert_eq!(conv(deb), want, "{deb}");
        }
    }

    #[test]
    fn unconvertible_versions_are_reported() {
        for deb in [
            "",
            "x:1.0-1",
            "1.0~git20200101-1",
            "abc-1",
            "1.0+b-1+really-1",
            ":1",
        ] {
            assert!(to_pep440(deb).is_err(), "{deb} -> {}", conv(deb));
        }
    }

    proptest! {
        #[test]
        fn decorations_never_change_the_upstream_release(
            parts in proptest::collection::vec(0u32..200, 1..4),
            epoch in proptest::option::of(1u32..5),
            repack in proptest::sample::select(vec!["", "+dfsg", "+ds1", "+repack"]),
            rev in proptest::option::of(1u32..9),
            suffix in proptest::sample::select(vec!["", "+b1", "+deb12u3", "ubuntu2"]),
        ) {
            let upstream = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let mut deb = String::new();
            if let Some(e) = epoch { deb.push_str(&format!("{e}:")); }
            deb.push_str(&upstream);
            deb.push_str(repack);
            if let Some(r) = rev { deb.push_str(&format!("-{r}{suffix}")); }
            let got = to_pep440(&deb).unwrap();
            prop_assert_eq!(got, Version::from_str(&upstream).unwrap());
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = to_pep440(&s);
        }

        #[test]
        fn prereleases_sort_before_the_release(
            major in 0u32..50, minor in 0u32..50, n in 1u32..9,
            kind in proptest::sample::select(vec!["a", "b", "rc"]),
        ) {
            let pre = to_pep440(&format!("{major}.{minor}~{kind}{n}-1")).unwrap();
            let rel = to_pep440(&format!("{major}.{minor}-1")).unwrap();
            prop_assert!(pre < rel);
        }
    }
}
