//! Right answers under misuse and concurrency, in real trees: applies of
//! several profiles at once on one target, a second profile naming another's
//! venv path, a refused first build, a `plan` that must change nothing, and
//! an unprivileged user with `--root`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn six_lock(dir: &Path) -> PathBuf {
    lock_subset(&small_lock(), &["six"], &dir.join("six.txt"))
}

fn drift_kinds(report: &serde_json::Value) -> Vec<String> {
    report["drift"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["kind"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

const FACT: &str = "/etc/ansible/facts.d/venvbake.fact";

fn fact_names(tree: &Tree) -> Vec<String> {
    let fact = tree.read_json(FACT);
    let mut names: Vec<String> = fact["profiles"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Every file of the tree's overlay upper layer: what runs in the tree have
/// written in it. (Directories are left out: a temporary file made and
/// removed again, as apt-cache does in `/tmp`, copies its directory up.)
fn changed_paths(tree: &Tree) -> Vec<String> {
    let upper = tree.root.parent().unwrap().join("upper");
    let mut out = Vec::new();
    let mut stack = vec![upper.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(&upper).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn concurrent_applies_of_different_profiles_keep_every_fact_entry() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lock = six_lock(dir.path());
        let mut all = Vec::new();
        for round in 0..2 {
            let profiles: Vec<(String, PathBuf)> = (0..4)
                .map(|i| {
                    let name = format!("c{round}{i}");
                    let p =
                        write_profile(dir.path(), &name, &format!("/opt/venvs/{name}"), &lock, "");
                    (name, p)
                })
                .collect();
            // All four start at once, each its own process, as four
            // provisioners of one build host would.
            let children: Vec<_> = profiles
                .iter()
                .map(|(_, p)| {
                    Command::new(BIN)
                        .args(["apply", p.to_str().unwrap(), "--root"])
                        .arg(&tree.root)
                        .args(["--progress", "plain", "--wheelhouse"])
                        .arg(wheelhouse())
                        .env_clear()
                        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for c in children {
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            all.extend(profiles.into_iter().map(|(n, _)| n));
            assert_eq!(
                fact_names(tree),
                all,
                "every applied profile is in the fact"
            );
        }
        for name in &all {
            assert_eq!(verify(tree, name).0, 0, "{name}");
        }

        // Several profiles: `inventory` wants a name, and says how to give it.
        let run = venvbake(&["inventory", "--root", tree.root.to_str().unwrap()], &[]);
        run.expect_code(2);
        run.expect_stderr("hint: name one: `venvbake inventory c00`");

        // Nothing older to roll back to: said, with what to do.
        let p00 = dir.path().join("c00.toml");
        let run = venvbake(
            &[
                "rollback",
                p00.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
            ],
            &[],
        );
        run.expect_code(2);
        assert!(
            run.stderr.contains("no complete generation older than")
                && run
                    .stderr
                    .contains("stays active; `[venv] keep_generations`"),
            "{}",
            run.stderr
        );

        // A profile's entry lost from the fact is drift, and a re-apply
        // repairs it although the venv itself is up to date.
        let fact_path = tree.path(FACT);
        let mut fact = tree.read_json(FACT);
        fact["profiles"].as_object_mut().unwrap().remove("c01");
        fact["profiles"]["c02"]["venv"] = "/opt/venvs/elsewhere".into();
        std::fs::write(&fact_path, serde_json::to_string(&fact).unwrap()).unwrap();
        for name in ["c01", "c02"] {
            let (code, report) = verify(tree, name);
            assert_eq!(code, 9, "{report}");
            assert_eq!(drift_kinds(&report), ["fact"], "{report}");
        }
        assert_eq!(verify(tree, "c03").0, 0);
        for name in ["c01", "c02"] {
            let p = dir.path().join(format!("{name}.toml"));
            let run = tree.apply(&p, &[]).ok();
            assert!(
                !run.stderr.contains("building generation"),
                "{}",
                run.stderr
            );
            assert_eq!(verify(tree, name).0, 0, "{name} repaired");
        }
        assert_eq!(fact_names(tree), all);
    });
}

#[test]
fn one_venv_path_has_one_owner_until_it_is_handed_over() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lock = six_lock(dir.path());
        let old = write_profile(dir.path(), "old", "/opt/venvs/shared", &lock, "");
        let new = write_profile(dir.path(), "new", "/opt/venvs/shared", &lock, "");
        tree.apply(&old, &[]).ok();
        let g_old = tree.link("/opt/venvs/shared").unwrap();

        // A second profile naming the same path is refused, by plan and apply.
        tree.case("plan", &new)
            .expect(2)
            .expect_stderr("belongs to profile `old`")
            .expect_stderr("--take-over old");
        tree.case("apply", &new)
            .wheelhouse()
            .expect(2)
            .expect_stderr("belongs to profile `old`");
        let g = g_old.file_name().unwrap().to_string_lossy().into_owned();
        tree.case("apply", &new)
            .args(["--take-over", "someone"])
            .expect(2)
            .expect_stderr("belongs to profile `old`, not `someone`")
            .expect_stderr(&format!(
                "state: `/opt/venvs/shared` still serves generation {g}, as before this apply"
            ));
        assert_eq!(tree.link("/opt/venvs/shared").as_ref(), Some(&g_old));
        assert_eq!(verify(tree, "old").0, 0);

        // Handed over on purpose: recorded, and the old name no longer
        // answers for the path.
        let take_over = || {
            tree.case("apply", &new)
                .wheelhouse()
                .args(["--take-over", "old"])
        };
        take_over().expect(0);
        let m = tree.read_json("/var/lib/venvbake/new.json");
        assert_eq!(m["taken_over_from"], "old");
        assert_eq!(m["profile"]["name"], "new");
        assert_eq!(fact_names(tree), ["new"]);
        assert_eq!(verify(tree, "new").0, 0);
        let run = venvbake(
            &["inventory", "--root", tree.root.to_str().unwrap(), "old"],
            &[],
        );
        assert_ne!(run.code, 0, "{}", run.stdout);
        assert!(!run.stdout.contains("\"new\""), "{}", run.stdout);
        assert_ne!(verify(tree, "old").0, 0);
        // The same command line again changes nothing (a re-run of a build).
        take_over().expect(0).expect_stderr("nothing changed");
        assert_eq!(
            tree.read_json("/var/lib/venvbake/new.json")["taken_over_from"],
            "old"
        );
    });
}

#[test]
fn a_refused_first_build_and_a_plan_leave_nothing_behind() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let p = write_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            "[python]\nprefer = \"os\"\n",
        );
        // `plan` (which asks apt about OS packages) changes nothing at all.
        let before = changed_paths(tree);
        let run = tree.case("plan", &p).expect(0);
        assert!(run.stdout.contains("small"), "{}", run.stdout);
        assert_eq!(changed_paths(tree), before, "plan wrote into the tree");

        // A first build refused for a missing wheel leaves nothing of venvbake.
        let wh = dir.path().join("wheels");
        copy_wheels(&wheelhouse(), &wh, |f| !f.starts_with("six-"));
        let planned = json_of(&[
            "plan",
            p.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
            "--wheelhouse",
            wh.to_str().unwrap(),
        ]);
        assert_eq!(planned["venv"]["route"]["kind"], "native", "{planned}");
        let run = tree.apply_from(&p, &["--wheelhouse", wh.to_str().unwrap()], &[]);
        run.expect_code(6);
        run.expect_stderr("state: no venv of this profile is at `/opt/venvs/small`");
        assert!(
            !tree.path("/opt/venvs").exists(),
            "left behind: {:?}",
            std::fs::read_dir(tree.path("/opt/venvs"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        assert!(!tree.path("/var/lib/venvbake").exists());

        // A later refused build leaves only what was there before.
        let other = tempfile::tempdir().unwrap();
        let one = write_profile(
            other.path(),
            "small",
            "/opt/venvs/small",
            &lock_subset(&small_lock(), &["jmespath"], &other.path().join("one.txt")),
            "",
        );
        tree.apply(&one, &[]).ok();
        let g1 = generation_dirs(tree, "/opt/venvs/small.generations");
        let run = tree.apply_from(&p, &["--wheelhouse", wh.to_str().unwrap()], &[]);
        run.expect_code(6);
        assert_eq!(generation_dirs(tree, "/opt/venvs/small.generations"), g1);
        let listed: Vec<String> = std::fs::read_dir(tree.path("/opt/venvs/small.generations"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, g1, "nothing but the generations");
        assert_eq!(verify(tree, "small").0, 0);
    });
}

/// The binary, copied where an unprivileged user can run it.
fn unprivileged_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("venvbake");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn without_root_a_root_option_fails_at_once_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = unprivileged_bin(dir.path());
    let lock = six_lock(dir.path());
    let profile = write_profile(dir.path(), "t", "/opt/venvs/t", &lock, "");
    for f in [&lock, &profile] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (p, t) = (profile.to_str().unwrap(), tree.to_str().unwrap());
    let commands: [&[&str]; 9] = [
        &["apply", p, "--root", t],
        &["plan", p, "--root", t],
        &["map", "lxml", "--root", t],
        &["verify", p, "--root", t],
        &["rollback", p, "--root", t],
        &["gc", p, "--root", t],
        &["bundle", p, "--root", t, "-o", "/tmp/x.bundle"],
        &["inventory", "t", "--root", t],
        &["sbom", "t", "--root", t, "--format", "spdx"],
    ];
    for args in commands {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("`--root` needs root") && stderr.contains("hint: run venvbake as root"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.matches("error:").count(), 1, "{args:?}: {stderr}");
        assert!(
            std::fs::read_dir(&tree).unwrap().next().is_none(),
            "{args:?} created something in the tree"
        );
    }
    // A root that is not a directory is a typo: bad input.
    for bad in ["/nonexistent/tree", profile.to_str().unwrap()] {
        let run = venvbake(&["plan", p, "--root", bad], &[]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        run.expect_stderr("is not a directory");
    }
}

/// six's real wheel with one line added to `six.py` after it was built:
/// its RECORD still lists the old hash and size. Returns the wheelhouse and
/// a lock pinning the doctored archive's own hash (as a lock made from it
/// would: the lock pins the archive, not what is inside).
fn doctored_six(dir: &Path) -> (PathBuf, PathBuf) {
    use std::io::{Read, Write};
    let name = "six-1.17.0-py2.py3-none-any.whl";
    let wh = dir.join("doctored");
    std::fs::create_dir_all(&wh).unwrap();
    let mut src =
        zip::ZipArchive::new(std::fs::File::open(wheelhouse().join(name)).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(wh.join(name)).unwrap());
    for i in 0..src.len() {
        let mut m = src.by_index(i).unwrap();
        let member = m.name().unwrap().into_owned();
        let mut data = Vec::new();
        m.read_to_end(&mut data).unwrap();
        if member == "six.py" {
            data.extend_from_slice(b"\nDOCTORED = True\n");
        }
        out.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap();
    let sha = venvbake::codec::hex_sha256(&std::fs::read(wh.join(name)).unwrap());
    let lock = dir.join("doctored.txt");
    std::fs::write(&lock, format!("six==1.17.0 --hash=sha256:{sha}\n")).unwrap();
    (wh, lock)
}

#[test]
fn a_wheel_whose_files_disagree_with_its_record_is_refused() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let one = lock_subset(&small_lock(), &["jmespath"], &dir.path().join("one.txt"));
        let p = write_profile(dir.path(), "small", "/opt/venvs/small", &one, "");
        tree.apply(&p, &[]).ok();
        let g1 = tree.link("/opt/venvs/small").unwrap();

        let (wh, lock) = doctored_six(dir.path());
        let p = write_profile(dir.path(), "small", "/opt/venvs/small", &lock, "");
        let run = tree.apply_from(&p, &["--wheelhouse", wh.to_str().unwrap()], &[]);
        run.expect_code(6);
        assert!(
            run.stderr.contains(
                "six-1.17.0-py2.py3-none-any.whl` does not match its own RECORD: `six.py` has sha256="
            ),
            "{}",
            run.stderr
        );
        assert!(run
            .stderr
            .contains("hint: the wheel's files disagree with its own RECORD"));
        assert_eq!(tree.link("/opt/venvs/small"), Some(g1));
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/small.generations").len(),
            1
        );
        tree.run(&["/opt/venvs/small/bin/python", "-c", "import jmespath"])
            .ok();
        assert_eq!(verify(tree, "small").0, 0);
    });
}

/// `allow_sdist`: pip builds docopt (an sdist only) into a wheel and
/// installs that, so its files are in a RECORD: the venv passes its own
/// verify, bundles, and a re-apply changes nothing.
#[test]
fn a_venv_with_a_source_distribution_verifies_and_bundles() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wheels");
        copy_wheels(&wheelhouse(), &wh, |f| f.starts_with("six-"));
        copy_wheels(&sdist_files(), &wh, |f| !f.starts_with('.'));
        let lock = dir.path().join("lock.txt");
        let mut text = std::fs::read_to_string(six_lock(dir.path())).unwrap();
        text.push_str(&format!(
            "docopt==0.6.2 \\\n    --hash=sha256:{DOCOPT_SDIST_SHA256}\n"
        ));
        std::fs::write(&lock, text).unwrap();
        let p = write_profile(
            dir.path(),
            "sd",
            "/opt/venvs/sd",
            &lock,
            "allow_sdist = true\n",
        );
        let source = ["--wheelhouse", wh.to_str().unwrap()];
        tree.apply_from(&p, &source, &[]).ok();
        tree.run(&["/opt/venvs/sd/bin/python", "-c", "import docopt, six"])
            .ok();
        let site = tree.path("/opt/venvs/sd/lib/python3.11/site-packages");
        assert!(
            site.join("docopt-0.6.2.dist-info/RECORD").is_file(),
            "docopt was not installed from a wheel: {:?}",
            std::fs::read_dir(&site)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        );
        let (code, report) = verify(tree, "sd");
        assert_eq!(code, 0, "{report}");
        let bundle = dir.path().join("sd.bundle");
        venvbake(
            &[
                "bundle",
                p.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
                "-o",
                bundle.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
        let run = tree.apply_from(&p, &source, &[]).ok();
        run.expect_stderr("nothing changed");
    });
}

