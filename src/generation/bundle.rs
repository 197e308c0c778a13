//! Build once, stamp many: a checked generation packed into one file, and
//! unpacked at disk speed into other images of the same kind.
//!
//! `venvbake bundle` takes the active generation of a profile in a built
//! image only when `verify` finds it clean and it matches the profile, and
//! writes a tar file: first `venvbake-bundle.json` ([`Header`]: the
//! generation's name, its build inputs, the OS and Python it was built
//! for, its completion record and its tree hash), then every file of the
//! generation under `generation/`, except the completion record itself.
//! `apply --bundle` compares the header with what it would build
//! ([`mismatches`]: any differing field refuses the bundle, naming it),
//! unpacks ([`unpack`], refusing paths that climb out or pass through a
//! symlink), checks the unpacked tree's content hash against the header, and
//! only then writes the completion record: a killed unpack leaves an
//! incomplete generation that the next apply removes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generation::manifest::GenerationRecord;
use crate::generation::store::Inputs;

/// What the first member of a bundle says.
pub const FORMAT: &str = "venvbake-bundle-v1";
const HEADER_NAME: &str = "venvbake-bundle.json";
const PREFIX: &str = "generation";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub profile: String,
    pub generation: String,
    pub fingerprint: String,
    /// Everything the generation was built from (the fingerprint's inputs).
    pub inputs: Inputs,
    /// `ID` and `VERSION_ID` of the image it was built in.
    pub os_id: String,
    pub os_version_id: String,
    pub python_version: String,
    pub abi: String,
    /// The content hash of the generation's files (`verify::tree_sha256`).
    pub tree_sha256: String,
    /// The generation's completion record, written after the unpack checks.
    pub record: GenerationRecord,
}

/// What this target would build, to compare a bundle with.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub generation: &'a str,
    pub inputs: &'a Inputs,
    pub os_id: &'a str,
    pub os_version_id: &'a str,
    /// Known once the interpreter is probed (None: not compared yet).
    pub python_version: Option<&'a str>,
    pub abi: Option<&'a str>,
}

/// Each field where the bundle differs from the target: (field, bundle's, target's).
pub fn mismatches(h: &Header, w: &Wanted) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, a: String, b: String| {
        if a != b {
            out.push((field.to_string(), a, b));
        }
    };
    let (i, j) = (&h.inputs, w.inputs);
    cmp(
        "venv.path",
        i.venv_path.display().to_string(),
        j.venv_path.display().to_string(),
    );
    cmp(
        "venv.python",
        i.python.display().to_string(),
        j.python.display().to_string(),
    );
    cmp(
        "os",
        format!("{} {}", h.os_id, h.os_version_id),
        format!("{} {}", w.os_id, w.os_version_id),
    );
    if let Some(v) = w.python_version {
        cmp("python.version", h.python_version.clone(), v.to_string());
    }
    if let Some(abi) = w.abi {
        cmp("python.abi", h.abi.clone(), abi.to_string());
    }
    cmp(
        "python.identity (size:mtime of the interpreter)",
        i.python_identity.clone(),
        j.python_identity.clone(),
    );
    cmp(
        "lock (sha256 of the venv's lines)",
        i.requirements_sha256.clone(),
        j.requirements_sha256.clone(),
    );
    cmp(
        "venv.system_site_packages",
        i.system_site_packages.to_string(),
        j.system_site_packages.to_string(),
    );
    cmp(
        "venv.allow_sdist",
        i.allow_sdist.to_string(),
        j.allow_sdist.to_string(),
    );
    cmp("venv.pip", i.pip.to_string(), j.pip.to_string());
    cmp("generation", h.generation.clone(), w.generation.to_string());
    out
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(action, path, e)
}

/// Files of a generation that the bundle carries: not those that describe
/// it (the record goes in the header).
fn carried(rel: &Path) -> bool {
    !crate::generation::verify::describes_generation(rel)
}

