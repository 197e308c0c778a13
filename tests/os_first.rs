//! End-to-end tests of the OS-package-first policy (`[python] prefer = "os"`,
//! `[python] system`, `break_system_packages`) in real bookworm and trixie
//! trees: apt decides, with its real candidate versions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Ranges that Debian satisfies, plus pins Debian does not carry (hashed).
fn os_first_lock(dir: &Path) -> PathBuf {
    let pinned =
        std::fs::read_to_string(Path::new(REPO).join("tests/data/pinned-extra.requirements.txt"))
            .unwrap();
    let p = dir.join("os-first.txt");
    std::fs::write(&p, format!("lxml>=4.9\nsix\n{pinned}")).unwrap();
    p
}

fn decision<'a>(m: &'a serde_json::Value, scope: &str, name: &str) -> &'a serde_json::Value {
    m["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["scope"] == scope && d["name"] == name)
        .unwrap_or_else(|| panic!("no decision for {scope} {name}: {m}"))
}

fn prefer_os_serves_from_apt_and_venv(tree: &Tree) {
    let dir = tempfile::tempdir().unwrap();
    let lock = os_first_lock(dir.path());
    let profile = write_profile(
        dir.path(),
        "osfirst",
        "/opt/venvs/osfirst",
        &lock,
        "pip = true\nsystem_site_packages = \"auto\"\n\n[python]\nprefer = \"os\"\n",
    );
    let root = tree.root.to_str().unwrap();

    // The plan says who serves what, before anything is installed.
    let plan = venvbake(
        &[
            "plan",
            profile.to_str().unwrap(),
            "--root",
            root,
            "--format",
            "json",
        ],
        &[],
    )
    .ok();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(decision(&plan, "venv", "lxml")["decision"], "apt");
    assert_eq!(
        decision(&plan, "venv", "lxml")["os_candidate"]["package"],
        "python3-lxml"
    );
    assert_eq!(decision(&plan, "venv", "six")["decision"], "apt");
    let jm = decision(&plan, "venv", "jmespath");
    assert_eq!(jm["decision"], "venv", "{jm}");
    assert!(
        jm["reason"]
            .as_str()
            .unwrap()
            .contains("does not satisfy `==1.1.0`"),
        "{jm}"
    );
    let cs = decision(&plan, "venv", "cowsay");
    assert_eq!(cs["decision"], "venv");
    assert!(
        cs["reason"]
            .as_str()
            .unwrap()
            .contains("python3-cowsay (convention): unknown to apt"),
        "{cs}"
    );
    assert_eq!(plan["venv"]["system_site_packages"], true);
    let installs: Vec<&str> = plan["apt"]["install"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        installs.contains(&"python3-lxml") && installs.contains(&"python3-six"),
        "{installs:?}"
    );

    let run = tree.apply(&profile, &[]).ok();
    run.expect_stderr("requirement lxml>=4.9: apt");

    // apt installed the OS packages; the venv imports both kinds.
    for pkg in ["python3-lxml", "python3-six"] {
        tree.run(&["dpkg-query", "-W", pkg]).ok();
    }
    let py = "/opt/venvs/osfirst/bin/python";
    let out = tree
        .run(&[py, "-c", "import lxml, six, jmespath, markupsafe, cowsay; print(lxml.__file__); print(jmespath.__file__)"])
        .ok();
    let mut files = out.stdout.lines();
    assert!(
        files
            .next()
            .unwrap()
            .starts_with("/usr/lib/python3/dist-packages/lxml"),
        "{}",
        out.stdout
    );
    assert!(
        files.next().unwrap().starts_with("/opt/venvs/osfirst/lib/"),
        "{}",
        out.stdout
    );
    // pip check covers the apt-served and venv-installed distributions together.
    tree.run(&[py, "-m", "pip", "check"]).ok();

    // The manifest records each decision and where each distribution comes from.
    let m = tree.read_json("/var/lib/venvbake/osfirst.json");
    assert_eq!(decision(&m, "venv", "lxml")["decision"], "apt");
    assert_eq!(decision(&m, "venv", "jmespath")["decision"], "venv");
    let dists = m["distributions"].as_array().unwrap();
    let lxml = dists.iter().find(|d| d["name"] == "lxml").unwrap();
    assert_eq!(lxml["source"], "apt");
    assert_eq!(lxml["package"], "python3-lxml");
    let jmespath = dists.iter().find(|d| d["name"] == "jmespath").unwrap();
    assert_eq!(
        (jmespath["source"].as_str(), jmespath["version"].as_str()),
        (Some("venv"), Some("1.1.0"))
    );
    assert_eq!(m["venv"]["system_site_packages"], true);

    let again = tree.apply(&profile, &[]).ok();
    again.expect_stderr("nothing changed");
}

