//! `venvbake verify`: does the host or image still match its manifest?
//!
//! Checks, in order of cost: the fixed path points at the recorded
//! generation and that generation is complete; the apt packages are
//! installed at the recorded versions; every file of every distribution in
//! the venv matches its wheel `RECORD` (sha256 and size; missing, modified
//! and extra files), hashed in parallel; and the venv's interpreter runs and
//! is the recorded Python version and ABI (a distribution upgrade that moved
//! the system Python breaks the venv). Reads only; runs one python.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::generation::manifest::Manifest;
use crate::generation::store::generations_dir;
use crate::sys::exec::{self, Cmd};
use crate::sys::record::{parse_record, RecordEntry};
use crate::target::Target;

/// One way the target differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// `link`, `generation`, `python`, `apt`, `missing`, `modified`, `extra`.
    pub kind: String,
    pub item: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: String,
    pub generation: String,
    pub clean: bool,
    pub files_checked: usize,
    pub bytes_hashed: u64,
    pub drift: Vec<Drift>,
}

impl Report {
    pub fn to_text(&self) -> String {
        let mut s = if self.clean {
            format!(
                "verify: `{}` is clean: generation {}, {} files ({} bytes) match their RECORD, python and apt packages as recorded\n",
                self.profile, self.generation, self.files_checked, self.bytes_hashed
            )
        } else {
            format!(
                "verify: `{}` has drifted from its manifest ({} item(s)):\n",
                self.profile,
                self.drift.len()
            )
        };
        for d in &self.drift {
            s.push_str(&format!("  {:<9} {}: {}\n", d.kind, d.item, d.detail));
        }
        s
    }
}

fn drift(kind: &str, item: impl Into<String>, detail: impl Into<String>) -> Drift {
    Drift {
        kind: kind.into(),
        item: item.into(),
        detail: detail.into(),
    }
}

/// Prints the venv interpreter's version and ABI.
const PYTHON_ID: &str =
    "import platform, sysconfig; print(platform.python_version()); print(sysconfig.get_config_var('SOABI') or '')";

