//! End-to-end tests: the real binary applies profiles to real Debian
//! bookworm (Python 3.11), trixie (Python 3.13) and forky (Python 3.14,
//! what Ubuntu 26.04 ships) trees, with real apt,
//! dpkg, python and pip, installing offline from a real wheelhouse.
//!
//! They need root, mmdebstrap and network access to the Debian mirror on
//! first use; `scripts/test-deps` installs what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

fn ansible_profile() -> PathBuf {
    Path::new(REPO).join("profiles/ansible.toml")
}

/// Every importable top-level name the ansible profile promises.
const ANSIBLE_IMPORTS: &str = "import ansible, gitlab, lxml.etree, jmespath, netaddr, yaml, jinja2, cryptography, requests; print('imports ok')";

/// What the venv's interpreter itself finds installed (`importlib.metadata`,
/// which `pip list` reads too), as name -> version. The venv has no pip by
/// default, so the standard library is the client here.
fn installed(tree: &Tree, python: &str) -> BTreeMap<String, String> {
    let out = tree
        .run(&[
            python,
            "-I",
            "-c",
            "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ])
        .ok();
    let found: BTreeMap<String, String> = serde_json::from_str(&out.stdout).unwrap();
    found
        .into_iter()
        .map(|(name, version)| (name.to_lowercase().replace(['_', '.'], "-"), version))
        .collect()
}

fn manifest_dists(m: &serde_json::Value) -> BTreeMap<String, String> {
    m["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .replace(['_', '.'], "-"),
                d["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The ansible profile with pip in the venv (so python3.X-venv is needed).
fn ansible_profile_with_pip(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(ansible_profile())
        .unwrap()
        .replace("[venv]\n", "[venv]\npip = true\n")
        .replace(
            "requirements = \"ansible.requirements.txt\"",
            &format!(
                "requirements = \"{}\"",
                Path::new(REPO)
                    .join("profiles/ansible.requirements.txt")
                    .display()
            ),
        );
    let p = dir.join("ansible.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The whole ansible profile on one suite: apt, venv, checks, outputs,
/// no-op re-apply. Without pip in the venv (the shipped profile) there is
/// no apt work at all; with it, python3.X-venv is installed and recorded.
fn ansible_end_to_end(tree: &Tree, python_minor: &str, profile: &Path) {
    let status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
    let with_pip = std::fs::read_to_string(profile)
        .unwrap()
        .contains("pip = true");
    let run = tree.apply(profile, &[]).ok();
    assert_eq!(
        run.stdout, "/opt/venvs/ansible/bin/python\n",
        "stdout carries only the interpreter"
    );
    if with_pip {
        run.expect_stderr("venvbake: apt: install");
    } else {
        assert!(
            !run.stderr.contains("venvbake: apt: install"),
            "{}",
            run.stderr
        );
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            status
        );
    }
    assert!(
        !run.stderr.contains('\r'),
        "plain output has no carriage returns"
    );

    // The fixed path is a symlink to a generation, and the venv imports every requirement.
    let link = tree
        .link("/opt/venvs/ansible")
        .expect("the fixed path is a symlink");
    assert!(
        link.to_string_lossy()
            .starts_with("ansible.generations/g1-"),
        "{}",
        link.display()
    );
    let imports = tree
        .run(&["/opt/venvs/ansible/bin/python", "-c", ANSIBLE_IMPORTS])
        .ok();
    assert_eq!(imports.stdout.trim(), "imports ok");
    let ansible = tree
        .run(&["/opt/venvs/ansible/bin/ansible", "--version"])
        .ok();
    assert!(ansible.stdout.contains("core 2.17."), "{}", ansible.stdout);

    // The manifest says what is there: the venv's interpreter and dpkg in the tree agree.
    let m = tree.read_json("/var/lib/venvbake/ansible.json");
    assert_eq!(m["schema_version"], 1);
    assert_eq!(m["interpreter"], "/opt/venvs/ansible/bin/python");
    assert_eq!(m["externally_managed"], true);
    assert!(m["python"]["version"]
        .as_str()
        .unwrap()
        .starts_with(python_minor));
    assert_eq!(
        manifest_dists(&m),
        installed(tree, "/opt/venvs/ansible/bin/python")
    );
    for d in m["distributions"].as_array().unwrap() {
        if d["requirement"] == true {
            let sha = d["sha256"]
                .as_str()
                .expect("requirements record their file hash");
            let lock =
                std::fs::read_to_string(Path::new(REPO).join("profiles/ansible.requirements.txt"))
                    .unwrap();
            assert!(
                lock.contains(sha),
                "{} was installed from a file the lock allows",
                d["name"]
            );
        }
    }
    let venv_pkg = format!("python{python_minor}-venv");
    let apt = m["apt"].as_array().unwrap();
    let entry = apt.iter().find(|p| p["name"] == venv_pkg.as_str());
    if with_pip {
        let dpkg = tree
            .run(&["dpkg-query", "-W", "-f", "${Version}", &venv_pkg])
            .ok();
        let entry = entry.expect("venv package recorded");
        assert_eq!(entry["version"].as_str().unwrap(), dpkg.stdout);
        tree.run(&["/opt/venvs/ansible/bin/python", "-m", "pip", "--version"])
            .ok();
    } else {
        assert!(entry.is_none(), "{apt:?}");
    }
    assert_eq!(m["os"]["id"], "debian");

    // The fact: JSON, not executable, pointing at the interpreter.
    let fact_path = tree.path("/etc/ansible/facts.d/venvbake.fact");
    let mode = std::fs::metadata(&fact_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "Ansible executes executable fact files");
    let fact = tree.read_json("/etc/ansible/facts.d/venvbake.fact");
    assert_eq!(
        fact["profiles"]["ansible"]["interpreter"],
        "/opt/venvs/ansible/bin/python"
    );

    // Inventory variables from the manifest.
    let inv = venvbake(
        &[
            "inventory",
            "--root",
            tree.root.to_str().unwrap(),
            "--format",
            "ini",
        ],
        &[],
    )
    .ok();
    assert!(
        inv.stdout
            .contains("ansible_python_interpreter=/opt/venvs/ansible/bin/python"),
        "{}",
        inv.stdout
    );

    // No mount outlives the run; no policy-rc.d is left behind.
    assert_eq!(tree.host_mounts_under_tree(), Vec::<String>::new());
    assert!(!tree.path("/usr/sbin/policy-rc.d").exists());

    // A second apply changes nothing and says so.
    let before = std::fs::read(tree.path("/var/lib/venvbake/ansible.json")).unwrap();
    let again = tree.apply(profile, &[]).ok();
    again.expect_stderr("nothing changed");
    assert_eq!(tree.link("/opt/venvs/ansible"), Some(link));
    assert_eq!(
        std::fs::read(tree.path("/var/lib/venvbake/ansible.json")).unwrap(),
        before
    );
    let plan = venvbake(
        &[
            "plan",
            profile.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    )
    .ok();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["noop"], true);
}

#[test]
fn bookworm_ansible_profile_end_to_end() {
    with_tree("bookworm", |tree| {
        ansible_end_to_end(tree, "3.11", &ansible_profile())
    });
}

#[test]
fn trixie_ansible_profile_end_to_end_with_apt_update() {
    with_tree("trixie", |tree| {
        // pip in the venv: python3.13-venv is needed, so apt has work.
        let dir = tempfile::tempdir().unwrap();
        let profile = ansible_profile_with_pip(dir.path());
        // No package lists: venvbake must run apt-get update itself.
        for e in std::fs::read_dir(tree.path("/var/lib/apt/lists"))
            .unwrap()
            .flatten()
        {
            if e.path().is_file() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        let plan = venvbake(
            &[
                "plan",
                profile.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[],
        )
        .ok();
        let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        assert_eq!(plan["apt"]["update"], true);
        assert_eq!(plan["apt"]["install"][0]["name"], "python3.13-venv");
        ansible_end_to_end(tree, "3.13", &profile);
    });
}

/// Debian forky (testing) has Python 3.14, as Ubuntu 26.04 LTS does: apply,
/// verify, map, bundle, and a stamp of a fresh forky tree from that bundle.
#[test]
fn forky_python_3_14_apply_verify_map_bundle_and_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ansible-forky.bundle");
    let out = bundle.clone();
    with_tree("forky", move |tree| {
        ansible_end_to_end(tree, "3.14", &ansible_profile());
        let root = tree.root.to_str().unwrap();
        let v = venvbake(&["verify", "--root", root, "ansible"], &[]);
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
        assert!(v.stdout.contains("is clean"), "{}", v.stdout);
        let decisions = json_of(&["map", "lxml", "PyYAML>=6", "--root", root]);
        let lxml = &decisions.as_array().unwrap()[0];
        assert_eq!(lxml["os_candidate"]["package"], "python3-lxml", "{lxml}");
        venvbake(
            &[
                "bundle",
                ansible_profile().to_str().unwrap(),
                "--root",
                root,
                "-o",
                out.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
    });
    with_tree("forky", move |tree| {
        let run = tree
            .apply_from(
                &ansible_profile(),
                &["--bundle", bundle.to_str().unwrap()],
                &[],
            )
            .ok();
        run.expect_stderr("unpack bundle");
        let imports = tree
            .run(&["/opt/venvs/ansible/bin/python", "-c", ANSIBLE_IMPORTS])
            .ok();
        assert_eq!(imports.stdout.trim(), "imports ok");
        let v = venvbake(
            &["verify", "--root", tree.root.to_str().unwrap(), "ansible"],
            &[],
        );
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    });
}

#[test]
fn failing_requirement_leaves_the_previous_generation_active() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        tree.apply(&profile, &[]).ok();
        let first = tree.link("/opt/venvs/small").unwrap();
        let manifest_before = std::fs::read(tree.path("/var/lib/venvbake/small.json")).unwrap();

        // The same lock with six's only hash replaced: pip must refuse the wheel
        // (the native installer's refusal is tests/faults.rs' tampered wheel).
        let lock = std::fs::read_to_string(small_lock()).unwrap();
        let six_at = lock.find("six==").unwrap();
        let hash_at = six_at + lock[six_at..].find("sha256:").unwrap() + "sha256:".len();
        let mut bad = lock.clone();
        bad.replace_range(hash_at..hash_at + 64, &"0".repeat(64));
        let bad_lock = dir.path().join("bad.txt");
        std::fs::write(&bad_lock, bad).unwrap();
        let profile = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &bad_lock,
            "installer = \"pip\"\n",
        );

        let run = tree.apply(&profile, &[]);
        assert_eq!(run.code, 6, "install failure exit code:\n{}", run.stderr);
        run.expect_stderr("error: installing the requirements failed");
        assert!(
            run.stderr.contains("pip install"),
            "names the command:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("DO NOT MATCH THE HASHES"),
            "shows pip's own words:\n{}",
            run.stderr
        );
        run.expect_stderr("hint: ");
        assert_eq!(run.stdout, "", "no data on failure");

        // Nothing lost: same generation, still working, same manifest, no leftovers.
        assert_eq!(tree.link("/opt/venvs/small"), Some(first));
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        assert_eq!(
            std::fs::read(tree.path("/var/lib/venvbake/small.json")).unwrap(),
            manifest_before
        );
        let gens: Vec<String> = std::fs::read_dir(tree.path("/opt/venvs/small.generations"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('g'))
            .collect();
        assert_eq!(gens.len(), 1, "the failed generation was removed: {gens:?}");
        assert_eq!(tree.host_mounts_under_tree(), Vec::<String>::new());
    });
}

#[test]
fn host_environment_does_not_leak_into_the_tree() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            "[venv.extra]\n",
        );
        // An unknown table is refused before anything runs.
        let run = tree.apply(&profile, &[]);
        run.expect_code(2);
        assert!(
            !tree.path("/opt/venvs").exists(),
            "bad input touched the target"
        );

        let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        // Each of these would break or redirect the build if it reached pip or python.
        let hostile = [
            ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
            ("PIP_FIND_LINKS", "/nonexistent"),
            ("PIP_NO_BINARY", ":all:"),
            ("PIP_TARGET", "/tmp/leaked"),
            ("PIP_REQUIRE_VIRTUALENV", "0"),
            ("PYTHONHOME", "/nonexistent"),
            ("PYTHONPATH", "/nonexistent"),
            ("VIRTUAL_ENV", "/nonexistent"),
            ("UV_INDEX_URL", "http://127.0.0.1:9/simple"),
            ("DEBIAN_FRONTEND", "readline"),
        ];
        tree.apply(&profile, &hostile).ok();
        assert!(!tree.path("/tmp/leaked").exists());
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        let m = tree.read_json("/var/lib/venvbake/small.json");
        let dists = manifest_dists(&m);
        assert_eq!(dists.get("six").map(String::as_str), Some("1.17.0"));
        assert_eq!(dists, installed(tree, "/opt/venvs/small/bin/python"));
    });
}

#[test]
fn missing_interpreter_is_a_target_error_and_changes_nothing() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            "python = \"/usr/bin/python9\"\n",
        );
        let run = tree.apply(&profile, &[]);
        run.expect_code(3);
        run.expect_stderr("/usr/bin/python9");
        run.expect_stderr("hint: ");
        assert!(!tree.path("/opt/venvs/small").exists());
    });
}

