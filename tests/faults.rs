//! Never a half-built image: verify, rollback and gc, and faults produced
//! for real in real trees (a tampered wheel, two applies at once, SIGKILL in
//! the middle of a build). After each, the fixed path resolves to a complete,
//! working generation and the manifest describes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The two-requirement `small` profile applied to `tree`: its folder, lock,
/// profile file and the generation it built.
fn small_applied(tree: &Tree) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let two = small_two_lock(dir.path());
    let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &two, "");
    tree.apply(&profile, &[]).ok();
    let g1 = tree.link("/opt/venvs/small").unwrap();
    (dir, two, profile, g1)
}

/// SIGKILL to a process started in its own group and everything it started.
fn kill_group(child: &mut std::process::Child) {
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

fn drift_items(report: &serde_json::Value) -> Vec<(String, String)> {
    report["drift"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["kind"].as_str().unwrap().to_string(),
                        d["item"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn verify_rollback_and_gc() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let two = small_two_lock(dir.path());
        let full = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        tree.apply(&full, &[]).ok();
        let g1 = tree.link("/opt/venvs/small").unwrap();
        assert_eq!(verify(tree, "small").0, 0);
        let fewer = write_profile(dir.path(), "small", "/opt/venvs/small", &two, "");
        tree.apply(&fewer, &[]).ok();
        let g2 = tree.link("/opt/venvs/small").unwrap();
        let (code, report) = verify(tree, "small");
        assert_eq!(code, 0, "{report}");
        assert!(report["files_checked"].as_u64().unwrap() > 25, "{report}");

        // Rollback: back to g1, manifest and fact follow, and it verifies clean.
        let rb = venvbake(
            &[
                "rollback",
                fewer.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
        assert_eq!(rb.stdout.trim(), g1.file_name().unwrap().to_str().unwrap());
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1.clone()));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import markupsafe"])
            .ok();
        let m = tree.read_json("/var/lib/venvbake/small.json");
        assert_eq!(
            Path::new(m["venv"]["generation"].as_str().unwrap()),
            g1.file_name().unwrap()
        );
        // The fact holds only what every generation shares; the inventory follows the manifest.
        let fact = tree.read_json("/etc/ansible/facts.d/venvbake.fact");
        assert_eq!(
            fact["profiles"]["small"]["interpreter"],
            "/opt/venvs/small/bin/python"
        );
        let inv = venvbake(
            &[
                "inventory",
                "small",
                "--root",
                tree.root.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[],
        )
        .ok();
        let inv: serde_json::Value = serde_json::from_str(&inv.stdout).unwrap();
        assert_eq!(
            inv["all"]["vars"]["venvbake_generation"],
            m["venv"]["generation"]
        );
        assert_eq!(verify(tree, "small").0, 0);
        // Nothing older than g1: a clear refusal, nothing changed.
        let again = venvbake(
            &[
                "rollback",
                fewer.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
            ],
            &[],
        );
        again.expect_code(2);
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1.clone()));

        // apply converges on the profile again (by switching, not rebuilding); gc keeps 1.
        let run = tree.apply(&fewer, &[]).ok();
        assert!(!run.stderr.contains("venv: create"), "{}", run.stderr);
        assert_eq!(tree.link("/opt/venvs/small"), Some(g2.clone()));
        let gc = venvbake(
            &[
                "gc",
                fewer.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--keep",
                "1",
            ],
            &[],
        )
        .ok();
        assert_eq!(gc.stdout.trim(), g1.file_name().unwrap().to_str().unwrap());
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations"),
            [g2.file_name().unwrap().to_str().unwrap()]
        );
        assert_eq!(verify(tree, "small").0, 0);

        // Tampering is found and named: modified, missing and extra files.
        let site = tree.path("/opt/venvs/small/lib/python3.13/site-packages");
        let mut six = std::fs::read(site.join("six.py")).unwrap();
        six[100] ^= 1;
        std::fs::write(site.join("six.py"), six).unwrap();
        std::fs::remove_file(site.join("jmespath/functions.py")).unwrap();
        std::fs::write(site.join("sitecustomize.py"), "print('owned')\n").unwrap();
        let (code, report) = verify(tree, "small");
        assert_eq!(code, 9, "{report}");
        let items = drift_items(&report);
        assert!(
            items
                .iter()
                .any(|(k, i)| k == "modified" && i.ends_with(": six.py")),
            "{items:?}"
        );
        assert!(
            items
                .iter()
                .any(|(k, i)| k == "missing" && i.ends_with("jmespath/functions.py")),
            "{items:?}"
        );
        assert!(
            items.contains(&("extra".into(), "sitecustomize.py".into())),
            "{items:?}"
        );
    });
}

