//! The native installer against pip, in real bookworm (3.11) and trixie
//! (3.13) trees: the same lock installed both ways into one tree gives the
//! same files, the same scripts and the same distributions; pip itself
//! accepts what venvbake installed (`pip check`, `pip show`, `pip
//! uninstall`); console scripts and `.data/scripts` run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;

fn lock() -> PathBuf {
    Path::new(REPO).join("tests/data/pinned-extra.requirements.txt")
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(base, &p, out);
            } else if t.is_file() {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A script's bytes without its first (`#!`) line.
fn body(bytes: &[u8]) -> &[u8] {
    let at = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    &bytes[at..]
}

/// The generations of `native` and `viapip` in `tree` hold the same files:
/// modules, byte-code, metadata (RECORD and INSTALLER aside, by content), and
/// the same scripts, each starting with its own generation's interpreter.
fn same_as_pip(tree: &Tree, native: &str, viapip: &str, minor: &str) -> (PathBuf, PathBuf) {
    let gen = |name: &str| {
        tree.path(&format!("/opt/venvs/{name}"))
            .canonicalize()
            .unwrap()
    };
    let (n, p) = (gen(native), gen(viapip));
    let site = format!("lib/python{minor}/site-packages");
    let (nf, pf) = (files(&n.join(&site)), files(&p.join(&site)));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<BTreeSet<_>>();
    let only_native: Vec<_> = names(&nf).difference(&names(&pf)).cloned().collect();
    let only_pip: Vec<_> = names(&pf).difference(&names(&nf)).cloned().collect();
    assert!(
        only_native.is_empty() && only_pip.is_empty(),
        "only native: {only_native:?}\nonly pip: {only_pip:?}"
    );
    assert!(
        nf.keys().filter(|k| k.ends_with(".pyc")).count() > 10,
        "byte-code is compiled"
    );
    for (k, v) in &nf {
        if k.ends_with(".pyc") || k.ends_with("/RECORD") || k.ends_with("/INSTALLER") {
            continue;
        }
        assert!(pf[k] == *v, "{k} differs from pip's");
    }
    let (nb, pb) = (files(&n.join("bin")), files(&p.join("bin")));
    assert_eq!(names(&nb), names(&pb));
    for (k, v) in &nb {
        if v.starts_with(b"#!/opt/venvs/") {
            let shebang = format!(
                "#!/opt/venvs/{native}.generations/{}/bin/python\n",
                n.file_name().unwrap().to_string_lossy()
            );
            assert!(v.starts_with(shebang.as_bytes()), "{k}");
            assert_eq!(body(v), body(&pb[k]), "{k} differs from pip's");
        }
    }
    (n, p)
}

fn native_matches_pip(suite: &str, minor: &'static str) {
    with_tree(suite, move |tree| {
        let dir = tempfile::tempdir().unwrap();
        let native = write_profile(
            dir.path(),
            "native",
            "/opt/venvs/native",
            &lock(),
            "pip = true\n",
        );
        let run = tree.apply(&native, &[]).ok();
        assert!(
            run.stderr.contains("(native installer,"),
            "the wheelhouse build takes the native path:\n{}",
            run.stderr
        );
        run.expect_stderr("compiled ");
        let viapip = write_profile(
            dir.path(),
            "viapip",
            "/opt/venvs/viapip",
            &lock(),
            "installer = \"pip\"\npip = true\n",
        );
        let run = tree.apply(&viapip, &[]).ok();
        run.expect_stderr("installer: pip (`[venv] installer = \"pip\"`)");

        let (n, _) = same_as_pip(tree, "native", "viapip", minor);
        let site = format!("lib/python{minor}/site-packages");
        let nb = files(&n.join("bin"));
        for script in ["pip", "pip3", &format!("pip{minor}"), "cowsay", "jp.py"] {
            assert!(nb.contains_key(script), "bin/{script} missing");
        }

        // The venv works, and pip accepts what venvbake installed.
        let py = "/opt/venvs/native/bin/python";
        tree.run(&[py, "-m", "pip", "check"]).ok();
        let cow = tree
            .run(&["/opt/venvs/native/bin/cowsay", "-t", "baked"])
            .ok();
        assert!(cow.stdout.contains("baked"), "{}", cow.stdout);
        let jp = tree
            .run(&[
                "/bin/sh",
                "-c",
                "echo '{\"a\": 42}' | /opt/venvs/native/bin/jp.py a",
            ])
            .ok();
        assert_eq!(jp.stdout.trim(), "42");
        let show = tree.run(&[py, "-m", "pip", "show", "-f", "jmespath"]).ok();
        assert!(
            show.stdout.contains("jmespath/__init__.py"),
            "{}",
            show.stdout
        );
        let m = tree.read_json("/var/lib/venvbake/native.json");
        let dists: BTreeSet<String> = m["distributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_lowercase())
            .collect();
        assert!(
            dists.contains("pip") && dists.contains("cowsay"),
            "{dists:?}"
        );
        let v = venvbake(
            &["verify", "--root", tree.root.to_str().unwrap(), "native"],
            &[],
        )
        .ok();
        assert!(v.stdout.contains("is clean"), "{}", v.stdout);
        // Byte-code is checked-hash, so a later import never rewrites it.
        let before = files(&n.join(&site));
        tree.run(&[py, "-c", "import jmespath, cowsay, markupsafe"])
            .ok();
        assert!(
            files(&n.join(&site)) == before,
            "importing changed the venv"
        );

        // pip uninstalls by venvbake's RECORD: files and scripts go.
        tree.run(&[py, "-m", "pip", "uninstall", "-y", "jmespath"])
            .ok();
        assert!(!n.join(&site).join("jmespath").exists());
        assert!(!n.join("bin/jp.py").exists());
    });
}

#[test]
fn native_install_matches_pip_on_bookworm() {
    native_matches_pip("bookworm", "3.11");
}

#[test]
fn native_install_matches_pip_on_trixie() {
    native_matches_pip("trixie", "3.13");
}

/// The default, `pip = false`: a venv without pip, like uv's, by either installer.
#[test]
fn a_venv_without_pip() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lean = write_profile(dir.path(), "lean", "/opt/venvs/lean", &lock(), "");
        let run = tree.apply(&lean, &[]).ok();
        run.expect_stderr("(native installer, 3 wheels)");
        let viapip = write_profile(
            dir.path(),
            "leanpip",
            "/opt/venvs/leanpip",
            &lock(),
            "installer = \"pip\"\n",
        );
        tree.apply(&viapip, &[]).ok();
        let (n, _) = same_as_pip(tree, "lean", "leanpip", "3.11");
        assert!(!n.join("bin/pip").exists());
        let site = n.join("lib/python3.11/site-packages");
        assert!(!site.join("pip").exists() && !site.join("setuptools").exists());
        let m = tree.read_json("/var/lib/venvbake/lean.json");
        assert_eq!(
            m["distributions"].as_array().unwrap().len(),
            3,
            "{}",
            m["distributions"]
        );
        tree.run(&["/opt/venvs/lean/bin/cowsay", "-t", "lean"]).ok();
        let v = venvbake(
            &["verify", "--root", tree.root.to_str().unwrap(), "lean"],
            &[],
        )
        .ok();
        assert!(v.stdout.contains("is clean"), "{}", v.stdout);
        // Turning pip back on is a change of inputs: a new generation, with pip.
        let fat = write_profile(
            dir.path(),
            "lean",
            "/opt/venvs/lean",
            &lock(),
            "pip = true\n",
        );
        tree.apply(&fat, &[]).ok();
        assert!(tree.path("/opt/venvs/lean/bin/pip").exists());
    });
}