/// Pack the generation at `gen_host` behind `header` into `out` (written
/// to a temporary file beside it, then renamed; what a killed `bundle` of
/// the same file left beside it goes first: bundles are large).
pub fn write(header: &Header, gen_host: &Path, out: &Path) -> Result<u64> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::sys::fsutil::remove_stale_temps(dir, &name);
    let tmp = crate::sys::fsutil::temp_path(dir, &name);
    let result = (|| -> Result<u64> {
        let file = File::create(&tmp).map_err(io("create", &tmp))?;
        let mut b = tar::Builder::new(BufWriter::new(file));
        b.follow_symlinks(false);
        let mut text = serde_json::to_string_pretty(header).unwrap_or_default();
        text.push('\n');
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, HEADER_NAME, text.as_bytes())
            .map_err(io("write", &tmp))?;
        let mut paths = Vec::new();
        collect(gen_host, &mut paths).map_err(io("read", gen_host))?;
        paths.sort();
        for p in paths {
            let rel = p.strip_prefix(gen_host).unwrap_or(&p);
            if !carried(rel) {
                continue;
            }
            b.append_path_with_name(&p, Path::new(PREFIX).join(rel))
                .map_err(io("pack", &p))?;
        }
        let w = b.into_inner().map_err(io("write", &tmp))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&tmp, out).map_err(io("rename", out))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let t = e.file_type()?;
        out.push(p.clone());
        if t.is_dir() {
            collect(&p, out)?;
        }
    }
    Ok(())
}

fn bad(file: &Path, message: impl Into<String>) -> Error {
    Error::Bundle {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Read the header of the bundle `file`.
pub fn read_header(file: &Path) -> Result<Header> {
    let f = File::open(file).map_err(io("open", file))?;
    let mut a = tar::Archive::new(BufReader::new(f));
    let mut entries = a.entries().map_err(|e| bad(file, e.to_string()))?;
    let mut first = entries
        .next()
        .ok_or_else(|| bad(file, "it is empty"))?
        .map_err(|e| bad(file, format!("not a tar file ({e})")))?;
    if first.path().ok().as_deref() != Some(Path::new(HEADER_NAME)) {
        return Err(bad(
            file,
            format!("its first member is not `{HEADER_NAME}`"),
        ));
    }
    let mut text = String::new();
    first
        .by_ref()
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| bad(file, e.to_string()))?;
    let header: Header =
        serde_json::from_str(&text).map_err(|e| bad(file, format!("unreadable header: {e}")))?;
    if header.format != FORMAT {
        return Err(bad(
            file,
            format!("format `{}`, this venvbake reads `{FORMAT}`", header.format),
        ));
    }
    Ok(header)
}

/// Files are written by this many threads: creating a file is metadata work
/// whose latency overlaps well (measured on an image tree: 4,000 files take
/// 2.2 s on one thread, 0.9 s on eight).
const WRITERS: usize = 8;
/// File data read ahead of the writers, at most (a larger file goes alone).
const IN_FLIGHT: u64 = 16 << 20;

/// One file for a writer thread.
struct Job {
    dest: PathBuf,
    /// `dest` relative to the generation.
    rel: PathBuf,
    mode: u32,
    mtime: u64,
    data: Vec<u8>,
}

/// Bytes read but not yet written, bounded by [`IN_FLIGHT`].
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, n: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + n > IN_FLIGHT {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
    }
    fn give(&self, n: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// Write one file; returns the sha256 of what was written.
fn write_job(job: &Job) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(job.mode)
        .open(&job.dest)?;
    f.write_all(&job.data)?;
    f.set_permissions(std::fs::Permissions::from_mode(job.mode))?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(job.mtime))?;
    Ok(sha2::Sha256::digest(&job.data).into())
}

