//! Provenance: two builds of the same profile, lock, wheelhouse and target
//! packages with the same `SOURCE_DATE_EPOCH`, in two fresh trees, give a
//! byte-identical manifest and the same venv file tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;

/// The manifest's bytes and the recorded tree hash of one build.
type Build = (Vec<u8>, String);

#[test]
fn two_fresh_builds_are_identical() {
    let results: Arc<Mutex<Vec<Build>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        let results = results.clone();
        with_tree("bookworm", move |tree| {
            let profile = Path::new(REPO).join("profiles/ansible.toml");
            tree.apply(&profile, &[("SOURCE_DATE_EPOCH", "1700000000")])
                .ok();
            let manifest = std::fs::read(tree.path("/var/lib/venvbake/ansible.json")).unwrap();
            let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
            assert_eq!(m["built_at"], "2023-11-14T22:13:20Z");
            let tree_hash = m["venv"]["tree_sha256"].as_str().unwrap().to_string();
            // verify recomputes the content hash of the tree.
            let v = venvbake(
                &["verify", "--root", tree.root.to_str().unwrap(), "ansible"],
                &[],
            )
            .ok();
            assert!(v.stdout.contains("is clean"), "{}", v.stdout);
            results.lock().unwrap().push((manifest, tree_hash));
        });
    }
    let r = results.lock().unwrap();
    assert_eq!(r[0].1, r[1].1, "the venv file trees differ");
    assert!(
        r[0].0 == r[1].0,
        "the manifests differ:\n{}\n---\n{}",
        String::from_utf8_lossy(&r[0].0),
        String::from_utf8_lossy(&r[1].0)
    );
}
