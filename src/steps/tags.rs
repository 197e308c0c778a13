//! Wheel file names and the tags a target interpreter accepts.
//!
//! A wheel's name says which interpreters can use it
//! (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, PEP 427,
//! with dotted tag sets, PEP 425). The native installer picks, for each
//! locked requirement, the wheelhouse file with the *most specific* tag the
//! target's CPython accepts, in the order pip and `packaging.tags` use:
//! CPython ABI first, then `abi3` of this and older minors, then `none`;
//! platforms from the newest manylinux glibc the target has down to the
//! oldest, then plain `linux_<arch>`, then `any`. Pure functions; the facts
//! come from [`crate::steps::venv::Probe`].

use pep440_rs::Version;
use pep508_rs::PackageName;

/// A parsed wheel file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub file: String,
    pub name: PackageName,
    pub version: Version,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelName {
    /// `None` for anything that is not a well-formed wheel name.
    pub fn parse(file: &str) -> Option<WheelName> {
        let stem = file.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, py, abi, plat) = match parts.as_slice() {
            [n, v, py, abi, plat] => (*n, *v, *py, *abi, *plat),
            [n, v, build, py, abi, plat] if build.starts_with(|c: char| c.is_ascii_digit()) => {
                (*n, *v, *py, *abi, *plat)
            }
            _ => return None,
        };
        if !crate::input::requirements::valid_dist_name(name) {
            return None;
        }
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Some(WheelName {
            file: file.to_string(),
            name: PackageName::new(name.to_string()).ok()?,
            version: version.parse().ok()?,
            python: split(py),
            abi: split(abi),
            platform: split(plat),
        })
    }

    /// Every `python-abi-platform` triple the name stands for.
    pub fn tags(&self) -> impl Iterator<Item = String> + '_ {
        self.python.iter().flat_map(move |p| {
            self.abi
                .iter()
                .flat_map(move |a| self.platform.iter().map(move |pl| format!("{p}-{a}-{pl}")))
        })
    }
}

/// The interpreter facts that decide which wheels fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interp {
    pub major: u32,
    pub minor: u32,
    /// `platform.machine()`: `x86_64`, `aarch64`, ...
    pub machine: String,
    /// glibc `(major, minor)`; `None` when not glibc (then no manylinux).
    pub glibc: Option<(u32, u32)>,
}

/// Tags the interpreter accepts, most preferred first.
pub fn supported(i: &Interp) -> Vec<String> {
    let cp = format!("cp{}{}", i.major, i.minor);
    tags_for(i.major, i.minor, &cp, &platforms(i))
}

/// Tags a target described by hand accepts (`venvbake fetch --python 3.X
/// --abi TAG --platform TAG...`): `abi` and `abi3`/`none` on the given
/// platforms (`any` among them admits pure wheels), in the same order.
pub fn supported_for(major: u32, minor: u32, abi: &str, platforms: &[String]) -> Vec<String> {
    let concrete: Vec<String> = platforms.iter().filter(|p| *p != "any").cloned().collect();
    let mut out = tags_for(major, minor, abi, &concrete);
    if !platforms.iter().any(|p| p == "any") {
        out.retain(|t| !t.ends_with("-any"));
    }
    out
}

/// The tag order of [`supported`] for CPython `major.minor` with `abi` as
/// its own ABI, on `platforms` (most specific first), then `any`.
fn tags_for(major: u32, minor: u32, abi: &str, platforms: &[String]) -> Vec<String> {
    let cp = format!("cp{major}{minor}");
    let mut out = Vec::new();
    let push_all = |py: &str, abi: &str, out: &mut Vec<String>| {
        for p in platforms {
            out.push(format!("{py}-{abi}-{p}"));
        }
    };
    push_all(&cp, abi, &mut out);
    push_all(&cp, "abi3", &mut out);
    push_all(&cp, "none", &mut out);
    // abi3 wheels built for older minors (abi3 exists from 3.2 on).
    for m in (2..minor).rev() {
        push_all(&format!("cp{major}{m}"), "abi3", &mut out);
    }
    let mut generic = vec![format!("py{major}{minor}"), format!("py{major}")];
    generic.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
    for py in &generic {
        push_all(py, "none", &mut out);
    }
    out.push(format!("{cp}-none-any"));
    for py in &generic {
        out.push(format!("{py}-none-any"));
    }
    out
}