/// `command` run by `sh` on a pseudo-terminal (`script` gives it one as
/// stdin, stdout and stderr, and copies what it drew to our stdout).
fn on_a_pty(command: &str) -> std::process::Output {
    Command::new("script")
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// On a terminal, the spinner is gone from the screen when apply ends: the
/// last lines a person sees are venvbake's final message and the
/// interpreter path (the screen is rendered from the real pty output).
#[test]
fn on_a_terminal_no_spinner_frame_is_left_on_screen() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let p = write_profile(
            dir.path(),
            "tty",
            "/opt/venvs/tty",
            &six_lock(dir.path()),
            "",
        );
        // The pty is as large as the screen it is rendered on below.
        let command = format!(
            "stty cols 160 rows 60; {BIN} apply {} --root {} --wheelhouse {}",
            p.display(),
            tree.root.display(),
            wheelhouse().display()
        );
        let out = on_a_pty(&command);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
        let mut screen = vt100::Parser::new(size(60), size(160), 0);
        screen.process(&out.stdout);
        let rows: Vec<String> = screen.screen().rows(0, 160).collect();
        let text = rows.join("\n");
        let lines: Vec<&str> = rows
            .iter()
            .map(|r| r.trim_end())
            .filter(|l| !l.is_empty())
            .collect();
        let spinner = |l: &&str| l.chars().any(|c| ('\u{2800}'..='\u{28ff}').contains(&c));
        assert!(
            !lines.iter().any(spinner),
            "a spinner frame is left on screen:\n{text}"
        );
        let n = lines.len();
        assert!(n >= 2, "{text}");
        assert_eq!(lines[n - 1].trim(), "/opt/venvs/tty/bin/python", "{text}");
        assert!(lines[n - 2].contains("profile `tty` applied"), "{text}");
    });
}