/// A requirement without a wheel in the wheelhouse: refused with the fetch
/// command, or, with `allow_sdist`, handed to pip (which then reports it).
#[test]
fn a_missing_wheel_is_named_or_left_to_pip() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wheels");
        copy_wheels(&wheelhouse(), &wh, |f| !f.starts_with("cowsay"));
        let apply =
            |profile: &Path| tree.apply_from(profile, &["--wheelhouse", wh.to_str().unwrap()], &[]);
        let strict = write_profile(dir.path(), "strict", "/opt/venvs/strict", &lock(), "");
        let run = apply(&strict);
        run.expect_code(6);
        run.expect_stderr("the wheelhouse has no file of `cowsay==6.1` for Python 3.11");
        run.expect_stderr("hint: fill the wheelhouse");
        run.expect_stderr("venvbake fetch");
        assert!(!tree.path("/opt/venvs/strict").exists());
        assert!(
            !tree.path("/opt/venvs/strict.generations").exists(),
            "a refused first build leaves nothing behind"
        );

        let lenient = write_profile(
            dir.path(),
            "lenient",
            "/opt/venvs/lenient",
            &lock(),
            "allow_sdist = true\n",
        );
        let run = apply(&lenient);
        run.expect_code(6);
        run.expect_stderr("installer: pip (");
        run.expect_stderr("`allow_sdist` lets pip build it");
        run.expect_stderr("cowsay");
    });
}

