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

/// Validate a CycloneDX document against the vendored official 1.5 schema
/// (and the two it references) with Debian's python3-jsonschema.
fn validate_cyclonedx(doc: &str) {
    let script = r#"
import json, sys, jsonschema
base = sys.argv[1]
store = {}
for f in ["bom-1.5.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"]:
    s = json.load(open(base + "/" + f))
    store["http://cyclonedx.org/schema/" + f] = s
    store[s["$id"]] = s
schema = store["http://cyclonedx.org/schema/bom-1.5.schema.json"]
v = jsonschema.Draft7Validator(schema, resolver=jsonschema.RefResolver.from_schema(schema, store=store))
errors = list(v.iter_errors(json.load(sys.stdin)))
for e in errors[:10]:
    print(list(e.absolute_path), e.message)
sys.exit(1 if errors else 0)
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(format!("{REPO}/tests/data/schemas"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (scripts/test-deps installs python3-jsonschema)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "CycloneDX schema validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SPDX project's own validator (spdx-tools, from PyPI: no Debian
/// package ships it, and no reachable registry ships the SPDX 2.3 JSON
/// schema), in a venv kept in the test cache.
fn spdx_tools_python() -> std::path::PathBuf {
    const VERSION: &str = "0.8.5";
    let venv = cache_dir().join(format!("spdx-tools-{VERSION}"));
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let tmp = venv.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let mut make = std::process::Command::new("/usr/bin/python3");
    make.args(["-m", "venv"]).arg(&tmp);
    pip_env(&mut make);
    run_checked(
        &mut make,
        "python3 -m venv (python3-venv; scripts/test-deps installs it)",
    );
    let mut install = std::process::Command::new(tmp.join("bin/pip"));
    install.args(["install", "--quiet", &format!("spdx-tools=={VERSION}")]);
    pip_env(&mut install);
    run_checked(&mut install, "pip install spdx-tools");
    std::fs::rename(&tmp, &venv).unwrap();
    python
}

/// Validate an SPDX 2.3 JSON document with spdx-tools' full validation.
fn validate_spdx(doc: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbom.spdx.json");
    std::fs::write(&file, doc).unwrap();
    let script = r#"
import sys
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
doc = parse_file(sys.argv[1])
problems = validate_full_spdx_document(doc, "SPDX-2.3")
for p in problems[:20]:
    print(p.validation_message, p.context)
sys.exit(1 if problems else 0)
"#;
    let out = std::process::Command::new(spdx_tools_python())
        .args(["-c", script])
        .arg(&file)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SPDX validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sbom_in_both_formats_matches_the_manifest() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let lock = Path::new(REPO).join("tests/data/pinned-extra.requirements.txt");
        let mut text = std::fs::read_to_string(&lock).unwrap();
        text.insert_str(0, "lxml>=4.9\n");
        let lock2 = dir.path().join("l.txt");
        std::fs::write(&lock2, text).unwrap();
        let profile = write_profile(
            dir.path(),
            "sb",
            "/opt/venvs/sb",
            &lock2,
            "system_site_packages = \"auto\"\n[python]\nprefer = \"os\"\n",
        );
        tree.apply(&profile, &[("SOURCE_DATE_EPOCH", "1700000000")])
            .ok();
        let root = tree.root.to_str().unwrap();
        let m = tree.read_json("/var/lib/venvbake/sb.json");
        let n_dists = m["distributions"].as_array().unwrap().len();
        let n_apt = m["apt"].as_array().unwrap().len();

        let cdx = venvbake(
            &["sbom", "--root", root, "sb", "--format", "cyclonedx"],
            &[],
        )
        .ok();
        validate_cyclonedx(&cdx.stdout);
        let doc: serde_json::Value = serde_json::from_str(&cdx.stdout).unwrap();
        let comps = doc["components"].as_array().unwrap();
        assert_eq!(
            comps.len(),
            1 + n_dists + n_apt,
            "venv + distributions + apt packages"
        );
        let purl = |p: &str| comps.iter().find(|c| c["purl"] == p).cloned();
        let jm = purl("pkg:pypi/jmespath@1.1.0").expect("jmespath");
        let want = m["distributions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "jmespath")
            .unwrap()["sha256"]
            .clone();
        assert_eq!(jm["hashes"][0]["content"], want);
        assert!(jm["licenses"].is_array(), "license from the metadata: {jm}");
        let lxml = comps.iter().find(|c| c["name"] == "lxml").unwrap();
        assert_eq!(
            lxml["properties"][1]["value"], "python3-lxml",
            "apt-served: {lxml}"
        );
        assert!(
            comps.iter().any(|c| c["purl"]
                .as_str()
                .unwrap_or("")
                .starts_with("pkg:deb/debian/python3-lxml@")
                && c["purl"].as_str().unwrap().ends_with("distro=debian-13")),
            "deb purls with distro"
        );
        assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");

        let spdx = venvbake(&["sbom", "--root", root, "sb", "--format", "spdx"], &[]).ok();
        validate_spdx(&spdx.stdout);
        let doc: serde_json::Value = serde_json::from_str(&spdx.stdout).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(
            packages.len(),
            2 + n_dists + n_apt,
            "image + venv + distributions + apt packages"
        );
        for p in packages {
            for key in ["SPDXID", "name", "downloadLocation"] {
                assert!(p[key].is_string(), "{key} missing in {p}");
            }
        }
        let rels = doc["relationships"].as_array().unwrap();
        assert_eq!(rels.len(), 2 + n_dists + n_apt);
        // Same inputs, same SBOM.
        let again = venvbake(
            &["sbom", "--root", root, "sb", "--format", "cyclonedx"],
            &[],
        )
        .ok();
        assert_eq!(again.stdout, cdx.stdout);
    });
}
