//! Reading installed distributions from a site-packages directory, without
//! running Python: names and versions from `METADATA` (`.dist-info`) or
//! `PKG-INFO` (`.egg-info`, which older Debian packages still ship), and the
//! top-level importable names from `top_level.txt` or `RECORD`, and the
//! `Requires-Dist` lines that [`unmet`] checks as `pip check` does.

use std::collections::BTreeMap;
use std::path::Path;

use pep508_rs::PackageName;

/// One installed distribution, read from its `.dist-info` (or `.egg-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistInfo {
    pub name: String,
    pub normalized: PackageName,
    pub version: String,
    pub top_level: Vec<String>,
    /// `Requires-Dist` lines of a `.dist-info` (PEP 508, markers included).
    pub requires: Vec<String>,
}

/// Every distribution in a site-packages directory, by normalised name.
pub fn scan(site: &Path) -> BTreeMap<PackageName, DistInfo> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(site) else {
        return out;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let file_name = e.file_name().to_string_lossy().into_owned();
        let meta = if file_name.ends_with(".dist-info") {
            std::fs::read_to_string(dir.join("METADATA"))
        } else if file_name.ends_with(".egg-info") && dir.is_dir() {
            std::fs::read_to_string(dir.join("PKG-INFO"))
        } else if file_name.ends_with(".egg-info") {
            // A single-file egg-info is the PKG-INFO itself.
            std::fs::read_to_string(&dir)
        } else {
            continue;
        };
        let Ok(meta) = meta else {
            continue;
        };
        let (mut name, mut version, mut requires) = (None, None, Vec::new());
        for line in meta.lines() {
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Name:") {
                name.get_or_insert_with(|| v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version.get_or_insert_with(|| v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Requires-Dist:") {
                requires.push(v.trim().to_string());
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        let Ok(normalized) = PackageName::new(name.clone()) else {
            continue;
        };
        // What the installed files say is importable (RECORD) beats the
        // build tool's `top_level.txt`, which can name modules that were never
        // installed (PyNaCl lists `_sodium`); Debian's egg-infos have no RECORD.
        let from_record = std::fs::read_to_string(dir.join("RECORD"))
            .map(|r| top_level_from_record(&r))
            .unwrap_or_default();
        let top_level = if from_record.is_empty() {
            std::fs::read_to_string(dir.join("top_level.txt"))
                .map(|t| {
                    t.lines()
                        .map(|l| l.trim().replace('/', "."))
                        .filter(|l| is_module_name(l))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            from_record
        };
        // A .dist-info wins over a stale .egg-info of the same distribution.
        if out.contains_key(&normalized) && !file_name.ends_with(".dist-info") {
            continue;
        }
        out.insert(
            normalized.clone(),
            DistInfo {
                name,
                normalized,
                version,
                top_level,
                requires,
            },
        );
    }
    out
}

/// A wheel's own `Requires-Dist` lines, read from its `.dist-info/METADATA`
/// without unpacking it; None when it cannot be read (not a wheel, damaged).
pub fn wheel_requires(wheel: &Path) -> Option<Vec<String>> {
    use std::io::Read as _;
    let f = std::fs::File::open(wheel).ok()?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).ok()?;
    let name = (0..zip.len()).find_map(|i| {
        let n = zip.name_for_index(i)?.ok()?;
        let (dir, file) = n.split_once('/')?;
        (dir.ends_with(".dist-info") && file == "METADATA").then(|| n.to_string())
    })?;
    let mut text = String::new();
    // A METADATA is a few kilobytes; a megabyte is plenty for its headers.
    zip.by_name(&name)
        .ok()?
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(requires_dist(&text))
}

/// The `Requires-Dist` values of a core metadata file (its header part):
/// a wheel's METADATA, or an index's PEP 658 `.metadata`.
pub fn requires_dist(metadata: &str) -> Vec<String> {
    metadata
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("Requires-Dist:"))
        .map(|v| v.trim().to_string())
        .collect()
}

/// What `pip check` reports for the distributions of `dists`: each
/// requirement (markers evaluated for `env`, no extras) that no
/// distribution of `dists` or `others` satisfies, in pip's words.
pub fn unmet(
    dists: &BTreeMap<PackageName, DistInfo>,
    others: &BTreeMap<PackageName, DistInfo>,
    env: &pep508_rs::MarkerEnvironment,
) -> Vec<String> {
    let mut out = Vec::new();
    for d in dists.values() {
        for line in &d.requires {
            let Ok(req) = crate::input::requirements::parse_pep508(line) else {
                out.push(format!(
                    "{} {} has an unreadable requirement `{line}`",
                    d.name, d.version
                ));
                continue;
            };
            if !req.marker.evaluate(env, &[]) {
                continue;
            }
            let Some(have) = dists.get(&req.name).or_else(|| others.get(&req.name)) else {
                out.push(format!(
                    "{} {} requires {}, which is not installed.",
                    d.name, d.version, req.name
                ));
                continue;
            };
            if let Some(pep508_rs::VersionOrUrl::VersionSpecifier(specs)) = &req.version_or_url {
                let fits = have
                    .version
                    .parse::<pep440_rs::Version>()
                    .is_ok_and(|v| specs.contains(&v));
                if !fits {
                    out.push(format!(
                        "{} {} has requirement {}{}, but you have {} {}.",
                        d.name, d.version, req.name, specs, have.name, have.version
                    ));
                }
            }
        }
    }
    once(out)
}

/// `lines` with every repeat of an earlier line left out, in order (a
/// distribution may state one requirement twice, e.g. once per extra that
/// its marker names, and a failure is worth one line).
pub fn once(lines: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l.clone()))
        .collect()
}