#[test]
fn bookworm_prefer_os_splits_requirements_between_apt_and_venv() {
    with_tree("bookworm", prefer_os_serves_from_apt_and_venv);
}

#[test]
fn trixie_prefer_os_splits_requirements_between_apt_and_venv() {
    with_tree("trixie", prefer_os_serves_from_apt_and_venv);
}

#[test]
fn system_entry_without_os_package_stops_unless_break_system_packages() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lock = Path::new(REPO).join("tests/data/pinned-extra.requirements.txt");
        let profile = write_profile(
            dir.path(),
            "sys",
            "/opt/venvs/sys",
            &lock,
            "\n[python]\nsystem = [\"pyOpenSSL\", \"cowsay\"]\n",
        );
        let run = tree.apply(&profile, &[]);
        run.expect_code(2);
        run.expect_stderr("1 Python requirement(s) cannot be served");
        run.expect_stderr("system `cowsay`");
        run.expect_stderr("looked at: python3-cowsay (convention): unknown to apt");
        run.expect_stderr("break_system_packages = true");
        assert!(!tree.path("/opt/venvs/sys").exists(), "nothing was built");
        let gone = tree.run(&["dpkg-query", "-W", "python3-openssl"]);
        assert_ne!(gone.code, 0, "nothing was installed");

        // The audited last resort: pyOpenSSL from apt, cowsay with pip into the system.
        let profile = write_profile(
            dir.path(),
            "sys",
            "/opt/venvs/sys",
            &lock,
            "\n[python]\nsystem = [\"pyOpenSSL\", \"cowsay\"]\nbreak_system_packages = true\n",
        );
        let run = tree.apply(&profile, &[]).ok();
        run.expect_stderr("warning: installing cowsay==6.1 into the system interpreter with pip --break-system-packages");
        tree.run(&["/usr/bin/python3", "-c", "import OpenSSL, cowsay"])
            .ok();
        tree.run(&["dpkg-query", "-W", "python3-openssl"]).ok();
        let m = tree.read_json("/var/lib/venvbake/sys.json");
        assert_eq!(decision(&m, "system", "pyopenssl")["decision"], "apt");
        assert_eq!(
            decision(&m, "system", "cowsay")["decision"],
            "break-system-packages"
        );
        let pip = &m["system_pip"][0];
        assert_eq!(
            (pip["name"].as_str(), pip["version"].as_str()),
            (Some("cowsay"), Some("6.1"))
        );
        assert_eq!(pip["break_system_packages"], true);
        assert!(
            pip["reason"]
                .as_str()
                .unwrap()
                .contains("audited last resort"),
            "{pip}"
        );
        let again = tree.apply(&profile, &[]).ok();
        again.expect_stderr("nothing changed");
    });
}