#[test]
fn tampered_wheel_is_refused_by_hash_and_the_old_generation_stays() {
    with_tree("bookworm", |tree| {
        let (dir, _, _, g1) = small_applied(tree);

        // A copy of the wheelhouse with one byte of one wheel changed.
        let wh = dir.path().join("wheels");
        copy_wheels(&wheelhouse(), &wh, |_| true);
        let markupsafe = std::fs::read_dir(&wh)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("markupsafe-3.0.4-cp311")
            })
            .unwrap();
        let mut bytes = std::fs::read(&markupsafe).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&markupsafe, bytes).unwrap();

        let full = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        let run = venvbake(
            &[
                "apply",
                full.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--wheelhouse",
                wh.to_str().unwrap(),
            ],
            &[],
        );
        run.expect_code(6);
        run.expect_stderr("DO NOT MATCH THE HASHES");
        run.expect_stderr("hint: a file does not match the lock's hash");
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
    });
}

/// Start an apply in its own process group; return it once a stderr line contains `marker`.
fn start_apply_until(
    tree: &Tree,
    profile: &Path,
    marker: &str,
) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args([
            "apply",
            profile.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
            "--progress",
            "plain",
        ])
        .arg("--wheelhouse")
        .arg(wheelhouse())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "apply ended before `{marker}`:\n{}",
            seen.join("")
        );
        seen.push(line.clone());
        if line.contains(marker) {
            break;
        }
    }
    std::thread::spawn(move || for _ in err.lines() {});
    (child, seen)
}

#[test]
fn two_applies_of_one_profile_never_interleave() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        let (mut first, _) = start_apply_until(tree, &profile, "venv: create");
        // The second starts while the first builds: it waits, then finds nothing to do.
        let second = tree.apply(&profile, &[]).ok();
        assert!(first.wait().unwrap().success());
        second.expect_stderr("waiting for another venvbake run on `/opt/venvs/small`");
        second.expect_stderr("nothing changed");
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations").len(),
            1
        );
        assert_eq!(verify(tree, "small").0, 0);
    });
}

#[test]
fn sigkill_during_apt_then_the_next_apply_recovers() {
    with_tree("bookworm", |tree| {
        let (dir, two, _, g1) = small_applied(tree);
        // Now with OS packages to install: killed while apt/dpkg work.
        let with_apt = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &two,
            "\n[apt]\npackages = [\"python3-six\", \"python3-yaml\", \"libyaml-0-2\"]\n",
        );
        let (mut child, _) = start_apply_until(tree, &with_apt, "venvbake: apt: install");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        kill_group(&mut child);
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
        assert_eq!(tree.host_mounts_under_tree(), Vec::<String>::new());
        // Whatever state dpkg was left in, the next apply completes it.
        tree.apply(&with_apt, &[]).ok();
        for pkg in ["python3-six", "python3-yaml"] {
            let st = tree.run(&["dpkg-query", "-W", "-f", "${Status}", pkg]).ok();
            assert_eq!(st.stdout, "install ok installed", "{pkg}");
        }
        assert!(!tree.path("/usr/sbin/policy-rc.d").exists());
        assert_eq!(verify(tree, "small").0, 0);
    });
}

/// SIGKILL to venvbake and everything it started, at the step named by
/// `marker`. Before the switch the old generation must serve; from the switch
/// on either may, but the manifest always describes the one that serves.
fn kill_at(marker: &str, before_switch: bool) {
    let marker = marker.to_string();
    with_tree("bookworm", move |tree| {
        let (dir, _, _, g1) = small_applied(tree);
        let manifest_before = std::fs::read(tree.path("/var/lib/venvbake/small.json")).unwrap();

        let full = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        let (mut child, _) = start_apply_until(tree, &full, &marker);
        kill_group(&mut child);

        // A complete generation serves, the manifest describes it, no mount is left.
        let active = tree.link("/opt/venvs/small").unwrap();
        if before_switch {
            assert_eq!(active, g1, "killed at {marker}");
            assert_eq!(
                std::fs::read(tree.path("/var/lib/venvbake/small.json")).unwrap(),
                manifest_before
            );
        }
        let m = tree.read_json("/var/lib/venvbake/small.json");
        assert_eq!(
            Path::new(m["venv"]["generation"].as_str().unwrap()),
            active.file_name().unwrap()
        );
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
        assert_eq!(tree.host_mounts_under_tree(), Vec::<String>::new());

        // The next apply completes and removes what the killed run left.
        tree.apply(&full, &[]).ok();
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        let gens = generation_dirs(tree, "/opt/venvs/small.generations");
        assert_eq!(
            gens.len(),
            2,
            "g1 kept for rollback, the partial one gone: {gens:?}"
        );
        assert!(gens.contains(&g1.file_name().unwrap().to_string_lossy().into_owned()));
        assert_eq!(verify(tree, "small").0, 0);
        assert!(!tree.path("/usr/sbin/policy-rc.d").exists());
    });
}