#[test]
fn apt_failure_names_the_command_and_keeps_the_venv() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        tree.apply(&profile, &[]).ok();
        let first = tree.link("/opt/venvs/small").unwrap();
        let profile = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            "\n[apt]\npackages = [\"venvbake-no-such-package\"]\nlock_timeout_s = 60\n",
        );
        let run = tree.apply(&profile, &[]);
        run.expect_code(4);
        run.expect_stderr("apt-get");
        run.expect_stderr("Unable to locate package venvbake-no-such-package");
        assert_eq!(tree.link("/opt/venvs/small"), Some(first));
        assert!(!tree.path("/usr/sbin/policy-rc.d").exists());
    });
}

#[test]
fn two_profiles_share_the_fact_and_inventory_picks_by_name() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let a = write_profile(dir.path(), "alpha", "/opt/venvs/alpha", &small_lock(), "");
        let b = write_profile(
            dir.path(),
            "beta",
            "/srv/beta-venv",
            &small_lock(),
            "system_site_packages = true\n",
        );
        tree.apply(&a, &[]).ok();
        tree.apply(&b, &[]).ok();
        let fact = tree.read_json("/etc/ansible/facts.d/venvbake.fact");
        assert_eq!(
            fact["profiles"]["alpha"]["interpreter"],
            "/opt/venvs/alpha/bin/python"
        );
        assert_eq!(
            fact["profiles"]["beta"]["interpreter"],
            "/srv/beta-venv/bin/python"
        );
        let root = tree.root.to_str().unwrap();
        let inv = venvbake(
            &["inventory", "--root", root, "beta", "--format", "json"],
            &[],
        )
        .ok();
        let inv: serde_json::Value = serde_json::from_str(&inv.stdout).unwrap();
        assert_eq!(
            inv["all"]["vars"]["ansible_python_interpreter"],
            "/srv/beta-venv/bin/python"
        );
        let ambiguous = venvbake(&["inventory", "--root", root], &[]);
        ambiguous.expect_code(2);
        // system_site_packages: the beta venv sees the system's apt-installed modules.
        let cfg = std::fs::read_to_string(tree.path("/srv/beta-venv/pyvenv.cfg")).unwrap();
        assert!(cfg.contains("include-system-site-packages = true"), "{cfg}");
    });
}