/// Unpack the generation files of `file` into `gen_host` (which must not
/// exist; its parent is made): directories and symlinks in order, file contents by a pool of
/// writer threads. Returns the number of entries written, and the size and
/// sha256 of each file as written (the tree hash then need not read them).
pub fn unpack(file: &Path, gen_host: &Path) -> Result<(usize, crate::generation::verify::Known)> {
    let f = File::open(file).map_err(io("open", file))?;
    let mut a = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    if let Some(parent) = gen_host.parent() {
        crate::sys::fsutil::create_dirs(parent)?;
    }
    std::fs::create_dir(gen_host).map_err(io("create", gen_host))?;
    let budget = Budget {
        used: Mutex::new(0),
        freed: Condvar::new(),
    };
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let written: Mutex<crate::generation::verify::Known> = Mutex::default();
    // One queue per writer, chosen by the file's directory: creating files in
    // one directory is serialised by the kernel, so each directory's files go
    // to one writer while the others work on other directories.
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..WRITERS {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(1024);
        txs.push(tx);
        rxs.push(rx);
    }
    let mut n = 0;
    let read = std::thread::scope(|s| -> Result<()> {
        for rx in rxs {
            let (failed, budget, written) = (&failed, &budget, &written);
            s.spawn(move || {
                for job in rx {
                    let size = job.data.len() as u64;
                    match write_job(&job) {
                        Ok(digest) => {
                            if let Ok(mut w) = written.lock() {
                                w.insert(&job.rel, size, digest);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(Error::io("write", &job.dest, e));
                            }
                        }
                    }
                    budget.give(size);
                }
            });
        }
        let result = (|| -> Result<()> {
            let mut links: Vec<PathBuf> = Vec::new();
            for entry in a.entries().map_err(|e| bad(file, e.to_string()))? {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return Ok(());
                }
                let mut entry = entry.map_err(|e| bad(file, e.to_string()))?;
                let path = entry
                    .path()
                    .map_err(|e| bad(file, e.to_string()))?
                    .into_owned();
                if path == Path::new(HEADER_NAME) {
                    continue;
                }
                let rel = checked(file, &path, &links)?;
                let dest = gen_host.join(&rel);
                let header = entry.header();
                let t = header.entry_type();
                let mode = || -> Result<u32> {
                    Ok(header.mode().map_err(|e| bad(file, e.to_string()))? & 0o7777)
                };
                if t.is_dir() {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir(&dest).map_err(io("create", &dest))?;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode()?))
                        .map_err(io("chmod", &dest))?;
                } else if t.is_symlink() {
                    let target = entry
                        .link_name()
                        .map_err(|e| bad(file, e.to_string()))?
                        .ok_or_else(|| {
                            bad(file, format!("`{}`: a symlink to nothing", path.display()))
                        })?
                        .into_owned();
                    std::os::unix::fs::symlink(&target, &dest).map_err(io("create", &dest))?;
                    links.push(rel);
                } else if t.is_file() {
                    let mode = mode()?;
                    let mtime = header.mtime().unwrap_or(0);
                    let size = entry.size();
                    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| bad(file, format!("`{}`: {e}", path.display())))?;
                    budget.take(size);
                    let writer = {
                        use std::hash::{Hash, Hasher};
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        rel.parent().hash(&mut h);
                        (h.finish() % WRITERS as u64) as usize
                    };
                    if txs[writer]
                        .send(Job {
                            dest,
                            rel,
                            mode,
                            mtime,
                            data,
                        })
                        .is_err()
                    {
                        return Ok(());
                    }
                } else {
                    return Err(bad(
                        file,
                        format!("`{}`: unsupported entry type", path.display()),
                    ));
                }
                n += 1;
            }
            Ok(())
        })();
        drop(txs);
        result
    });
    read?;
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok((n, written.into_inner().unwrap_or_default()))
}

/// A bundle unpacking into its generation on another thread while the
/// apply does the rest (the probe, the fingerprint check). Dropped without
/// [`Early::take`], it waits for the unpack and removes what it made: a
/// bundle refused later leaves nothing behind.
pub struct Early {
    dir: PathBuf,
    started: std::time::Instant,
    thread: Option<std::thread::JoinHandle<Result<(usize, crate::generation::verify::Known)>>>,
}

impl Early {
    /// Start unpacking `file` into `gen_host`, as [`unpack`] does.
    pub fn start(file: &Path, gen_host: &Path) -> Early {
        let (file, dir) = (file.to_path_buf(), gen_host.to_path_buf());
        let thread = std::thread::spawn({
            let dir = dir.clone();
            move || unpack(&file, &dir)
        });
        Early {
            dir,
            started: std::time::Instant::now(),
            thread: Some(thread),
        }
    }