/// Make `dir/NAME-1.0-py3-none-any.whl` whose package's `__init__.py` is
/// `init`, with the host's Python; returns the wheel's sha256.
fn make_wheel(dir: &Path, name: &str, init: &str) -> String {
    make_wheel_requiring(dir, name, init, &[])
}

/// [`make_wheel`] whose METADATA requires `requires`.
fn make_wheel_requiring(dir: &Path, name: &str, init: &str, requires: &[&str]) -> String {
    const MAKE: &str = r#"
import base64, hashlib, sys, zipfile
dest, name, init = sys.argv[1:4]
requires = "".join("Requires-Dist: %s\n" % r for r in sys.argv[4:])
info = name + "-1.0.dist-info"
files = {
    name + "/__init__.py": init.encode(),
    info + "/METADATA": ("Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n%s" % (name, requires)).encode(),
    info + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: venvbake-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
rows = []
for p, data in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows.append("%s,sha256=%s,%d" % (p, h, len(data)))
rows.append(info + "/RECORD,,")
files[info + "/RECORD"] = ("\n".join(rows) + "\n").encode()
path = "%s/%s-1.0-py3-none-any.whl" % (dest, name)
with zipfile.ZipFile(path, "w") as z:
    for p, data in files.items():
        z.writestr(p, data)
print(hashlib.sha256(open(path, "rb").read()).hexdigest())
"#;
    let out = std::process::Command::new("python3")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-I", "-c", MAKE])
        .arg(dir)
        .args([name, init])
        .args(requires)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A module that raises at import, and one that kills its interpreter: the
/// build stops before the switch and names both (and nothing else), and the
/// previous generation stays active. A module that only warns at import
/// passes, and its warning is in the log; one that starts a thread does not
/// hold the build up. The wheels are made here: no real distribution is
/// broken in these ways on purpose.
#[test]
fn a_module_that_fails_to_import_stops_the_switch() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wheels");
        copy_wheels(&wheelhouse(), &wh, |_| true);
        let add = |text: &mut String, name: &str, init: &str| {
            let sha = make_wheel(&wh, name, init);
            text.push_str(&format!("{name}==1.0 \\\n    --hash=sha256:{sha}\n"));
        };
        let mut text = std::fs::read_to_string(lock()).unwrap();
        add(
            &mut text,
            "noisymod",
            "import warnings\nwarnings.warn('noisymod: libfoo is older than 2.0')\n",
        );
        // Starts a thread that would keep an interpreter from exiting for
        // 20 s and then leave a mark: the check must not wait for it.
        add(
            &mut text,
            "threadmod",
            "import threading, time\n\
             def later():\n    time.sleep(20)\n    open('/tmp/threadmod-outlived', 'w').close()\n\
             threading.Thread(target=later).start()\n",
        );
        let good_lock = dir.path().join("good.txt");
        std::fs::write(&good_lock, &text).unwrap();
        add(
            &mut text,
            "brokenmod",
            "raise RuntimeError('boom at import')\n",
        );
        add(&mut text, "crashmod", "import os\nos.abort()\n");
        let broken_lock = dir.path().join("broken.txt");
        std::fs::write(&broken_lock, text).unwrap();
        let source = ["--wheelhouse", wh.to_str().unwrap()];

        let good = write_profile(dir.path(), "imp", "/opt/venvs/imp", &good_lock, "");
        let run = tree.apply_from(&good, &source, &[]).ok();
        assert!(
            run.stderr
                .contains("UserWarning: noisymod: libfoo is older than 2.0"),
            "the import warning is not in the log: {}",
            run.stderr
        );
        assert!(
            !tree.path("/tmp/threadmod-outlived").exists(),
            "the import check waited for a thread an import started"
        );
        let before = tree.link("/opt/venvs/imp").unwrap();

        let bad = write_profile(dir.path(), "imp", "/opt/venvs/imp", &broken_lock, "");
        let run = tree.apply_from(&bad, &source, &[]);
        run.expect_code(7);
        run.expect_stderr("import brokenmod: RuntimeError: boom at import");
        run.expect_stderr("import crashmod: the interpreter was killed by a signal");
        for fine in ["cowsay", "jmespath", "markupsafe", "noisymod"] {
            assert!(
                !run.stderr.contains(&format!("import {fine}:")),
                "{}",
                run.stderr
            );
        }
        run.expect_stderr("hint: ");
        assert_eq!(tree.link("/opt/venvs/imp").unwrap(), before);
        assert_eq!(
            generation_dirs(tree, "/opt/venvs/imp.generations").len(),
            1,
            "the failed generation was left behind"
        );
        tree.run(&["/opt/venvs/imp/bin/cowsay", "-t", "still here"])
            .ok();

        // What cannot import inside an image build is left out of the
        // import check on purpose: planned, recorded, and built.
        let skip = "import_check_skip = [\"brokenmod\", \"CrashMod\"]\n";
        let skipping = write_profile(dir.path(), "imp", "/opt/venvs/imp", &broken_lock, skip);
        let plan = venvbake(
            &[
                "plan",
                skipping.to_str().unwrap(),
                "--root",
                tree.root.to_str().unwrap(),
            ],
            &[],
        )
        .ok();
        assert!(
            plan.stdout
                .contains("import check skips brokenmod, crashmod"),
            "{}",
            plan.stdout
        );
        let run = tree.apply_from(&skipping, &source, &[]).ok();
        assert!(!run.stderr.contains("import brokenmod"), "{}", run.stderr);
        let m = tree.read_json("/var/lib/venvbake/imp.json");
        assert_eq!(
            m["venv"]["import_check_skip"],
            serde_json::json!(["brokenmod", "crashmod"])
        );
        assert_ne!(tree.link("/opt/venvs/imp").unwrap(), before);
        let v = venvbake(
            &["verify", "--root", tree.root.to_str().unwrap(), "imp"],
            &[],
        );
        v.expect_code(0);

        // The dependency check still covers a skipped distribution.
        let mut text = std::fs::read_to_string(&broken_lock).unwrap();
        let sha = make_wheel_requiring(&wh, "needy", "X = 1\n", &["absentdep>=1"]);
        text.push_str(&format!("needy==1.0 \\\n    --hash=sha256:{sha}\n"));
        let needy_lock = dir.path().join("needy.txt");
        std::fs::write(&needy_lock, text).unwrap();
        let skip = "import_check_skip = [\"brokenmod\", \"crashmod\", \"needy\"]\n";
        let needy = write_profile(dir.path(), "imp", "/opt/venvs/imp", &needy_lock, skip);
        let run = tree.apply_from(&needy, &source, &[]);
        run.expect_code(7);
        run.expect_stderr("needy 1.0 requires absentdep, which is not installed.");
    });
}