pub fn verify(target: &Target, m: &Manifest) -> Result<Report> {
    let mut out = Vec::new();
    let gens = generations_dir(&m.venv.path);
    let gen_target = gens.join(&m.venv.generation);
    let gen_host = target.host_path(&gen_target);

    // The fixed path and the generation.
    let link_host = target.host_path_nofollow(&m.venv.path);
    let want = Path::new(gens.file_name().unwrap_or_default()).join(&m.venv.generation);
    match std::fs::read_link(&link_host) {
        Ok(dest) if dest == want => {}
        Ok(dest) => out.push(drift(
            "link",
            m.venv.path.display().to_string(),
            format!(
                "points at `{}`, the manifest says `{}`",
                dest.display(),
                want.display()
            ),
        )),
        Err(_) => out.push(drift(
            "link",
            m.venv.path.display().to_string(),
            "is not a symlink to a generation",
        )),
    }
    match crate::generation::manifest::read_generation(&gen_host) {
        Some(r) if r.fingerprint == m.venv.fingerprint => {}
        Some(_) => out.push(drift(
            "generation",
            &m.venv.generation,
            "its record's fingerprint differs from the manifest's",
        )),
        None => out.push(drift(
            "generation",
            &m.venv.generation,
            "missing or incomplete (no .venvbake/generation.json)",
        )),
    }

    // The Ansible fact names this profile, its venv and its manifest.
    let (manifest_path, fact_path) = match &m.outputs {
        Some(o) => (o.manifest.clone(), o.ansible_fact.clone()),
        None => (
            crate::input::profile::default_manifest(&m.profile.name),
            PathBuf::from(crate::input::profile::DEFAULT_FACT),
        ),
    };
    let want_entry = crate::generation::manifest::FactEntry::new(&m.venv.path, &manifest_path);
    let fact = crate::generation::manifest::read_fact(&target.host_path(&fact_path));
    match fact.profiles.get(&m.profile.name) {
        Some(e) if *e == want_entry => {}
        Some(e) => out.push(drift(
            "fact",
            fact_path.display().to_string(),
            format!(
                "the entry of `{}` names venv `{}` and manifest `{}`; the manifest says `{}` and `{}`",
                m.profile.name,
                e.venv.display(),
                e.manifest.display(),
                m.venv.path.display(),
                manifest_path.display()
            ),
        )),
        None => out.push(drift(
            "fact",
            fact_path.display().to_string(),
            format!("has no entry for profile `{}`", m.profile.name),
        )),
    }

    // apt packages at their recorded versions.
    let installed = target.dpkg_installed()?;
    for p in &m.apt {
        let bare = p.name.split(':').next().unwrap_or(&p.name);
        match installed.get(bare) {
            Some(v) if *v == p.version => {}
            Some(v) => out.push(drift(
                "apt",
                &p.name,
                format!("installed {v}, recorded {}", p.version),
            )),
            None => out.push(drift(
                "apt",
                &p.name,
                format!("not installed, recorded {}", p.version),
            )),
        }
    }

    // Every distribution's files against its RECORD.
    let (files_checked, bytes_hashed) = if gen_host.is_dir() {
        check_records(&gen_host, &mut out)
    } else {
        (0, 0)
    };

    // The generation's content as a whole, when the manifest records it.
    if let (Some(want), true) = (&m.venv.tree_sha256, gen_host.is_dir()) {
        match tree_sha256(&gen_host) {
            Ok(got) if got == *want => {}
            Ok(got) => out.push(drift(
                "tree",
                &m.venv.generation,
                format!("content hash {got} differs from the recorded {want}"),
            )),
            Err(e) => out.push(drift(
                "tree",
                &m.venv.generation,
                format!("could not be hashed: {e}"),
            )),
        }
    }

    // The interpreter runs and is the recorded one.
    if gen_host.is_dir() {
        let python = m.venv.path.join("bin/python").display().to_string();
        let cmd = Cmd::new(python.clone(), &exec::base_env(&[]))
            .chroot(target.chroot())
            .args(["-I", "-c", PYTHON_ID]);
        match exec::run(&cmd, 10, &mut |_| {}) {
            Ok(o) => {
                let version = o.lines.first().cloned().unwrap_or_default();
                let abi = o.lines.get(1).cloned().unwrap_or_default();
                if version != m.python.version || abi != m.python.abi {
                    out.push(drift(
                        "python",
                        python,
                        format!(
                            "runs Python {version} ({abi}), the venv was built for {} ({}): the system Python changed; `venvbake apply` rebuilds",
                            m.python.version, m.python.abi
                        ),
                    ));
                }
            }
            Err(e) => out.push(drift("python", python, format!("does not run: {e}; the system Python may have changed, `venvbake apply` rebuilds"))),
        }
    }

    Ok(Report {
        profile: m.profile.name.clone(),
        generation: m.venv.generation.clone(),
        clean: out.is_empty(),
        files_checked,
        bytes_hashed,
        drift: out,
    })
}

fn check_records(gen_host: &Path, out: &mut Vec<Drift>) -> (usize, u64) {
    let Some(site) = crate::sys::layout::find_venv_site(gen_host) else {
        out.push(drift(
            "generation",
            gen_host.display().to_string(),
            "has no site-packages",
        ));
        return (0, 0);
    };
    let mut claimed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut jobs: Vec<(PathBuf, String, RecordEntry)> = Vec::new();
    let mut dist_infos: Vec<PathBuf> = std::fs::read_dir(&site)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "dist-info"))
                .collect()
        })
        .unwrap_or_default();
    dist_infos.sort();
    for di in dist_infos {
        let dist = di
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(di.join("RECORD")) else {
            out.push(drift(
                "missing",
                format!("{dist}/RECORD"),
                "the distribution has no RECORD",
            ));
            continue;
        };
        for entry in parse_record(&text) {
            let path = normalize(&site.join(&entry.path));
            claimed.insert(path.clone());
            jobs.push((path, dist.clone(), entry));
        }
    }
    // Hash in parallel, one share of the files per core.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<Drift>, usize, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| s.spawn(move || check_files(part)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let (mut files, mut bytes) = (0, 0);
    for (d, f, b) in results {
        out.extend(d);
        files += f;
        bytes += b;
    }
    // Files in site-packages that no RECORD claims (byte-code caches aside).
    let mut extra = Vec::new();
    walk(&site, &mut |p| {
        let in_cache = p.parent().is_some_and(|d| d.ends_with("__pycache__"));
        if !claimed.contains(p) && !in_cache {
            extra.push(p.to_path_buf());
        }
    });
    for p in extra {
        let rel = p.strip_prefix(&site).unwrap_or(&p).display().to_string();
        out.push(drift(
            "extra",
            rel,
            "no distribution's RECORD lists this file",
        ));
    }
    (files, bytes)
}

