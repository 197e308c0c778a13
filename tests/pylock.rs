//! PEP 751 `pylock.toml` as a profile's lock, in real trees, with the files
//! uv and pip wrote for the same pins (`tests/data/pylock/regenerate`):
//! offline from the wheelhouse, from the wheels the lock's `path` keys name,
//! and from an index on loopback; verify, sbom and a no-op rerun; a lock made
//! for another Python refused before apt changes anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(REPO).join("tests/data/pylock").join(name)
}

/// What a user checks after an apply: the venv imports the lock's modules,
/// verify is clean, and the manifest names the lock's format and hash.
fn assert_served(tree: &Tree, name: &str, venv: &str, lock: &Path) {
    let py = format!("{venv}/bin/python");
    tree.run(&[
        &py,
        "-c",
        "import jmespath, markupsafe, six; print(six.__version__)",
    ])
    .ok();
    let (code, report) = verify(tree, name);
    assert_eq!(code, 0, "verify: {report}");
    let m = tree.read_json(&format!("/var/lib/venvbake/{name}.json"));
    let req = &m["profile"]["requirements"];
    assert_eq!(req["format"], "pylock", "{req}");
    let sha = venvbake::codec::hex_sha256(&std::fs::read(lock).unwrap());
    assert_eq!(req["sha256"], sha);
    let mut dists: Vec<String> = m["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}=={}",
                d["name"].as_str().unwrap().to_lowercase(),
                d["version"].as_str().unwrap()
            )
        })
        .collect();
    dists.sort();
    assert_eq!(
        dists,
        ["jmespath==1.1.0", "markupsafe==3.0.4", "six==1.17.0"]
    );
}

#[test]
fn locks_written_by_uv_and_pip_apply_offline_in_bookworm() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        for (name, lock) in [
            ("uvlock", "pylock.uv-small.toml"),
            ("piplock", "pylock.pip-small.toml"),
        ] {
            let venv = format!("/opt/venvs/{name}");
            let p = write_profile(dir.path(), name, &venv, &fixture(lock), "");
            let plan = json_of(&[
                "plan",
                p.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--wheelhouse",
                wheelhouse().to_str().unwrap(),
            ]);
            assert_eq!(plan["lock"]["format"], "pylock", "{plan}");
            assert_eq!(plan["venv"]["route"]["kind"], "native", "{plan}");
            tree.case("apply", &p).wheelhouse().expect(0);
            assert_served(
                tree,
                name,
                &venv,
                &dir.path().join(format!("pylock.{name}.toml")),
            );
            tree.case("apply", &p)
                .wheelhouse()
                .expect(0)
                .expect_stderr("is up to date");
            let root = tree.root.to_str().unwrap();
            let sbom = venvbake(
                &["sbom", "--root", root, name, "--format", "cyclonedx"],
                &[],
            )
            .ok();
            assert!(
                sbom.stdout.contains("pkg:pypi/jmespath@1.1.0"),
                "{}",
                sbom.stdout
            );
        }
    });
}

#[test]
fn uv_s_universal_lock_applies_in_trixie_and_pip_s_lock_for_3_11_is_refused_there() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let p = write_profile(
            dir.path(),
            "uvlock",
            "/opt/venvs/uvlock",
            &fixture("pylock.uv-small.toml"),
            "",
        );
        tree.case("apply", &p).wheelhouse().expect(0);
        assert_served(
            tree,
            "uvlock",
            "/opt/venvs/uvlock",
            &dir.path().join("pylock.uvlock.toml"),
        );
        // pip locked for the Python it ran on (3.11): its one markupsafe
        // wheel is cp311, which Python 3.13 cannot load.
        let p = write_profile(
            dir.path(),
            "piplock",
            "/opt/venvs/piplock",
            &fixture("pylock.pip-small.toml"),
            "",
        );
        tree.case("apply", &p)
            .wheelhouse()
            .expect(6)
            .expect_stderr("markupsafe==3.0.4")
            .expect_stderr("Python 3.13")
            .expect_stderr("nothing of this build was left behind");
        assert!(!tree.path("/opt/venvs/piplock").exists());
        // The first profile's venv still serves.
        tree.run(&["/opt/venvs/uvlock/bin/python", "-c", "import markupsafe"])
            .ok();
    });
}