/// One distribution of an import group: its index in the list given to
/// [`import_groups`], and every distribution of that list it requires,
/// directly or not (its import may import theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportUnit {
    pub dist: usize,
    pub needs: Vec<usize>,
}

/// The import check's units of work: `dists` (indices) grouped so that
/// distributions that require one another, directly or not, are in one group
/// (importing one imports the others: one interpreter should pay for that
/// once), each group with a distribution after those it requires (a broken
/// dependency is then named itself, and an importer can be checked as soon
/// as it and its `needs` are in place), the biggest groups first. Markers
/// are evaluated for `env`; without one every requirement counts.
pub fn import_groups(
    dists: &[&DistInfo],
    env: Option<&pep508_rs::MarkerEnvironment>,
) -> Vec<Vec<ImportUnit>> {
    let index: BTreeMap<&PackageName, usize> = dists
        .iter()
        .enumerate()
        .map(|(i, d)| (&d.normalized, i))
        .collect();
    let direct: Vec<Vec<usize>> = dists
        .iter()
        .map(|d| {
            d.requires
                .iter()
                .filter_map(|line| crate::input::requirements::parse_pep508(line).ok())
                .filter(|r| env.is_none_or(|env| r.marker.evaluate(env, &[])))
                .filter_map(|r| index.get(&r.name).copied())
                .collect()
        })
        .collect();
    // Union-find over "requires", in either direction.
    let mut parent: Vec<usize> = (0..dists.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, deps) in direct.iter().enumerate() {
        for &j in deps {
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    // What each one requires, directly or not (itself excluded). One that
    // requires another needs strictly more, unless they require each other.
    let needs: Vec<Vec<usize>> = (0..dists.len())
        .map(|i| {
            let mut seen = vec![false; dists.len()];
            let mut stack = vec![i];
            while let Some(k) = stack.pop() {
                for &j in &direct[k] {
                    if !seen[j] && j != i {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
            (0..dists.len()).filter(|&j| seen[j]).collect()
        })
        .collect();
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..dists.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = groups.into_values().collect();
    for g in &mut out {
        g.sort_by_key(|&i| (needs[i].len(), i));
    }
    out.sort_by_key(|g| (std::cmp::Reverse(g.len()), g[0]));
    out.into_iter()
        .map(|g| {
            g.into_iter()
                .map(|i| ImportUnit {
                    dist: i,
                    needs: needs[i].clone(),
                })
                .collect()
        })
        .collect()
}

fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut c = part.chars();
            matches!(c.next(), Some(f) if f.is_alphabetic() || f == '_')
                && c.all(|ch| ch.is_alphanumeric() || ch == '_')
        })
}

/// Top-level importable names from a RECORD file.
pub fn top_level_from_record(record: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in record.lines() {
        let path = line.split(',').next().unwrap_or("").trim_matches('"');
        let first = path.split('/').next().unwrap_or("");
        if first.is_empty()
            || first == ".."
            || first == "__pycache__"
            || first.ends_with(".dist-info")
            || first.ends_with(".data")
            || first.ends_with(".pth")
        {
            continue;
        }
        let is_dir = path.contains('/');
        let module = if is_dir {
            // `foo.libs/` (auditwheel's vendored libraries) is no package.
            if first.contains('.') {
                continue;
            }
            first.to_string()
        } else if let Some(stem) = first.strip_suffix(".py") {
            stem.to_string()
        } else if first.ends_with(".so") {
            first.split('.').next().unwrap_or("").to_string()
        } else {
            continue;
        };
        if is_module_name(&module) && !names.contains(&module) {
            names.push(module);
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markers of CPython 3.11 on x86_64 Linux.
    fn linux_cpython_311() -> pep508_rs::MarkerEnvironment {
        pep508_rs::MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: "3.11.2",
            os_name: "posix",
            platform_machine: "x86_64",
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: "3.11.2",
            python_version: "3.11",
            sys_platform: "linux",
        })
        .unwrap()
    }

    fn dist(name: &str, requires: &[&str]) -> DistInfo {
        DistInfo {
            name: name.into(),
            normalized: PackageName::new(name.to_string()).unwrap(),
            version: "1".into(),
            top_level: vec![name.replace('-', "_")],
            requires: requires.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn an_unmet_requirement_stated_twice_is_reported_once() {
        let all: BTreeMap<PackageName, DistInfo> = [
            dist("kubernetes", &["pyyaml>=6.0.3", "six", "pyyaml>=6.0.3"]),
            dist("pyyaml", &[]),
            dist("six", &[]),
        ]
        .into_iter()
        .map(|d| (d.normalized.clone(), d))
        .collect();
        let env = linux_cpython_311();
        let failures = unmet(&all, &BTreeMap::new(), &env);
        assert_eq!(
            failures,
            ["kubernetes 1 has requirement pyyaml>=6.0.3, but you have pyyaml 1."]
        );
    }

    #[test]
    fn import_groups_keep_what_imports_together_and_dependencies_first() {
        let all = [
            dist("jmespath", &[]),
            dist("requests", &["urllib3>=1", "idna"]),
            dist("python-gitlab", &["requests>=2", "requests-toolbelt"]),
            dist("urllib3", &[]),
            dist("idna", &[]),
            dist("requests-toolbelt", &["requests"]),
            dist(
                "ansible-core",
                &["jinja2", "pywin32; sys_platform == 'win32'"],
            ),
            dist("jinja2", &["markupsafe"]),
            dist("markupsafe", &[]),
        ];
        let refs: Vec<&DistInfo> = all.iter().collect();
        let groups = import_groups(&refs, None);
        let names = |g: &Vec<ImportUnit>| {
            g.iter()
                .map(|u| all[u.dist].name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            groups.iter().map(names).collect::<Vec<_>>(),
            [
                vec![
                    "urllib3",
                    "idna",
                    "requests",
                    "requests-toolbelt",
                    "python-gitlab"
                ],
                vec!["markupsafe", "jinja2", "ansible-core"],
                vec!["jmespath"],
            ]
        );
        // What each waits for: everything it pulls in, and nothing else.
        let gitlab = &groups[0][4];
        assert_eq!(gitlab.needs, [1, 3, 4, 5]);
        assert_eq!(groups[1][1].needs, [8]);
        assert!(groups[2][0].needs.is_empty());
    }

    #[test]
    fn record_top_levels() {
        let record = "lxml/__init__.py,sha256=x,1\nlxml/etree.cpython-311-x86_64-linux-gnu.so,sha256=y,2\n_cffi_backend.cpython-311-x86_64-linux-gnu.so,sha256=z,3\npsycopg2_binary.libs/libpq-9b.so.5,sha256=q,4\nsix.py,sha256=a,1\n__pycache__/six.cpython-311.pyc,,\nsix-1.16.0.dist-info/RECORD,,\n../../../bin/ansible,sha256=b,1\nfoo.pth,sha256=c,1\nfoo-bar/x.py,,\n";
        assert_eq!(
            top_level_from_record(record),
            ["_cffi_backend", "lxml", "six"]
        );
    }

    #[test]
    fn egg_infos_of_debian_packages_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("lxml-4.9.2.egg-info");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("PKG-INFO"),
            "Metadata-Version: 1.2\nName: lxml\nVersion: 4.9.2\n",
        )
        .unwrap();
        std::fs::write(d.join("top_level.txt"), "lxml\n").unwrap();
        std::fs::write(
            dir.path().join("six-1.16.0.egg-info"),
            "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
        )
        .unwrap();
        let m = scan(dir.path());
        assert_eq!(
            m[&PackageName::new("lxml".to_string()).unwrap()].version,
            "4.9.2"
        );
        assert_eq!(
            m[&PackageName::new("lxml".to_string()).unwrap()].top_level,
            ["lxml"]
        );
        assert_eq!(
            m[&PackageName::new("six".to_string()).unwrap()].version,
            "1.16.0"
        );
    }

    #[test]
    fn unmet_requirements_are_reported_as_pip_check_does() {
        let dir = tempfile::tempdir().unwrap();
        let dist = |name: &str, version: &str, requires: &[&str]| {
            let d = dir.path().join(format!("{name}-{version}.dist-info"));
            std::fs::create_dir_all(&d).unwrap();
            let mut meta = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
            for r in requires {
                meta.push_str(&format!("Requires-Dist: {r}\n"));
            }
            std::fs::write(d.join("METADATA"), meta).unwrap();
        };
        dist(
            "app",
            "1.0",
            &[
                "Jinja2>=3.0",
                "six",
                "gone",
                "old<1 ; python_version < '3'",
                "extra-only ; extra == 'x'",
                "PyYAML>=7",
            ],
        );
        dist("jinja2", "3.1.6", &["MarkupSafe>=2.0"]);
        dist("MarkupSafe", "3.0.4", &[]);
        dist("PyYAML", "6.0.3", &[]);
        let venv = scan(dir.path());
        let sys = tempfile::tempdir().unwrap();
        std::fs::write(
            sys.path().join("six-1.16.0.egg-info"),
            "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
        )
        .unwrap();
        let system = scan(sys.path());
        let env = linux_cpython_311();
        assert_eq!(
            unmet(&venv, &system, &env),
            [
                "app 1.0 requires gone, which is not installed.",
                "app 1.0 has requirement pyyaml>=7, but you have PyYAML 6.0.3."
            ]
        );
    }

    #[test]
    fn dist_infos_are_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("PyYAML-6.0.3.dist-info");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("METADATA"),
            "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.3\n\nName: not-this\n",
        )
        .unwrap();
        std::fs::write(d.join("top_level.txt"), "_yaml\nyaml\n").unwrap();
        let m = scan(dir.path());
        let info = &m[&PackageName::new("pyyaml".to_string()).unwrap()];
        assert_eq!(info.name, "PyYAML");
        assert_eq!(info.version, "6.0.3");
        assert_eq!(info.top_level, ["_yaml", "yaml"]);
    }
}