/// Platform tags, most specific first.
fn platforms(i: &Interp) -> Vec<String> {
    let arch = i.machine.as_str();
    let mut out = Vec::new();
    if let Some((3.., _)) = i.glibc {
        // Not a glibc 2.x: nothing known to match.
    } else if let Some((2, gmin)) = i.glibc {
        let oldest = match arch {
            "x86_64" | "i686" => 5,
            _ => 17,
        };
        for m in (oldest..=gmin).rev() {
            out.push(format!("manylinux_2_{m}_{arch}"));
            let legacy = match m {
                17 => Some("manylinux2014"),
                12 => Some("manylinux2010"),
                5 => Some("manylinux1"),
                _ => None,
            };
            if let Some(l) = legacy {
                out.push(format!("{l}_{arch}"));
            }
        }
    }
    out.push(format!("linux_{arch}"));
    out
}

/// The rank of the wheel's best tag in `supported` (lower is better), or
/// `None` when the interpreter can use none of its tags.
pub fn rank(wheel: &WheelName, supported: &[String]) -> Option<usize> {
    wheel
        .tags()
        .filter_map(|t| supported.iter().position(|s| *s == t))
        .min()
}

/// `"glibc 2.36"` (from `os.confstr("CS_GNU_LIBC_VERSION")`) as `(2, 36)`.
pub fn parse_glibc(s: &str) -> Option<(u32, u32)> {
    let v = s.strip_prefix("glibc ")?;
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bookworm() -> Interp {
        Interp {
            major: 3,
            minor: 11,
            machine: "x86_64".into(),
            glibc: Some((2, 36)),
        }
    }

    #[test]
    fn names_parse_with_and_without_build_tags() {
        let w = WheelName::parse(
            "lxml-6.0.2-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name.as_ref(), "lxml");
        assert_eq!(w.version.to_string(), "6.0.2");
        assert_eq!(w.platform.len(), 2);
        let b = WheelName::parse("Foo_Bar-1.0-1-py3-none-any.whl").unwrap();
        assert_eq!(b.name.as_ref(), "foo-bar");
        for bad in [
            "x.tar.gz",
            "a-1.0.whl",
            "a-1.0-py3-none.whl",
            "a-1.0-x-py3-none-any.whl",
            "-1.0-py3-none-any.whl",
            "a-not a version-py3-none-any.whl",
        ] {
            assert_eq!(WheelName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn more_specific_wheels_rank_first() {
        let s = supported(&bookworm());
        let r = |f: &str| rank(&WheelName::parse(f).unwrap(), &s);
        let native = r("m-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl").unwrap();
        let abi3 = r("m-1-cp38-abi3-manylinux_2_28_x86_64.whl").unwrap();
        let pure = r("m-1-py3-none-any.whl").unwrap();
        assert!(native < abi3 && abi3 < pure, "{native} {abi3} {pure}");
        // A newer glibc than the target's, another Python, another arch: no.
        for no in [
            "m-1-cp311-cp311-manylinux_2_39_x86_64.whl",
            "m-1-cp313-cp313-manylinux_2_17_x86_64.whl",
            "m-1-cp311-cp311-manylinux_2_17_aarch64.whl",
            "m-1-cp311-cp311-musllinux_1_2_x86_64.whl",
            "m-1-py2-none-any.whl",
        ] {
            assert_eq!(r(no), None, "{no}");
        }
        assert!(r("m-1-cp311-cp311-linux_x86_64.whl").is_some());
        assert!(r("m-1-py311-none-any.whl").unwrap() < pure);
    }

    #[test]
    fn glibc_versions_parse() {
        assert_eq!(parse_glibc("glibc 2.36"), Some((2, 36)));
        assert_eq!(parse_glibc("glibc 2.41"), Some((2, 41)));
        assert_eq!(parse_glibc("musl"), None);
        assert_eq!(parse_glibc(""), None);
    }
}