/// The Packer path: venvbake runs *on* the system it changes (no `--root`),
/// here inside the image tree, with the binary, profile and wheelhouse
/// uploaded the way Packer's `file` provisioner does.
#[test]
fn apply_on_the_running_system_as_a_provisioner_does() {
    with_tree("bookworm", |tree| {
        let upload = tree.path("/tmp/venvbake");
        std::fs::copy(BIN, tree.path("/usr/local/bin/venvbake")).unwrap();
        copy_wheels(&wheelhouse(), &upload.join("wheels"), |_| true);
        write_profile(&upload, "small", "/opt/venvs/small", &small_lock(), "");
        // A booted system has /proc; mount it in this test's private namespace.
        let proc_dir = tree.path("/proc");
        nix::mount::mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let run = tree.run(&[
            "/usr/local/bin/venvbake",
            "apply",
            "/tmp/venvbake/small.toml",
            "--wheelhouse",
            "/tmp/venvbake/wheels",
        ]);
        nix::mount::umount2(&proc_dir, nix::mount::MntFlags::MNT_DETACH).unwrap();
        let run = run.ok();
        assert_eq!(run.stdout, "/opt/venvs/small/bin/python\n");
        // On the running system the venv is on disk before the switch.
        run.expect_stderr("to disk before the switch");
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        let m = tree.read_json("/var/lib/venvbake/small.json");
        assert_eq!(m["venv"]["path"], "/opt/venvs/small");
        assert_eq!(
            manifest_dists(&m),
            installed(tree, "/opt/venvs/small/bin/python")
        );
        let again = tree
            .run(&[
                "/usr/local/bin/venvbake",
                "apply",
                "/tmp/venvbake/small.toml",
            ])
            .ok();
        again.expect_stderr("nothing changed");
    });
}

