//! PyPI distribution name → Debian package: which OS packages could serve a
//! Python requirement.
//!
//! Sources, in order: the profile's own `[python.map]`; a small built-in
//! alias table for PyPI-only variants of Debian-packaged projects; Debian's
//! own table (dh-python's `dist/cpython3_fallback`, the target's copy when it
//! has one, else the copy embedded in venvbake); then the `python3-<name>`
//! convention. Names are compared after PEP 503 normalisation, which also
//! folds dh-python's key style (`python_gitlab`, `pyOpenSSL`, `PyYAML`).
//! This module only proposes candidates; apt on the target confirms them
//! (see [`crate::target::apt_query::policy`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;

/// dh-python's table, as shipped in Debian's dh-python 6.20250414 (trixie).
const EMBEDDED_FALLBACK: &str = include_str!("../../data/cpython3_fallback");

/// Where dh-python keeps the table on a Debian system.
pub const TARGET_FALLBACK: &str = "/usr/share/dh-python/dist/cpython3_fallback";

/// PyPI-only variants of projects Debian packages under the project's name.
/// Each maps to the project whose Debian package provides the same modules.
const ALIASES: [(&str, &str, &str); 8] = [
    // psycopg2's self-contained binary wheels; Debian builds psycopg2 from source.
    ("psycopg2-binary", "psycopg2", "binary wheel of psycopg2"),
    // The same for psycopg 3's optional C speedups.
    (
        "psycopg-binary",
        "psycopg-c",
        "binary wheel of psycopg's C module",
    ),
    // OpenCV's four PyPI builds all provide `cv2`; Debian ships one: python3-opencv.
    ("opencv-python", "opencv", "PyPI build of OpenCV's bindings"),
    (
        "opencv-python-headless",
        "opencv",
        "PyPI build of OpenCV's bindings",
    ),
    (
        "opencv-contrib-python",
        "opencv",
        "PyPI build of OpenCV's bindings",
    ),
    (
        "opencv-contrib-python-headless",
        "opencv",
        "PyPI build of OpenCV's bindings",
    ),
    // A drop-in fork that installs the `PIL` package.
    ("pillow-simd", "pillow", "drop-in fork of Pillow"),
    // The old name of the `sklearn` meta-package.
    (
        "sklearn",
        "scikit-learn",
        "deprecated alias of scikit-learn",
    ),
];

pub use crate::input::requirements::normalize;

/// Parsed `cpython3_fallback`: normalised distribution name -> package.
#[derive(Debug, Clone, Default)]
pub struct Fallback {
    entries: BTreeMap<String, String>,
    /// `target` or `embedded`.
    pub origin: &'static str,
}

impl Fallback {
    pub fn parse(text: &str, origin: &'static str) -> Self {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            if let (Some(dist), Some(pkg)) = (fields.next(), fields.next()) {
                entries
                    .entry(normalize(dist))
                    .or_insert_with(|| pkg.to_string());
            }
        }
        Fallback { entries, origin }
    }

    /// The table embedded in venvbake (parsed once).
    pub fn embedded() -> &'static Fallback {
        static TABLE: OnceLock<Fallback> = OnceLock::new();
        TABLE.get_or_init(|| Fallback::parse(EMBEDDED_FALLBACK, "embedded"))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(&normalize(name)).map(String::as_str)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One package that might serve a distribution, and why it was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub package: String,
    /// `profile map`, `alias <project>`, `dh-python (target)`, `dh-python (embedded)`, `convention`.
    pub source: String,
}