fn check_files(jobs: &[(PathBuf, String, RecordEntry)]) -> (Vec<Drift>, usize, u64) {
    let mut out = Vec::new();
    let (mut files, mut bytes) = (0, 0u64);
    let mut buf = vec![0u8; 256 * 1024];
    for (path, dist, entry) in jobs {
        let item = format!("{dist}: {}", entry.path);
        let Ok(mut f) = std::fs::File::open(path) else {
            out.push(drift("missing", item, "listed in RECORD, not on disk"));
            continue;
        };
        files += 1;
        let Some(want) = &entry.sha256 else { continue };
        let mut h = Sha256::new();
        let mut size = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                    size += n as u64;
                }
                Err(e) => {
                    out.push(drift("modified", item.clone(), format!("unreadable: {e}")));
                    break;
                }
            }
        }
        bytes += size;
        let got = crate::sys::codec::base64(&h.finalize(), true);
        if &got != want || entry.size.is_some_and(|s| s != size) {
            out.push(drift(
                "modified",
                item,
                "sha256 or size differs from RECORD",
            ));
        }
    }
    (out, files, bytes)
}

/// Lexical normalisation (RECORD paths may climb out with `..`).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, f),
            Ok(_) => f(&p),
            Err(_) => {}
        }
    }
}

/// Whether `rel` (relative to a generation) describes the generation rather
/// than belongs to it: its completion record and manifest, which are written
/// after the content hash, and what a killed write of either left behind
/// (`fsutil::atomic_write`'s `.NAME.venvbake-tmp-PID`). The tree hash and
/// bundles leave these out.
pub fn describes_generation(rel: &Path) -> bool {
    const OWN: [&str; 2] = ["generation.json", "manifest.json"];
    let Ok(name) = rel.strip_prefix(".venvbake") else {
        return false;
    };
    let name = name.to_string_lossy();
    OWN.iter().any(|own| {
        name == *own
            || name
                .strip_prefix('.')
                .and_then(|n| n.strip_prefix(own))
                .is_some_and(|rest| rest.starts_with(crate::sys::fsutil::TEMP_MARK))
    })
}

/// Digests already known for files of a generation: the size and sha256 of
/// what venvbake just wrote, so the tree hash need not read those files
/// again. Kept by [`Known::key`] of the path relative to the generation, in
/// one flat list (a large venv has tens of thousands of files: no copy of
/// each path is kept, and no hash table's slack).
#[derive(Debug, Default)]
pub struct Known {
    rows: Vec<(u128, u64, [u8; 32])>,
    sorted: bool,
}

impl Known {
    /// The first 128 bits of the sha256 of the relative path.
    fn key(rel: &Path) -> u128 {
        let d = Sha256::digest(rel.as_os_str().as_encoded_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        u128::from_le_bytes(k)
    }

    pub fn insert(&mut self, rel: &Path, size: u64, digest: [u8; 32]) {
        self.rows.push((Self::key(rel), size, digest));
        self.sorted = false;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Ready for [`Known::get`].
    fn sort(&mut self) {
        if !self.sorted {
            self.rows.sort_unstable_by_key(|r| r.0);
            self.rows.shrink_to_fit();
            self.sorted = true;
        }
    }

    /// The digest of `rel`, if known and recorded for a file of `size` bytes.
    fn get(&self, rel: &Path, size: u64) -> Option<[u8; 32]> {
        if self.rows.is_empty() || !self.sorted {
            return None;
        }
        let key = Self::key(rel);
        let i = self.rows.binary_search_by_key(&key, |r| r.0).ok()?;
        let (_, s, digest) = self.rows[i];
        (s == size).then_some(digest)
    }
}

/// The `RECORD` rows of every distribution in `site` (a generation's
/// site-packages) as [`Known`] digests, paths relative to `gen_host`. Only
/// for a generation whose `RECORD` files venvbake wrote itself, just now.
pub fn recorded_digests(gen_host: &Path, site: &Path) -> Known {
    let mut known = Known::default();
    let Ok(base) = site.strip_prefix(gen_host) else {
        return known;
    };
    let Ok(entries) = std::fs::read_dir(site) else {
        return known;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".dist-info") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("RECORD")) else {
            continue;
        };
        for row in parse_record(&text) {
            let (Some(b64), Some(size)) = (&row.sha256, row.size) else {
                continue;
            };
            let (Some(rel), Some(digest)) = (
                lexical_join(base, &row.path),
                crate::sys::codec::base64_url_decode(b64),
            ) else {
                continue;
            };
            if let Ok(digest) = <[u8; 32]>::try_from(digest) {
                known.insert(&rel, size, digest);
            }
        }
    }
    known
}

