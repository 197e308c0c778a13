//! `venvbake lock`: an OS-aware lock for a real bookworm tree, resolved with
//! uv against PyPI, then applied with `prefer = "os"` from PyPI: what Debian
//! has in a version the resolution accepts comes from apt, the venv imports
//! and verifies clean. And one lock per release: a release the profile has
//! no lock for is refused before anything changes. (Needs PyPI, as the
//! test wheelhouse does.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

const CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The proxy variables of this process, for venvbake's clean environment.
fn proxies() -> Vec<(&'static str, String)> {
    [
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
    .collect()
}

fn per_release_profile(dir: &Path, locks: &str) -> std::path::PathBuf {
    let p = dir.join("fleet.toml");
    std::fs::write(
        &p,
        format!(
            "schema_version = 1\nname = \"fleet\"\n\n[venv]\npath = \"/opt/venvs/fleet\"\nrequirements = {locks}\nsystem_site_packages = \"auto\"\n\n[python]\nprefer = \"os\"\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn an_os_aware_lock_serves_from_apt_what_debian_has_in_a_compatible_version() {
    let uv = uv();
    with_tree("bookworm", move |tree| {
        let dir = tempfile::tempdir().unwrap();
        let p = per_release_profile(dir.path(), "{ \"debian-12\" = \"pylock.debian-12.toml\" }");
        let input = dir.path().join("fleet.in");
        std::fs::write(&input, "ansible-core\n").unwrap();
        let root = tree.root.to_str().unwrap();
        let env = proxies();
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // The lock the profile names for debian-12 does not exist yet.
        let run = venvbake(
            &[
                "lock",
                p.to_str().unwrap(),
                "--root",
                root,
                "--input",
                input.to_str().unwrap(),
                "--uv",
                uv.to_str().unwrap(),
            ],
            &extra,
        );
        run.expect_code(0);
        let lock = dir.path().join("pylock.debian-12.toml");
        assert_eq!(run.stdout.trim(), lock.to_str().unwrap());
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(
            text.starts_with("# Written by `venvbake lock` for debian-12 (Python 3.11."),
            "{text}"
        );

        // plan: apt serves what the lock pinned at apt's version.
        let plan = json_of(&["plan", p.to_str().unwrap(), "--root", root]);
        let apt: Vec<String> = plan["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["decision"] == "apt")
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert!(apt.len() >= 6, "only {apt:?} from apt:\n{text}");
        for name in ["jinja2", "markupsafe", "packaging", "cryptography"] {
            assert!(
                apt.iter().any(|a| a == name),
                "{name} not from apt: {apt:?}"
            );
        }
        // ansible-core itself stays at the newest: Debian's 2.14 is older.
        assert!(!apt.iter().any(|a| a == "ansible-core"), "{apt:?}");

        // The apply from PyPI passes its checks and serves the same.
        let mut args = vec![
            "apply",
            p.to_str().unwrap(),
            "--root",
            root,
            "--progress",
            "plain",
        ];
        if Path::new(CA).exists() {
            args.extend(["--cert", CA]);
        }
        venvbake(&args, &extra).expect_code(0);
        tree.run(&[
            "/opt/venvs/fleet/bin/python",
            "-c",
            "import ansible.release, jinja2, yaml, cryptography",
        ])
        .ok();
        let (code, report) = verify(tree, "fleet");
        assert_eq!(code, 0, "{report}");
        let m = tree.read_json("/var/lib/venvbake/fleet.json");
        let from_apt = m["distributions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["source"] == "apt")
            .count();
        assert_eq!(from_apt, apt.len(), "{}", m["distributions"]);
        venvbake(&args, &extra)
            .expect_code(0)
            .expect_stderr("is up to date");
    });
}

#[test]
fn a_release_without_a_lock_is_refused_before_anything_changes() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(small_lock(), dir.path().join("bookworm.txt")).unwrap();
        let p = per_release_profile(dir.path(), "{ \"debian-12\" = \"bookworm.txt\" }");
        let status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
        for command in ["plan", "apply"] {
            tree.case(command, &p)
                .wheelhouse()
                .expect(2)
                .expect_stderr("fleet.toml:6:16: `venv.requirements`: names no lock for this target's release `debian-13` or `debian-trixie` (it has: debian-12)")
                .expect_stderr("venvbake lock PROFILE --root TREE");
        }
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            status
        );
        // With a lock for it, the same profile applies.
        let p = per_release_profile(
            dir.path(),
            "{ \"debian-12\" = \"bookworm.txt\", \"debian-13\" = \"bookworm.txt\" }",
        );
        tree.case("plan", &p).wheelhouse().expect(0);
    });
}