    /// Wait for the unpack: what [`unpack`] returns, and when it started.
    pub fn take(
        mut self,
    ) -> (
        Result<(usize, crate::generation::verify::Known)>,
        std::time::Instant,
    ) {
        let r = match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(Error::Internal("the bundle's unpack thread failed".into())),
        };
        (r, self.started)
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The path of a member inside the generation, refused when it would land
/// outside it, on the completion record, or through a symlink unpacked before.
fn checked(file: &Path, path: &Path, links: &[PathBuf]) -> Result<PathBuf> {
    let Ok(rel) = path.strip_prefix(PREFIX) else {
        return Err(bad(
            file,
            format!("`{}` is outside `{PREFIX}/`", path.display()),
        ));
    };
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || rel.as_os_str().is_empty() || !carried(rel) {
        return Err(bad(
            file,
            format!(
                "`{}` would be written outside the generation",
                path.display()
            ),
        ));
    }
    if links.iter().any(|l| rel.starts_with(l)) {
        return Err(bad(
            file,
            format!("`{}` passes through a symlink", path.display()),
        ));
    }
    Ok(rel.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT.into(),
            profile: "p".into(),
            generation: "g1-aaaaaaaa".into(),
            fingerprint: "f".into(),
            inputs: Inputs {
                venv_path: "/opt/venvs/p".into(),
                python: "/usr/bin/python3".into(),
                python_identity: "1:2".into(),
                requirements_sha256: "abc".into(),
                system_site_packages: false,
                allow_sdist: false,
                pip: true,
                import_check_skip: vec![],
            },
            os_id: "debian".into(),
            os_version_id: "12".into(),
            python_version: "3.11.2".into(),
            abi: "cpython-311-x86_64-linux-gnu".into(),
            tree_sha256: "t".into(),
            record: serde_json::from_str(r#"{"schema_version":1,"generation":"g1-aaaaaaaa","fingerprint":"f","python":{"base":"/usr/bin/python3","version":"3.11.2","abi":"a"},"externally_managed":true,"distributions":[],"built_at":"x","system_site_packages":false}"#).unwrap(),
        }
    }

    #[test]
    fn a_generation_round_trips_and_its_record_stays_out() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("g1");
        std::fs::create_dir_all(g.join("bin")).unwrap();
        std::fs::create_dir_all(g.join(".venvbake")).unwrap();
        std::fs::write(g.join("bin/tool"), b"#!/x\n").unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", g.join("bin/python")).unwrap();
        std::fs::write(g.join(".venvbake/generation.json"), b"{}").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(g.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let out = dir.path().join("b.tar");
        // What a killed `bundle -o b.tar` left: its PID is gone from /proc.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".b.tar.venvbake-tmp-{dead}"));
        std::fs::write(&stale, b"half a bundle").unwrap();
        write(&header(), &g, &out).unwrap();
        assert!(!stale.exists(), "a killed bundle's temporary file stays");
        assert_eq!(read_header(&out).unwrap(), header());
        let back = dir.path().join("back");
        unpack(&out, &back).unwrap();
        assert_eq!(std::fs::read(back.join("bin/tool")).unwrap(), b"#!/x\n");
        let mode = std::fs::metadata(back.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(back.join("bin/python")).unwrap(),
            Path::new("/usr/bin/python3")
        );
        assert!(!back.join(".venvbake/generation.json").exists());
        assert!(
            unpack(&out, &back).is_err(),
            "never unpacks over an existing generation"
        );
    }

    #[test]
    fn hostile_bundles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let make = |members: &[(&str, Option<&str>)]| {
            let out = dir.path().join("h.tar");
            let mut b = tar::Builder::new(File::create(&out).unwrap());
            let text = serde_json::to_string(&header()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, HEADER_NAME, text.as_bytes()).unwrap();
            for (name, link) in members {
                let mut h = tar::Header::new_gnu();
                match link {
                    Some(l) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        b.append_link(&mut h, name, l).unwrap();
                    }
                    None => {
                        h.set_size(1);
                        h.set_mode(0o644);
                        // Bypass the builder's own path checks for `..`.
                        let name_bytes = name.as_bytes();
                        h.as_old_mut().name[..name_bytes.len()].copy_from_slice(name_bytes);
                        h.set_cksum();
                        b.append(&h, &b"x"[..]).unwrap();
                    }
                }
            }
            b.finish().unwrap();
            out
        };
        for (members, want) in [
            (vec![("generation/../evil", None)], "outside the generation"),
            (vec![("elsewhere/x", None)], "outside `generation/`"),
            (
                vec![
                    ("generation/esc", Some("/etc")),
                    ("generation/esc/passwd", None),
                ],
                "passes through a symlink",
            ),
            (
                vec![("generation/.venvbake/generation.json", None)],
                "outside the generation",
            ),
        ] {
            let out = make(&members);
            let dest = dir.path().join("dest");
            let _ = std::fs::remove_dir_all(&dest);
            let err = unpack(&out, &dest).unwrap_err().to_string();
            assert!(err.contains(want), "{members:?}: {err}");
            assert!(!dir.path().join("evil").exists());
        }
        std::fs::write(dir.path().join("junk"), b"not a tar").unwrap();
        assert!(read_header(&dir.path().join("junk")).is_err());
    }

    #[test]
    fn every_differing_field_is_named() {
        let h = header();
        let same = h.inputs.clone();
        let w = Wanted {
            generation: "g1-aaaaaaaa",
            inputs: &same,
            os_id: "debian",
            os_version_id: "12",
            python_version: Some("3.11.2"),
            abi: Some("cpython-311-x86_64-linux-gnu"),
        };
        assert!(mismatches(&h, &w).is_empty());
        let mut other = h.inputs.clone();
        other.requirements_sha256 = "other".into();
        let w = Wanted {
            inputs: &other,
            os_version_id: "13",
            ..w
        };
        let fields: Vec<String> = mismatches(&h, &w).into_iter().map(|m| m.0).collect();
        assert_eq!(fields, ["os", "lock (sha256 of the venv's lines)"]);
    }
}
