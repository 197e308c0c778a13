//! Build once, stamp many, in real trees: a generation bundled from one
//! bookworm image stamps a fresh bookworm image (same files, verified,
//! working); a trixie image, a damaged bundle and a drifted source are
//! refused with what differs, and nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;

fn lock() -> PathBuf {
    Path::new(REPO).join("tests/data/pinned-extra.requirements.txt")
}

fn bundle_of(tree: &Tree, profile: &Path, out: &Path) -> Run {
    venvbake(
        &[
            "bundle",
            profile.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    )
}

fn stamp(tree: &Tree, profile: &Path, bundle: &Path) -> Run {
    tree.apply_from(profile, &["--bundle", bundle.to_str().unwrap()], &[])
}

#[test]
fn a_bundle_stamps_a_fresh_image_of_the_same_kind_only() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // With pip, so that pip itself checks the stamped venv.
    let profile = write_profile(
        dir.path(),
        "stamp",
        "/opt/venvs/stamp",
        &lock(),
        "pip = true\n",
    );
    let bundle = dir.path().join("stamp.bundle");
    let source: Arc<Mutex<Option<serde_json::Value>>> = Arc::new(Mutex::new(None));

    // Build once, and bundle.
    let (p, b, s) = (profile.clone(), bundle.clone(), source.clone());
    with_tree("bookworm", move |tree| {
        tree.apply(&p, &[]).ok();
        let run = bundle_of(tree, &p, &b).ok();
        assert_eq!(run.stdout.trim(), b.to_str().unwrap());
        *s.lock().unwrap() = Some(tree.read_json("/var/lib/venvbake/stamp.json"));

        // A generation that drifted is not bundled.
        let init = tree.path("/opt/venvs/stamp/lib/python3.11/site-packages/cowsay/__init__.py");
        std::fs::write(&init, b"print('changed')\n").unwrap();
        let other = b.with_extension("drifted");
        let run = bundle_of(tree, &p, &other);
        run.expect_code(9);
        assert!(!other.exists());
    });
    let source = source.lock().unwrap().clone().unwrap();

    // Stamp a fresh image of the same kind: no install, same tree, checked.
    let (p, b) = (profile.clone(), bundle.clone());
    with_tree("bookworm", move |tree| {
        let run = stamp(tree, &p, &b).ok();
        run.expect_stderr("venv: unpack bundle");
        // Stamped, not built: no venv made, no installer run.
        for built in ["venv: create", "native installer", "installer: pip"] {
            assert!(!run.stderr.contains(built), "{}", run.stderr);
        }
        run.expect_stderr("venv: check imports");
        let m = tree.read_json("/var/lib/venvbake/stamp.json");
        for key in ["tree_sha256", "generation", "fingerprint"] {
            assert_eq!(m["venv"][key], source["venv"][key], "{key}");
        }
        assert_eq!(m["distributions"], source["distributions"]);
        let v = venvbake(
            &["verify", "--root", tree.root.to_str().unwrap(), "stamp"],
            &[],
        )
        .ok();
        assert!(v.stdout.contains("is clean"), "{}", v.stdout);
        let cow = tree
            .run(&["/opt/venvs/stamp/bin/cowsay", "-t", "stamped"])
            .ok();
        assert!(cow.stdout.contains("stamped"), "{}", cow.stdout);
        tree.run(&["/opt/venvs/stamp/bin/python", "-m", "pip", "check"])
            .ok();
        // And a re-run with the bundle changes nothing.
        let again = stamp(tree, &p, &b).ok();
        again.expect_stderr("nothing changed");
    });

    // Another release: refused with the differing fields, nothing built.
    let (p, b) = (profile.clone(), bundle.clone());
    with_tree("trixie", move |tree| {
        // Decided before anything changes: by plan, and by apply before apt
        // (a fresh trixie tree needs python3.13-venv, which must not come).
        let dpkg_status = std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap();
        let plan_with_bundle = |format: &str| {
            let (p, b, root) = (
                p.to_str().unwrap(),
                b.to_str().unwrap(),
                tree.root.to_str().unwrap(),
            );
            venvbake(
                &["plan", p, "--root", root, "--bundle", b, "--format", format],
                &[],
            )
        };
        let plan = plan_with_bundle("text");
        plan.expect_code(2);
        assert!(
            plan.stdout
                .contains("built for another target: refused before anything changes")
                && plan
                    .stdout
                    .contains("os: bundle `debian 12`, this target `debian 13`"),
            "{}",
            plan.stdout
        );
        plan.expect_stderr("was built for another target");
        let json = plan_with_bundle("json");
        let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(json["bundle"]["stamps"], false);
        assert_eq!(json["venv"]["route"]["kind"], "stamp");
        assert_eq!(json["apt"]["install"][0]["name"], "python3.13-venv");
        let run = stamp(tree, &p, &b);
        run.expect_code(2);
        assert!(!run.stderr.contains("venvbake: apt:"), "{}", run.stderr);
        assert_eq!(
            std::fs::read(tree.path("/var/lib/dpkg/status")).unwrap(),
            dpkg_status,
            "apt ran before the bundle was refused"
        );
        run.expect_stderr("was built for another target");
        run.expect_stderr("  os: bundle `debian 12`, this target `debian 13`");
        run.expect_stderr("python.identity");
        run.expect_stderr("hint: a bundle stamps images");
        assert!(tree.link("/opt/venvs/stamp").is_none());
        assert!(
            !tree.path("/opt/venvs/stamp.generations").exists(),
            "a refused first stamp leaves nothing behind"
        );
    });

    // A damaged bundle: refused after the unpack by the tree hash; nothing left.
    let damaged = dir.path().join("damaged.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let needle = b"def ";
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("python source in the bundle");
    bytes[at] = b'x';
    std::fs::write(&damaged, bytes).unwrap();
    let p = profile.clone();
    with_tree("bookworm", move |tree| {
        let run = stamp(tree, &p, &damaged);
        run.expect_code(2);
        run.expect_stderr("it is damaged");
        assert!(tree.link("/opt/venvs/stamp").is_none());
        assert!(
            !tree.path("/opt/venvs/stamp.generations").exists(),
            "a refused first stamp leaves nothing behind"
        );
    });
}