/// A venv without pip, from a wheelhouse, into a tree that has python3 but
/// not python3.X-venv: no apt work at all (the stdlib's `venv` module makes
/// the venv), the tree's dpkg status byte-identical, and `plan` says so.
/// With `pip = true` the same profile does install python3.X-venv (pip in
/// the venv comes from the wheel ensurepip carries).
#[test]
fn a_pip_less_venv_needs_no_apt_work_in_each_release() {
    for (suite, minor) in [("bookworm", "3.11"), ("trixie", "3.13"), ("forky", "3.14")] {
        with_tree(suite, move |tree| {
            let dir = tempfile::tempdir().unwrap();
            let p = write_profile(dir.path(), "bare", "/opt/venvs/bare", &small_lock(), "");
            let status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
            let venv_pkg = format!("python{minor}-venv");
            let plan = tree.case("plan", &p).wheelhouse().expect(0);
            assert!(
                plan.stdout.contains("apt       nothing to install"),
                "{}",
                plan.stdout
            );
            assert!(
                plan.stdout.contains(&format!("not needed {venv_pkg}")),
                "{}",
                plan.stdout
            );
            tree.case("apply", &p).wheelhouse().expect(0);
            assert_eq!(
                std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
                status,
                "{suite}"
            );
            tree.run(&[
                "/opt/venvs/bare/bin/python",
                "-c",
                "import six, jmespath, markupsafe",
            ])
            .ok();
            let (code, report) = verify(tree, "bare");
            assert_eq!(code, 0, "{report}");
            // pip in the venv needs ensurepip: python3.X-venv is installed.
            let p = write_profile(
                dir.path(),
                "withpip",
                "/opt/venvs/withpip",
                &small_lock(),
                "pip = true\n",
            );
            tree.case("apply", &p).wheelhouse().expect(0);
            let status = std::fs::read_to_string(tree.path("/var/lib/dpkg/status")).unwrap();
            assert!(
                status.contains(&format!("Package: {venv_pkg}\n")),
                "{suite}"
            );
            tree.run(&["/opt/venvs/withpip/bin/python", "-m", "pip", "--version"])
                .ok();
        });
    }
}