/// On a terminal, downloads from an index show a transfer bar (bytes, rate,
/// files done) while they run, and it is gone when apply ends; the same
/// apply without a terminal prints plain lines only.
#[test]
fn on_a_terminal_downloads_show_a_transfer_bar() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let index = TestIndex::start(&[], None);
        let p = write_profile(
            dir.path(),
            "bar",
            "/opt/venvs/bar",
            &small_lock(),
            &format!("\n[index]\nurl = \"{}\"\n", index.url()),
        );
        let cache = dir.path().join("cache");
        let command = format!(
            "stty cols 160 rows 60; {BIN} apply {} --root {} --cache-dir {}",
            p.display(),
            tree.root.display(),
            cache.display()
        );
        let out = on_a_pty(&command);
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{raw}");
        // What was drawn while it ran.
        assert!(raw.contains(" of 3 files"), "no transfer bar drawn:\n{raw}");
        assert!(raw.contains("/s, "), "no rate shown:\n{raw}");
        // What is left on the screen at the end.
        let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
        let mut screen = vt100::Parser::new(size(60), size(160), 0);
        screen.process(&out.stdout);
        let text: Vec<String> = screen.screen().rows(0, 160).collect();
        let text = text.join("\n");
        assert!(
            !text.contains(" of 3 files"),
            "the bar is left on screen:\n{text}"
        );
        assert!(text.contains("downloaded six-1.17.0"), "{text}");
        assert!(
            text.trim_end().ends_with("/opt/venvs/bar/bin/python"),
            "{text}"
        );
        // Without a terminal: plain lines, no bar.
        let p2 = write_profile(
            dir.path(),
            "plain",
            "/opt/venvs/plain",
            &small_lock(),
            &format!("\n[index]\nurl = \"{}\"\n", index.url()),
        );
        let run = venvbake(
            &[
                "apply",
                p2.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
        assert!(!run.stderr.contains(" of 3 files"), "{}", run.stderr);
        run.expect_stderr("venv: 3 wheel(s)");
    });
}