#[test]
fn map_answers_for_names_on_the_target() {
    with_tree("trixie", |tree| {
        let run = venvbake(
            &[
                "map",
                "pyOpenSSL",
                "lxml>=99",
                "psycopg2-binary",
                "python_gitlab",
                "--root",
                tree.root.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[],
        )
        .ok();
        let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let by = |n: &str| {
            d.as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(
            by("pyopenssl")["os_candidate"]["package"],
            "python3-openssl"
        );
        assert_eq!(by("pyopenssl")["decision"], "apt");
        assert_eq!(by("lxml")["decision"], "venv");
        assert_eq!(
            by("psycopg2-binary")["os_candidate"]["package"],
            "python3-psycopg2"
        );
        assert_eq!(
            by("python-gitlab")["os_candidate"]["package"],
            "python3-gitlab"
        );
        // apt's own word agrees with the candidate version.
        let policy = tree.run(&["apt-cache", "policy", "python3-openssl"]).ok();
        let cand = by("pyopenssl")["os_candidate"]["version"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            policy.stdout.contains(&format!("Candidate: {cand}")),
            "{}",
            policy.stdout
        );
    });
}

/// The ansible lock with `requests` loosened to a range Debian's 2.28
/// satisfies; python-gitlab (pinned, its wheel in the wheelhouse) requires
/// `requests>=2.32.0`.
fn loosened_requests(dir: &Path) -> PathBuf {
    let lock =
        std::fs::read_to_string(Path::new(REPO).join("profiles/ansible.requirements.txt")).unwrap();
    let mut out = String::new();
    let mut skip = false;
    for line in lock.lines() {
        if line.starts_with("requests==") {
            out.push_str("requests>=2.28\n");
            skip = true;
            continue;
        }
        if skip && line.starts_with(' ') {
            continue;
        }
        skip = false;
        out.push_str(line);
        out.push('\n');
    }
    let p = dir.join("loose.txt");
    std::fs::write(&p, out).unwrap();
    p
}

/// An apt version that would break another locked distribution's
/// `Requires-Dist` is found by `plan`, from the wheelhouse's metadata,
/// before apt installs anything: with a hashed lock neither side can give
/// way (exit 2, both named, dpkg untouched); when pip may resolve it, the
/// venv serves it instead.
#[test]
fn an_apt_version_another_requirement_rules_out_is_found_before_apt_runs() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lock = loosened_requests(dir.path());
        let os = "system_site_packages = \"auto\"\n\n[python]\nprefer = \"os\"\n";
        let p = write_profile(dir.path(), "loose", "/opt/venvs/loose", &lock, os);
        let status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
        for command in ["plan", "apply"] {
            tree.case(command, &p)
                .wheelhouse()
                .expect(2)
                .expect_stderr("python3-requests 2.28.1")
                .expect_stderr(
                    "would serve it, but python-gitlab 8.6.0 requires `requests>=2.32.0`",
                );
        }
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            status
        );
        // Without a wheelhouse, the same is found from the index's PEP 658
        // metadata (read on the build host before planning), and the
        // metadata is kept in the download cache.
        let index = TestIndex::start(&[], None);
        let indexed = write_profile(
            dir.path(),
            "loose",
            "/opt/venvs/loose",
            &lock,
            &format!("{os}\n[index]\nurl = \"{}\"\n", index.url()),
        );
        let cache = dir.path().join("cache");
        for command in ["plan", "apply"] {
            let run = venvbake(
                &[
                    command,
                    indexed.to_str().unwrap(),
                    "--root",
                    tree.root.to_str().unwrap(),
                    "--cache-dir",
                    cache.to_str().unwrap(),
                ],
                &[],
            );
            run.expect_code(2);
            run.expect_stderr(
                "would serve it, but python-gitlab 8.6.0 requires `requests>=2.32.0`",
            );
        }
        assert!(index
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("python_gitlab-8.6.0") && l.contains(".metadata ")));
        assert!(
            index.file_requests().is_empty(),
            "a wheel was downloaded to plan"
        );
        // An index that never answers: the plan warns once, asks no more
        // than the first round of lookups (not every requirement with its
        // retries), and decides with what it has.
        let down = TestIndex::start(&[("*", Misbehave::Hang)], None);
        let unreachable = write_profile(
            dir.path(),
            "loose",
            "/opt/venvs/loose",
            &lock,
            &format!("{os}\n[index]\nurl = \"{}\"\ntimeout_s = 1\n", down.url()),
        );
        let run = venvbake(
            &[
                "plan",
                unreachable.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            &[],
        );
        run.expect_stderr("the index's metadata could not be read for");
        run.expect_stderr("the conflict check covers what it read");
        let asked = down.page_requests().len();
        let wants = std::fs::read_to_string(&lock)
            .unwrap()
            .lines()
            .filter(|l| l.contains("=="))
            .count();
        assert!(
            asked <= 8 * 3 && asked < wants * 3,
            "{asked} page requests for {wants} requirements"
        );
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            status
        );
        // Without the hash requirement, pip resolves it in the venv.
        let p = write_profile(
            dir.path(),
            "loose",
            "/opt/venvs/loose",
            &lock,
            &os.replace("prefer = \"os\"", "prefer = \"os\"\nrequire_hashes = false"),
        );
        let root = tree.root.to_str().unwrap();
        let wh = wheelhouse();
        let plan = json_of(&[
            "plan",
            p.to_str().unwrap(),
            "--root",
            root,
            "--wheelhouse",
            wh.to_str().unwrap(),
        ]);
        let d = decision(&plan, "venv", "requests");
        assert_eq!(d["decision"], "venv", "{d}");
        assert!(
            d["reason"]
                .as_str()
                .unwrap()
                .contains("requires `requests>=2.32.0`; the venv serves it"),
            "{d}"
        );
    });
}