/// The venv is made while the wheels unpack (one step of the log).
#[test]
fn sigkill_while_creating_the_venv_and_unpacking() {
    kill_at("venv: create", true);
}

/// Everything unpacked and compiled, nothing checked yet.
#[test]
fn sigkill_after_installing() {
    kill_at("venvbake: unpacked ", true);
}

#[test]
fn sigkill_while_checking() {
    kill_at("venv: check imports", true);
}

#[test]
fn sigkill_while_switching_and_writing_the_manifest() {
    kill_at("venvbake: switch ", false);
}

#[test]
fn full_disk_fails_cleanly_and_loses_nothing() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        // A small file system at the venv's parent: room for one generation, not two.
        let parent = tree.path("/opt/venvs");
        std::fs::create_dir_all(&parent).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &parent,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=96m"),
        )
        .unwrap();
        let two = small_two_lock(dir.path());
        let first = write_profile(dir.path(), "small", "/opt/venvs/small", &two, "");
        tree.apply(&first, &[]).ok();
        let g1 = tree.link("/opt/venvs/small").unwrap();
        let used = |p: &Path| {
            let st = nix::sys::statvfs::statvfs(p).unwrap();
            (st.blocks() - st.blocks_free()) * st.fragment_size()
        };
        let used_after_g1 = used(&parent);
        // Shrink it to half a generation more than there is.
        let size = format!("size={}k", (used_after_g1 + used_after_g1 / 2) / 1024);
        nix::mount::mount(
            None::<&str>,
            &parent,
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            Some(size.as_str()),
        )
        .unwrap();

        let full = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
        let run = tree.apply(&full, &[]);
        assert!(
            run.code == 6 || run.code == 8,
            "exit {}:\n{}",
            run.code,
            run.stderr
        );
        run.expect_stderr("No space left on device");
        run.expect_stderr("hint: the disk");
        // Nothing lost: g1 serves and verifies; the partial generation's space is back.
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations").len(),
            1
        );
        assert!(
            used(&parent) <= used_after_g1 + 64 * 1024,
            "{} > {}",
            used(&parent),
            used_after_g1
        );

        // With room again, the same apply goes through.
        nix::mount::mount(
            None::<&str>,
            &parent,
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            Some("size=96m"),
        )
        .unwrap();
        tree.apply(&full, &[]).ok();
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import markupsafe"])
            .ok();
    });
}

#[test]
fn unreachable_or_misbehaving_index_fails_clearly_and_loses_nothing() {
    with_tree("bookworm", |tree| {
        let (dir, _, _, g1) = small_applied(tree);
        // A download cache of this test's own: the wheels must come from
        // the misbehaving index, not from what other tests cached.
        let cache = dir.path().join("cache");
        let apply_from = |url: &str| {
            let p = write_profile(
                dir.path(),
                "small",
                "/opt/venvs/small",
                &small_lock(),
                &format!("\n[index]\nurl = \"{url}\"\n"),
            );
            tree.apply_from(&p, &[], &[("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())])
        };

        // Nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let run = apply_from(&format!("http://127.0.0.1:{closed}/simple"));
        run.expect_code(6);
        run.expect_stderr("hint: the package index could not be reached");
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1.clone()));

        // The index answers, then drops the connection in the middle of a wheel.
        let (port, stop) = serve_index("markupsafe", None);
        let run = apply_from(&format!("http://127.0.0.1:{port}/simple"));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        run.expect_code(6);
        run.expect_stderr("markupsafe");
        run.expect_stderr("hint: ");
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1));
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations").len(),
            1
        );
    });
}

