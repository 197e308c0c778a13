//! `venvbake sbom`: the image's whole Python environment as an SBOM.
//!
//! Built from the manifest (what venvbake installed and relies on), with
//! licenses read from each distribution's metadata in the target: every venv
//! distribution as `pkg:pypi/...` with the sha256 it was installed from,
//! every apt package the profile needs as `pkg:deb/<distro>/...` with distro
//! and architecture qualifiers, and how they relate to the image. CycloneDX
//! 1.5 and SPDX 2.3, both JSON. The output is a function of the manifest and
//! the installed files only, so reproducible builds give identical SBOMs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::generation::manifest::Manifest;
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Cyclonedx,
    Spdx,
}

pub fn pypi_purl(name: &str, version: &str) -> String {
    format!(
        "pkg:pypi/{}@{}",
        crate::sys::codec::percent_encode(&crate::decide::mapping::normalize(name)),
        crate::sys::codec::percent_encode(version)
    )
}

pub fn deb_purl(
    distro: &str,
    distro_version: &str,
    name: &str,
    version: &str,
    arch: Option<&str>,
) -> String {
    let mut q = Vec::new();
    if let Some(a) = arch {
        q.push(format!("arch={}", crate::sys::codec::percent_encode(a)));
    }
    q.push(format!(
        "distro={}",
        crate::sys::codec::percent_encode(&format!("{distro}-{distro_version}"))
    ));
    format!(
        "pkg:deb/{}/{}@{}?{}",
        crate::sys::codec::percent_encode(distro),
        crate::sys::codec::percent_encode(name),
        crate::sys::codec::percent_encode(version),
        q.join("&")
    )
}

/// What one distribution's metadata says about its license.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct License {
    /// A PEP 639 `License-Expression` (SPDX syntax).
    pub expression: Option<String>,
    /// Otherwise a free-text `License` field or a trove classifier.
    pub name: Option<String>,
}

/// Licenses of every distribution in `site` (normalised name -> license).
pub fn licenses(site: &Path) -> BTreeMap<String, License> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(site) else {
        return out;
    };
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let meta = if fname.ends_with(".dist-info") {
            std::fs::read_to_string(e.path().join("METADATA"))
        } else if fname.ends_with(".egg-info") && e.path().is_dir() {
            std::fs::read_to_string(e.path().join("PKG-INFO"))
        } else {
            continue;
        };
        let Ok(meta) = meta else { continue };
        let (mut name, mut lic) = (None, License::default());
        let mut classifier = None;
        for line in meta.lines() {
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Name:") {
                name.get_or_insert(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("License-Expression:") {
                lic.expression = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("License:") {
                let v = v.trim();
                // Some projects paste the whole license text: keep a short first line only.
                if !v.is_empty() && v.len() <= 80 && lic.name.is_none() {
                    lic.name = Some(v.to_string());
                }
            } else if let Some(v) = line.strip_prefix("Classifier: License :: ") {
                classifier.get_or_insert(v.rsplit(" :: ").next().unwrap_or(v).trim().to_string());
            }
        }
        if lic.name.is_none() {
            lic.name = classifier;
        }
        if let Some(n) = name {
            out.insert(crate::decide::mapping::normalize(&n), lic);
        }
    }
    out
}

/// Architectures of installed packages, from dpkg's status file.
fn dpkg_arch(target: &Target) -> BTreeMap<String, String> {
    let text = target
        .read(Path::new("/var/lib/dpkg/status"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut arch) = (None, None);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim());
            }
        }
        if let (Some(n), Some(a)) = (name, arch) {
            out.entry(n.to_string()).or_insert_with(|| a.to_string());
        }
    }
    out
}

/// One component, format-neutral.
struct Component {
    kind: &'static str,
    bom_ref: String,
    name: String,
    version: String,
    purl: String,
    sha256: Option<String>,
    license: License,
    /// `venv` (in the venv) or `image` (an OS package).
    parent: &'static str,
    properties: Vec<(String, String)>,
}