/// The candidate packages for `name`, best first, without duplicates.
/// An empty mapping in the profile (`"x" = ""`) means "never an OS package".
pub fn candidates(
    name: &str,
    overrides: &BTreeMap<String, String>,
    fallback: &Fallback,
) -> Vec<Candidate> {
    let key = normalize(name);
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |package: String, source: String| {
        if !package.is_empty() && !out.iter().any(|c| c.package == package) {
            out.push(Candidate { package, source });
        }
    };
    if let Some(pkg) = overrides
        .iter()
        .find(|(k, _)| normalize(k) == key)
        .map(|(_, v)| v)
    {
        // The profile's word is final: no guessing around it.
        push(pkg.clone(), "profile map".into());
        return out;
    }
    let project = ALIASES
        .iter()
        .find(|(alias, _, _)| *alias == key)
        .map(|(_, project, _)| normalize(project));
    let dh_source = format!("dh-python ({})", fallback.origin);
    if let Some(project) = &project {
        if let Some(pkg) = fallback.get(project) {
            push(pkg.to_string(), format!("alias of {project}, {dh_source}"));
        }
        push(
            format!("python3-{project}"),
            format!("alias of {project}, convention"),
        );
    }
    if let Some(pkg) = fallback.get(&key) {
        push(pkg.to_string(), dh_source);
    }
    push(format!("python3-{key}"), "convention".into());
    if let Some(stripped) = key.strip_prefix("python-") {
        push(format!("python3-{stripped}"), "convention".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_pep503_and_dh_python_keys() {
        for (a, b) in [
            ("python_gitlab", "python-gitlab"),
            ("pyOpenSSL", "pyopenssl"),
            ("PyYAML", "pyyaml"),
            ("Mastodon.py", "mastodon-py"),
            ("zope.interface", "zope-interface"),
            ("a__b--c", "a-b-c"),
            ("  Six ", "six"),
        ] {
            assert_eq!(normalize(a), b, "{a}");
        }
    }

    #[test]
    fn embedded_table_knows_the_usual_suspects() {
        let fb = Fallback::embedded();
        assert!(fb.len() > 5000, "{}", fb.len());
        assert_eq!(fb.get("pyopenssl"), Some("python3-openssl"));
        assert_eq!(fb.get("PyYAML"), Some("python3-yaml"));
        assert_eq!(fb.get("python-gitlab"), Some("python3-gitlab"));
        assert_eq!(fb.get("python_gitlab"), Some("python3-gitlab"));
        assert_eq!(fb.get("ansible-core"), Some("ansible-core"));
        assert_eq!(fb.get("no-such-dist-xyz"), None);
    }

    fn pkgs(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.package.as_str()).collect()
    }

    #[test]
    fn lookup_order_across_sources() {
        let fb = Fallback::parse(
            "pyOpenSSL python3-openssl\npsycopg2 python3-psycopg2\nargparse python3 (>= 3.2)\n",
            "target",
        );
        let none = BTreeMap::new();
        // dh-python first, then the convention.
        let c = candidates("pyOpenSSL", &none, &fb);
        assert_eq!(pkgs(&c), ["python3-openssl", "python3-pyopenssl"]);
        assert_eq!(c[0].source, "dh-python (target)");
        // The alias leads to the project's package.
        let c = candidates("psycopg2-binary", &none, &fb);
        assert_eq!(pkgs(&c), ["python3-psycopg2", "python3-psycopg2-binary"]);
        assert!(c[0].source.starts_with("alias of psycopg2"));
        // Unknown names fall back to the convention, with the python- prefix dropped too.
        let c = candidates("python-foo", &none, &fb);
        assert_eq!(pkgs(&c), ["python3-python-foo", "python3-foo"]);
        // Extra fields in the table are ignored.
        assert_eq!(pkgs(&candidates("argparse", &none, &fb))[0], "python3");
    }

    #[test]
    fn profile_map_is_final() {
        let fb = Fallback::embedded();
        let mut map = BTreeMap::new();
        map.insert(
            "Psycopg2_Binary".to_string(),
            "python3-psycopg2".to_string(),
        );
        map.insert("cryptography".to_string(), String::new());
        let c = candidates("psycopg2-binary", &map, fb);
        assert_eq!(pkgs(&c), ["python3-psycopg2"]);
        assert_eq!(c[0].source, "profile map");
        assert!(candidates("cryptography", &map, fb).is_empty());
    }
}