#[test]
fn hostile_names_modes_and_symlink_escapes() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let two = small_two_lock(dir.path());
        // Shell metacharacters in the venv path: data, never code.
        let odd = "/opt/venvs/odd name;$(touch /tmp/pwned)`touch /tmp/pwned2`";
        let profile = write_profile(dir.path(), "odd", odd, &two, "");
        // A caller with umask 000: venvbake's files are still not group/world-writable.
        let run = Command::new("/bin/sh")
            .args(["-c", "umask 000; exec \"$@\"", "sh", BIN, "apply"])
            .arg(&profile)
            .args([
                "--root",
                tree.root.to_str().unwrap(),
                "--progress",
                "plain",
                "--wheelhouse",
            ])
            .arg(wheelhouse())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        for p in ["/tmp/pwned", "/tmp/pwned2"] {
            assert!(
                !tree.path(p).exists() && !Path::new(p).exists(),
                "{p} was created"
            );
        }
        tree.run(&[&format!("{odd}/bin/python"), "-c", "import six, jmespath"])
            .ok();
        assert_eq!(verify(tree, "odd").0, 0);
        let mut writable = Vec::new();
        let gens = tree.path(&format!("{odd}.generations"));
        walk_modes(&gens, &mut writable);
        for f in [
            "/var/lib/venvbake/odd.json",
            "/etc/ansible/facts.d/venvbake.fact",
        ] {
            let mode = std::fs::metadata(tree.path(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o644, "{f}");
        }
        assert!(writable.is_empty(), "group/world-writable: {writable:?}");

        // A symlink in the image that would carry the venv under /usr is refused.
        std::os::unix::fs::symlink("/usr/lib", tree.path("/opt/escape")).unwrap();
        let sneaky = write_profile(dir.path(), "sneaky", "/opt/escape/venv", &two, "");
        let run = tree.apply(&sneaky, &[]);
        run.expect_code(2);
        run.expect_stderr("leads to `/usr/lib/venv` through a symlink");
        run.expect_stderr("hint: set `[venv] path` to a directory");
        assert!(
            !tree.path("/usr/lib/venv").exists()
                && !tree.path("/usr/lib/venv.generations").exists()
        );

        // A real directory at the fixed path is never touched.
        std::fs::create_dir_all(tree.path("/opt/venvs/handmade/bin")).unwrap();
        std::fs::write(tree.path("/opt/venvs/handmade/bin/keep-me"), "x").unwrap();
        let occupied = write_profile(dir.path(), "handmade", "/opt/venvs/handmade", &two, "");
        let run = tree.apply(&occupied, &[]);
        run.expect_code(8);
        run.expect_stderr("is a real directory");
        assert!(tree.path("/opt/venvs/handmade/bin/keep-me").exists());
        // --adopt moves it aside, records where, and builds the venv in its place.
        let run = venvbake(
            &[
                "apply",
                occupied.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "--adopt",
                "--wheelhouse",
                wheelhouse().to_str().unwrap(),
            ],
            &[],
        )
        .ok();
        run.expect_stderr("moved the existing `/opt/venvs/handmade` aside");
        assert!(tree
            .path("/opt/venvs/handmade.adopted-1/bin/keep-me")
            .exists());
        assert!(tree.link("/opt/venvs/handmade").is_some());
        let m = tree.read_json("/var/lib/venvbake/handmade.json");
        assert_eq!(m["adopted"], "/opt/venvs/handmade.adopted-1");
    });
}

use std::os::unix::fs::PermissionsExt;

fn walk_modes(dir: &Path, writable: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o022 != 0 {
            writable.push(e.path());
        }
        if meta.is_dir() {
            walk_modes(&e.path(), writable);
        }
    }
}

/// A real distribution upgrade (Debian 12 to 13) moves the system Python from
/// 3.11 to 3.13 under the venv: verify reports it, apply rebuilds.
#[test]
fn python_upgraded_under_the_venv_is_detected_and_rebuilt() {
    with_tree("bookworm", |tree| {
        let (_dir, _, profile, g1) = small_applied(tree);

        // bookworm -> trixie, the way an administrator does it.
        let sources = tree.path("/etc/apt/sources.list");
        let text = std::fs::read_to_string(&sources).unwrap();
        std::fs::write(&sources, text.replace("bookworm", "trixie")).unwrap();
        tree.mount_proc();
        let policy = tree.path("/usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).unwrap();
        tree.run(&["apt-get", "update", "-q"]).ok();
        tree.run(&[
            "/usr/bin/env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "--no-install-recommends",
            "full-upgrade",
        ])
        .ok();
        std::fs::remove_file(&policy).unwrap();
        let v = tree
            .run(&[
                "/usr/bin/python3",
                "-c",
                "import sys; print(sys.version_info[1])",
            ])
            .ok();
        assert_eq!(v.stdout.trim(), "13");

        let (code, report) = verify(tree, "small");
        assert_eq!(code, 9, "{report}");
        let items = drift_items(&report);
        assert!(items.iter().any(|(k, _)| k == "python"), "{items:?}");

        let run = tree.apply(&profile, &[]).ok();
        run.expect_stderr("building generation g2-");
        assert_ne!(tree.link("/opt/venvs/small"), Some(g1));
        let out = tree
            .run(&[
                "/opt/venvs/small/bin/python",
                "-c",
                "import sys, six, jmespath; print(sys.version_info[1])",
            ])
            .ok();
        assert_eq!(out.stdout.trim(), "13");
        let m = tree.read_json("/var/lib/venvbake/small.json");
        assert!(m["python"]["version"].as_str().unwrap().starts_with("3.13"));
        assert_eq!(verify(tree, "small").0, 0);
    });
}