/// `base` joined with the relative path `rel`, `..` resolved without the
/// file system; `None` if it leaves `base`'s root or is absolute. (Unlike
/// [`normalize`], which `verify` uses to report what a `RECORD` names
/// wherever it points, a digest is only ever taken for a path inside.)
fn lexical_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A content hash of a generation's file tree: every path (sorted), its kind
/// and permission bits, and the sha256 of each file or the target of each
/// symlink. Timestamps and owners are left out, so two builds from the same
/// inputs with `SOURCE_DATE_EPOCH` hash the same.
pub fn tree_sha256(gen_host: &Path) -> std::io::Result<String> {
    tree_sha256_known(gen_host, Known::default())
}

/// [`tree_sha256`], taking the digest of a file of the size `known` gives
/// from there instead of reading it.
pub fn tree_sha256_known(gen_host: &Path, known: Known) -> std::io::Result<String> {
    tree_sha256_windowed(gen_host, known, HASH_WINDOW)
}

/// Entries hashed between two feeds of the tree hash: the memory the hash
/// takes does not grow with the venv (a 150-distribution venv has 30,000).
const HASH_WINDOW: usize = 2048;

fn tree_sha256_windowed(
    gen_host: &Path,
    mut known: Known,
    window: usize,
) -> std::io::Result<String> {
    known.sort();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut h = Sha256::new();
    let mut batch: Vec<PathBuf> = Vec::with_capacity(window.min(HASH_WINDOW));
    walk_sorted(gen_host, &mut PathBuf::new(), &mut |rel| {
        if !describes_generation(rel) {
            batch.push(rel.to_path_buf());
            if batch.len() >= window {
                feed(&mut h, gen_host, &batch, &known, threads)?;
                batch.clear();
            }
        }
        Ok(())
    })?;
    feed(&mut h, gen_host, &batch, &known, threads)?;
    Ok(crate::sys::codec::hex(&h.finalize()))
}

/// Hash `rels` (in order) into `h`: their files are read on `threads`
/// threads, each taking the next entry as it finishes one (a large file
/// does not hold up the ones after it), then fed to the one hash in order.
fn feed(
    h: &mut Sha256,
    gen_host: &Path,
    rels: &[PathBuf],
    known: &Known,
    threads: usize,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || -> std::io::Result<Vec<(usize, Entry)>> {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(rel) = rels.get(i) else {
                return Ok(out);
            };
            out.push((i, entry(&gen_host.join(rel), rel, known)?));
        }
    };
    let parts: Vec<std::io::Result<Vec<(usize, Entry)>>> = if threads < 2 || rels.len() < 64 {
        vec![work()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread failed")))
                })
                .collect()
        })
    };
    let mut entries: Vec<Option<Entry>> = Vec::new();
    entries.resize_with(rels.len(), || None);
    for part in parts {
        for (i, e) in part? {
            entries[i] = Some(e);
        }
    }
    for (rel, e) in rels.iter().zip(entries) {
        let Some(e) = e else {
            return Err(std::io::Error::other("an entry was not hashed"));
        };
        h.update(rel.as_os_str().as_encoded_bytes());
        match e {
            Entry::Link(mode, target) => {
                h.update(format!("\0l\0{mode:o}\0").as_bytes());
                h.update(target.as_os_str().as_encoded_bytes());
            }
            Entry::Dir(mode) => h.update(format!("\0d\0{mode:o}\0").as_bytes()),
            Entry::File(mode, digest) => {
                h.update(format!("\0f\0{mode:o}\0").as_bytes());
                h.update(digest);
            }
        }
        h.update(b"\n");
    }
    Ok(())
}