#[test]
fn changed_lock_builds_a_new_generation_and_old_ones_are_kept_then_collected() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let full = small_lock();
        let two = lock_subset(&full, &["six", "jmespath"], &dir.path().join("two.txt"));
        let one = lock_subset(&full, &["six"], &dir.path().join("one.txt"));
        let apply = |lock: &Path| {
            let p = write_profile(
                dir.path(),
                "small",
                "/opt/venvs/small",
                lock,
                "keep_generations = 2\n",
            );
            tree.apply(&p, &[]).ok()
        };
        let first = apply(&full);
        // A first build into an image tree is left to the pipeline's unmount.
        assert!(
            !first.stderr.contains("to disk before the switch"),
            "{}",
            first.stderr
        );
        let g1 = tree.link("/opt/venvs/small").unwrap();
        let run = apply(&two);
        run.expect_stderr("the requirements changed");
        // This switch replaces a working venv: the new one is on disk first.
        run.expect_stderr("to disk before the switch");
        let g2 = tree.link("/opt/venvs/small").unwrap();
        assert_ne!(g1, g2);
        let gone = tree.run(&["/opt/venvs/small/bin/python", "-c", "import markupsafe"]);
        assert_ne!(
            gone.code, 0,
            "markupsafe left the lock, so it left the venv"
        );
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations").len(),
            2
        );

        // Back to the first lock: the complete generation is switched to, not rebuilt.
        let run = apply(&full);
        assert!(!run.stderr.contains("venv: create"), "{}", run.stderr);
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1.clone()));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import markupsafe"])
            .ok();
        let m = tree.read_json("/var/lib/venvbake/small.json");
        assert_eq!(
            Path::new(m["venv"]["generation"].as_str().unwrap()),
            g1.file_name().unwrap()
        );

        // A third lock: g1 (active before) is kept for rollback, g2 is collected.
        apply(&one);
        let g3 = tree.link("/opt/venvs/small").unwrap();
        let names = generation_dirs(tree, "/opt/venvs/small.generations");
        let expect: Vec<String> = [&g1, &g3]
            .iter()
            .map(|g| g.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, expect);
    });
}