fn components(target: &Target, m: &Manifest) -> Vec<Component> {
    let gen_host = target.host_path(&m.venv.generation_path);
    let site = crate::sys::layout::find_venv_site(&gen_host).unwrap_or_default();
    let mut lic = licenses(&site);
    let minor = m
        .python
        .version
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    for dir in crate::sys::layout::system_site_dirs(Some(&minor)) {
        for (k, v) in licenses(&target.host_path(&dir)) {
            lic.entry(k).or_insert(v);
        }
    }
    let arch = dpkg_arch(target);
    let mut out = Vec::new();
    for d in &m.distributions {
        let purl = pypi_purl(&d.name, &d.version);
        let mut properties = vec![("venvbake:source".to_string(), d.source.clone())];
        if let Some(p) = &d.package {
            properties.push(("venvbake:package".to_string(), p.clone()));
        }
        out.push(Component {
            kind: "pypi",
            bom_ref: purl.clone(),
            name: d.name.clone(),
            version: d.version.clone(),
            purl,
            sha256: d.sha256.clone(),
            license: lic
                .get(&crate::decide::mapping::normalize(&d.name))
                .cloned()
                .unwrap_or_default(),
            parent: "venv",
            properties,
        });
    }
    for a in &m.apt {
        let bare = a.name.split(':').next().unwrap_or(&a.name);
        let purl = deb_purl(
            &m.os.id,
            &m.os.version_id,
            bare,
            &a.version,
            arch.get(bare).map(String::as_str),
        );
        out.push(Component {
            kind: "deb",
            bom_ref: purl.clone(),
            name: bare.to_string(),
            version: a.version.clone(),
            purl,
            sha256: None,
            license: License::default(),
            parent: "image",
            properties: vec![("venvbake:reason".to_string(), a.reason.clone())],
        });
    }
    out
}

/// A UUID (version 8, RFC 9562) derived from `seed`: the same build gives the same serial.
fn uuid_from(seed: &str) -> String {
    let h = crate::sys::codec::hex_sha256(seed.as_bytes());
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = crate::sys::codec::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

fn seed(m: &Manifest) -> String {
    format!(
        "{}|{}|{}",
        m.profile.name,
        m.venv.fingerprint,
        m.venv.tree_sha256.clone().unwrap_or_default()
    )
}

pub fn render(target: &Target, m: &Manifest, format: Format) -> String {
    let comps = components(target, m);
    let doc = match format {
        Format::Cyclonedx => cyclonedx(m, &comps),
        Format::Spdx => spdx(m, &comps),
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn cyclonedx(m: &Manifest, comps: &[Component]) -> Value {
    let venv_ref = format!("venv:{}", m.venv.path.display());
    let components: Vec<Value> = std::iter::once(json!({
        "type": "application",
        "bom-ref": venv_ref,
        "name": m.profile.name,
        "version": m.venv.generation,
        "description": format!("Python venv at {} ({})", m.venv.path.display(), m.profile.description),
        "properties": [
            {"name": "venvbake:interpreter", "value": m.interpreter.display().to_string()},
            {"name": "venvbake:python", "value": m.python.version},
            {"name": "venvbake:fingerprint", "value": m.venv.fingerprint},
        ],
    }))
    .chain(comps.iter().map(|c| {
        let mut v = json!({
            "type": if c.kind == "deb" { "application" } else { "library" },
            "bom-ref": c.bom_ref,
            "name": c.name,
            "version": c.version,
            "purl": c.purl,
            "properties": c.properties.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        });
        if let Some(h) = &c.sha256 {
            v["hashes"] = json!([{"alg": "SHA-256", "content": h}]);
        }
        if let Some(e) = &c.license.expression {
            v["licenses"] = json!([{"expression": e}]);
        } else if let Some(n) = &c.license.name {
            v["licenses"] = json!([{"license": {"name": n}}]);
        }
        v
    }))
    .collect();
    let mut components = components;
    if let (Some(t), Some(props)) = (
        &m.venv.tree_sha256,
        components[0]["properties"].as_array_mut(),
    ) {
        props.push(json!({"name": "venvbake:tree_sha256", "value": t}));
    }
    let in_venv: Vec<&str> = comps
        .iter()
        .filter(|c| c.parent == "venv")
        .map(|c| c.bom_ref.as_str())
        .collect();
    let in_image: Vec<String> = std::iter::once(venv_ref.clone())
        .chain(
            comps
                .iter()
                .filter(|c| c.parent == "image")
                .map(|c| c.bom_ref.clone()),
        )
        .collect();
    let mut deps = vec![
        json!({"ref": "image", "dependsOn": in_image}),
        json!({"ref": venv_ref, "dependsOn": in_venv}),
    ];
    deps.extend(comps.iter().map(|c| json!({"ref": c.bom_ref})));
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid_from(&seed(m))),
        "version": 1,
        "metadata": {
            "timestamp": m.built_at,
            "tools": {"components": [{"type": "application", "name": "venvbake", "version": m.tool.version}]},
            "component": {
                "type": "operating-system",
                "bom-ref": "image",
                "name": if m.os.pretty_name.is_empty() { m.os.id.clone() } else { m.os.pretty_name.clone() },
                "version": m.os.version_id,
            },
        },
        "components": components,
        "dependencies": deps,
    })
}