/// Visit every entry under `dir` (`rel` is the path walked so far, relative
/// to the start) in the order of the sorted relative paths: each directory's
/// names sorted, a directory before what it holds. Only one directory's
/// listing per level is held at a time.
fn walk_sorted(
    dir: &Path,
    rel: &mut PathBuf,
    visit: &mut dyn FnMut(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut names: Vec<(std::ffi::OsString, bool)> = std::fs::read_dir(dir)?
        .map(|e| {
            let e = e?;
            Ok((e.file_name(), e.file_type()?.is_dir()))
        })
        .collect::<std::io::Result<_>>()?;
    names.sort_unstable();
    for (name, is_dir) in names {
        rel.push(&name);
        visit(rel)?;
        if is_dir {
            walk_sorted(&dir.join(&name), rel, visit)?;
        }
        rel.pop();
    }
    Ok(())
}

/// What [`tree_sha256`] takes of one entry: kind, permission bits, and the
/// sha256 of a file or the target of a symlink.
enum Entry {
    Link(u32, PathBuf),
    Dir(u32),
    File(u32, [u8; 32]),
}

/// One entry of the tree hash (`p`, which is `rel` in the generation); a
/// file's digest comes from `known` when its size there is the file's.
fn entry(p: &Path, rel: &Path, known: &Known) -> std::io::Result<Entry> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(p)?;
    let mode = meta.permissions().mode() & 0o7777;
    Ok(if meta.file_type().is_symlink() {
        Entry::Link(mode, std::fs::read_link(p)?)
    } else if meta.is_dir() {
        Entry::Dir(mode)
    } else if let Some(digest) = known.get(rel, meta.len()) {
        Entry::File(mode, digest)
    } else {
        let (digest, _) = crate::sys::codec::sha256_file(p)?;
        let mut d = [0u8; 32];
        d.copy_from_slice(&digest);
        Entry::File(mode, d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash and size fields of a `RECORD` row for a file holding `data`.
    fn record_hash(data: &[u8]) -> String {
        format!(
            "sha256={},{}",
            crate::sys::codec::base64(&Sha256::digest(data), true),
            data.len()
        )
    }

    #[test]
    fn records_and_their_leftover_temporaries_describe_a_generation() {
        for own in [
            ".venvbake/generation.json",
            ".venvbake/manifest.json",
            ".venvbake/.manifest.json.venvbake-tmp-8833",
            ".venvbake/.generation.json.venvbake-tmp-1",
        ] {
            assert!(describes_generation(Path::new(own)), "{own}");
        }
        for content in [
            ".venvbake/requirements.txt",
            ".venvbake/.requirements.txt.venvbake-tmp-1",
            "manifest.json",
            "lib/.venvbake/manifest.json",
            ".venvbake/.manifest.json.bak",
        ] {
            assert!(!describes_generation(Path::new(content)), "{content}");
        }
    }

    #[test]
    fn the_tree_hash_keeps_its_format() {
        // Images verified by older venvbake versions carry this value: it must not change.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path();
        std::fs::create_dir_all(g.join("a/.venvbake")).unwrap();
        std::fs::set_permissions(g.join("a"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            g.join("a/.venvbake"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(g.join("a/x"), b"hi").unwrap();
        std::fs::set_permissions(g.join("a/x"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("a", g.join("l")).unwrap();
        std::fs::create_dir_all(g.join(".venvbake")).unwrap();
        std::fs::set_permissions(g.join(".venvbake"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(g.join(".venvbake/generation.json"), b"{}").unwrap();
        let mut want = Sha256::new();
        want.update(b".venvbake\0d\x00755\0\n");
        want.update(b"a\0d\x00755\0\n");
        want.update(b"a/.venvbake\0d\x00755\0\n");
        want.update(b"a/x\0f\x00644\0");
        want.update(Sha256::digest(b"hi"));
        want.update(b"\n");
        want.update(b"l\0l\x00777\0a\n");
        assert_eq!(
            tree_sha256(g).unwrap(),
            crate::sys::codec::hex(&want.finalize())
        );
    }

    #[test]
    fn the_tree_walk_is_in_sorted_path_order_and_windows_do_not_change_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path();
        // Names where byte order of whole paths and of names differ: `a/b`
        // sorts before `a-b` and `a.txt` ('/' is 0x2f, '-' 0x2d, '.' 0x2e).
        for d in ["a/b", "a-b", "a.d/x", "B", "ab/c/d"] {
            std::fs::create_dir_all(g.join(d)).unwrap();
        }
        for f in ["a.txt", "a/b/f", "a/z", "a-b/f", "ab/c/d/e.py", "B/1", "Z"] {
            std::fs::write(g.join(f), f.as_bytes()).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", g.join("a/l")).unwrap();
        // Enough for a window to be hashed on several threads.
        std::fs::create_dir(g.join("many")).unwrap();
        for i in 0..80 {
            std::fs::write(g.join(format!("many/{i}")), vec![b'x'; i * 100]).unwrap();
        }
        let mut walked = Vec::new();
        walk_sorted(g, &mut PathBuf::new(), &mut |rel| {
            walked.push(rel.to_path_buf());
            Ok(())
        })
        .unwrap();
        let mut sorted = walked.clone();
        sorted.sort();
        assert_eq!(walked, sorted);
        assert_eq!(walked.len(), 17 + 81, "{walked:?}");
        let whole = tree_sha256(g).unwrap();
        for window in [1, 2, 5, 64, 97, 98, 1000] {
            assert_eq!(
                tree_sha256_windowed(g, Known::default(), window).unwrap(),
                whole,
                "window {window}"
            );
        }
    }

    #[test]
    fn recorded_digests_give_the_same_tree_hash() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path();
        let site = g.join("lib/python3.11/site-packages");
        let di = site.join("demo-1.dist-info");
        std::fs::create_dir_all(&di).unwrap();
        std::fs::create_dir_all(g.join("bin")).unwrap();
        std::fs::write(site.join("demo.py"), b"x = 1\n").unwrap();
        std::fs::write(g.join("bin/demo"), b"#!/venv/bin/python\n").unwrap();
        std::fs::write(
            di.join("RECORD"),
            format!(
                "demo.py,{}\n../../../bin/demo,{}\ndemo-1.dist-info/RECORD,,\n",
                record_hash(b"x = 1\n"),
                record_hash(b"#!/venv/bin/python\n")
            ),
        )
        .unwrap();
        let known = recorded_digests(g, &site);
        assert_eq!(known.len(), 2, "{known:?}");
        let mut sorted = recorded_digests(g, &site);
        sorted.sort();
        assert!(sorted.get(Path::new("bin/demo"), 19).is_some());
        assert!(sorted.get(Path::new("bin/demo"), 18).is_none());
        assert_eq!(
            tree_sha256_known(g, known).unwrap(),
            tree_sha256(g).unwrap()
        );
        // A file whose size is not the recorded one is read, not trusted.
        std::fs::write(site.join("demo.py"), b"x = 22\n").unwrap();
        assert_eq!(
            tree_sha256_known(g, recorded_digests(g, &site)).unwrap(),
            tree_sha256(g).unwrap()
        );
    }

    #[test]
    fn files_are_checked_against_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.11/site-packages");
        let di = site.join("demo-1.0.dist-info");
        std::fs::create_dir_all(&di).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(site.join("demo.py"), b"print(1)\n").unwrap();
        std::fs::write(site.join("gone.py"), b"x").unwrap();
        std::fs::write(dir.path().join("bin/demo"), b"#!/x\n").unwrap();
        std::fs::write(
            di.join("RECORD"),
            format!(
                "demo.py,{}\ngone.py,{}\n../../../bin/demo,{}\ndemo-1.0.dist-info/RECORD,,\n",
                record_hash(b"print(1)\n"),
                record_hash(b"x"),
                record_hash(b"#!/x\n")
            ),
        )
        .unwrap();
        let mut out = Vec::new();
        let (files, _) = check_records(dir.path(), &mut out);
        assert_eq!((files, out.len()), (4, 0), "{out:?}");

        std::fs::write(site.join("demo.py"), b"print(2)\n").unwrap();
        std::fs::remove_file(site.join("gone.py")).unwrap();
        std::fs::write(site.join("planted.py"), b"evil").unwrap();
        let mut out = Vec::new();
        check_records(dir.path(), &mut out);
        let kinds: Vec<(&str, &str)> = out
            .iter()
            .map(|d| (d.kind.as_str(), d.item.as_str()))
            .collect();
        assert!(
            kinds.contains(&("modified", "demo-1.0.dist-info: demo.py")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("missing", "demo-1.0.dist-info: gone.py")),
            "{kinds:?}"
        );
        assert!(kinds.contains(&("extra", "planted.py")), "{kinds:?}");
    }
}