/// The lock's own `path` keys name the wheels: no wheelhouse, no index.
#[test]
fn wheels_at_the_lock_s_paths_install_with_no_other_source() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let uv = std::fs::read_to_string(fixture("pylock.uv-small.toml")).unwrap();
        // Every wheel's url becomes a path beside the lock, where the
        // wheelhouse's copy of that file is put.
        let wheels = dir.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        let mut text = String::new();
        for line in uv.lines() {
            let mut l = line.to_string();
            if let Some(start) = l.find("{ url = \"https://") {
                let end = l[start..].find("\", ").unwrap() + start;
                let url = &l[start + 9..end];
                let file = url.rsplit('/').next().unwrap().to_string();
                if file.ends_with(".whl") {
                    if wheelhouse().join(&file).exists() {
                        std::fs::copy(wheelhouse().join(&file), wheels.join(&file)).unwrap();
                    }
                    l = format!(
                        "{}{{ path = \"wheels/{file}\"{}",
                        &l[..start],
                        &l[end + 1..]
                    );
                }
            }
            text.push_str(&l);
            text.push('\n');
        }
        let lock = dir.path().join("pylock.src.toml");
        std::fs::write(&lock, &text).unwrap();
        let p = write_profile(dir.path(), "paths", "/opt/venvs/paths", &lock, "");
        let plan = json_of(&[
            "plan",
            p.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
        ]);
        assert_eq!(plan["venv"]["route"]["kind"], "native", "{plan}");
        tree.case("apply", &p).expect(0);
        assert_served(
            tree,
            "paths",
            "/opt/venvs/paths",
            &dir.path().join("pylock.paths.toml"),
        );
    });
}

#[test]
fn uv_s_lock_installs_from_an_index() {
    with_tree("bookworm", |tree| {
        let index = TestIndex::start(&[], None);
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("\n[index]\nurl = \"{}\"\n", index.url());
        let p = write_profile(
            dir.path(),
            "uvindex",
            "/opt/venvs/uvindex",
            &fixture("pylock.uv-small.toml"),
            &extra,
        );
        let cache = tempfile::tempdir().unwrap();
        tree.case("apply", &p)
            .arg("--cache-dir")
            .arg(cache.path().display())
            .expect(0);
        // The profile's index served the files (the lock's own URLs point
        // at files.pythonhosted.org), matched by the lock's hashes.
        assert_eq!(
            index.downloaded_projects(),
            ["jmespath", "markupsafe", "six"]
        );
        assert_served(
            tree,
            "uvindex",
            "/opt/venvs/uvindex",
            &dir.path().join("pylock.uvindex.toml"),
        );
    });
}

/// A lock for another Python is refused by `plan` and by `apply` before apt
/// runs: the tree's dpkg status is byte-identical (python3.11-venv is not
/// installed in the bare tree, so an apply would otherwise install it).
#[test]
fn a_lock_for_another_python_is_refused_before_anything_changes() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let uv = std::fs::read_to_string(fixture("pylock.uv-small.toml")).unwrap();
        let lock = dir.path().join("pylock.new.toml");
        std::fs::write(
            &lock,
            uv.replace(
                "requires-python = \">=3.11\"",
                "requires-python = \">=3.12\"",
            ),
        )
        .unwrap();
        let p = write_profile(dir.path(), "newer", "/opt/venvs/newer", &lock, "");
        let status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
        for command in ["plan", "apply"] {
            tree.case(command, &p)
                .wheelhouse()
                .expect(2)
                .expect_stderr("pylock.newer.toml:5:1: `requires-python`")
                .expect_stderr("the lock requires Python `>=3.12`; the target's is 3.11.");
        }
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            status
        );
        assert!(!tree.path("/opt/venvs").exists());
    });
}

/// A venv built from a `pylock.toml` bundles and stamps a fresh tree, and
/// `fetch` fills a wheelhouse from the same lock (needs PyPI, as the test
/// wheelhouse does) that an offline apply takes.
#[test]
fn a_pylock_venv_bundles_stamps_and_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_profile(
        dir.path(),
        "uvlock",
        "/opt/venvs/uvlock",
        &fixture("pylock.uv-small.toml"),
        "",
    );
    let bundle = dir.path().join("uvlock.bundle");
    let (p1, b1) = (p.clone(), bundle.clone());
    with_tree("bookworm", move |tree| {
        tree.case("apply", &p1).wheelhouse().expect(0);
        let root = tree.root.to_str().unwrap();
        venvbake(
            &[
                "bundle",
                p1.to_str().unwrap(),
                "--root",
                root,
                "-o",
                b1.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
    });
    let (p2, b2) = (p.clone(), bundle.clone());
    with_tree("bookworm", move |tree| {
        tree.case("apply", &p2)
            .args(["--bundle", b2.to_str().unwrap()])
            .expect(0);
        assert_served(
            tree,
            "uvlock",
            "/opt/venvs/uvlock",
            &p2.with_file_name("pylock.uvlock.toml"),
        );
    });
    let wh = dir.path().join("wheels");
    let mut args = vec![
        "fetch",
        p.to_str().unwrap(),
        "--dest",
        wh.to_str().unwrap(),
        "--python",
        "3.11",
    ];
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        args.extend(["--cert", "/etc/ssl/certs/ca-certificates.crt"]);
    }
    let env: Vec<(String, String)> = ["https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    venvbake(&args, &extra).ok();
    let mut got: Vec<String> = std::fs::read_dir(&wh)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".whl"))
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    let p3 = p.clone();
    with_tree("bookworm", move |tree| {
        tree.case("apply", &p3)
            .args(["--wheelhouse", wh.to_str().unwrap()])
            .expect(0);
    });
}