#[test]
fn held_dpkg_lock_is_waited_for_then_named() {
    with_tree("bookworm", |tree| {
        use std::io::BufRead;
        // A real process holds dpkg's frontend lock the way apt does (fcntl).
        let mut holder = std::process::Command::new("/usr/sbin/chroot")
            .arg(&tree.root)
            .args([
                "/usr/bin/python3",
                "-c",
                "import fcntl, time\nf = open('/var/lib/dpkg/lock-frontend', 'w')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(300)",
            ])
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");

        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            // pip in the venv: python3.11-venv must be installed, so apt has work.
            "pip = true\n\n[apt]\nlock_timeout_s = 2\n",
        );
        let run = tree.apply(&profile, &[]);
        run.expect_code(5);
        run.expect_stderr("the dpkg lock was still held after 2 s");
        assert!(
            run.stderr
                .contains(&format!("python3 (pid {})", holder.id())),
            "names the holder:\n{}",
            run.stderr
        );
        assert!(!tree.path("/opt/venvs/small").exists());

        // Released: the same apply goes through.
        holder.kill().unwrap();
        holder.wait().unwrap();
        tree.apply(&profile, &[]).ok();
    });
}

/// `apply --format json`: what Ansible's role reads to report `changed`.
#[test]
fn apply_as_json_says_what_changed() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let two = small_two_lock(dir.path());
        let wh = wheelhouse();
        let apply = |lock: &Path| -> serde_json::Value {
            let p = write_profile(dir.path(), "small", "/opt/venvs/small", lock, "");
            let run = tree.apply_from(
                &p,
                &["--wheelhouse", wh.to_str().unwrap(), "--format", "json"],
                &[],
            );
            assert_eq!(run.code, 0, "{}", run.stderr);
            serde_json::from_str(&run.stdout).expect("one JSON object on stdout")
        };
        let first = apply(&two);
        let g1 = tree.link("/opt/venvs/small").unwrap();
        assert_eq!(first["schema_version"], 1);
        assert_eq!(first["changed"], true);
        assert_eq!(first["action"], "build");
        assert_eq!(first["profile"], "small");
        assert_eq!(
            first["generation"],
            g1.file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(first["previous_generation"], serde_json::Value::Null);
        assert_eq!(first["interpreter"], "/opt/venvs/small/bin/python");
        assert_eq!(first["venv"], "/opt/venvs/small");
        assert_eq!(first["manifest"], "/var/lib/venvbake/small.json");
        assert_eq!(first["apt_installed"], serde_json::json!([]));
        assert!(first["duration_s"].as_f64().unwrap() > 0.0);

        let again = apply(&two);
        assert_eq!(again["changed"], false);
        assert_eq!(again["action"], "keep");
        assert_eq!(again["generation"], first["generation"]);

        let changed = apply(&small_lock());
        assert_eq!(changed["changed"], true);
        assert_eq!(changed["previous_generation"], first["generation"]);
        assert_ne!(changed["generation"], first["generation"]);
    });
}