fn spdx_id(kind: &str, name: &str, version: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("SPDXRef-{kind}-{}-{}", clean(name), clean(version))
}

fn spdx(m: &Manifest, comps: &[Component]) -> Value {
    let venv_id = "SPDXRef-Venv".to_string();
    let mut packages = vec![
        json!({
            "SPDXID": "SPDXRef-Image",
            "name": if m.os.pretty_name.is_empty() { m.os.id.clone() } else { m.os.pretty_name.clone() },
            "versionInfo": m.os.version_id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        }),
        json!({
            "SPDXID": venv_id,
            "name": m.profile.name,
            "versionInfo": m.venv.generation,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "comment": format!("Python venv at {} built by venvbake; tree sha256 {}", m.venv.path.display(), m.venv.tree_sha256.clone().unwrap_or_default()),
        }),
    ];
    let mut rels = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}),
        json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": venv_id}),
    ];
    for c in comps {
        let id = spdx_id(c.kind, &c.name, &c.version);
        let mut p = json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": c.license.expression.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": c.purl}],
        });
        if let Some(h) = &c.sha256 {
            p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": h}]);
        }
        packages.push(p);
        let parent = if c.parent == "venv" {
            venv_id.as_str()
        } else {
            "SPDXRef-Image"
        };
        rels.push(json!({"spdxElementId": parent, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("venvbake {} {}", m.profile.name, m.venv.generation),
        "documentNamespace": format!("https://spdx.org/spdxdocs/venvbake-{}-{}", m.profile.name, uuid_from(&seed(m))),
        "creationInfo": {"created": m.built_at, "creators": [format!("Tool: venvbake-{}", m.tool.version)]},
        "packages": packages,
        "relationships": rels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_encoded() {
        assert_eq!(pypi_purl("PyYAML", "6.0.3"), "pkg:pypi/pyyaml@6.0.3");
        assert_eq!(
            pypi_purl("python_gitlab", "8.6.0"),
            "pkg:pypi/python-gitlab@8.6.0"
        );
        assert_eq!(
            deb_purl(
                "debian",
                "12",
                "python3-gitlab",
                "1:3.12.0-1+b1",
                Some("all")
            ),
            "pkg:deb/debian/python3-gitlab@1%3A3.12.0-1%2Bb1?arch=all&distro=debian-12"
        );
    }

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = uuid_from("x");
        assert_eq!(a, uuid_from("x"));
        assert_ne!(a, uuid_from("y"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }

    #[test]
    fn licenses_come_from_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a-1.dist-info");
        let b = dir.path().join("b-1.dist-info");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            a.join("METADATA"),
            "Name: A\nLicense-Expression: MIT OR Apache-2.0\n",
        )
        .unwrap();
        std::fs::write(
            b.join("METADATA"),
            "Name: B\nClassifier: License :: OSI Approved :: BSD License\n",
        )
        .unwrap();
        let l = licenses(dir.path());
        assert_eq!(l["a"].expression.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(l["b"].name.as_deref(), Some("BSD License"));
    }
}
