//! Installing one wheel into a venv, as pip would (the binary distribution
//! format, PEP 427, and the recording of installed files, PEP 376/627).
//!
//! A wheel is a zip archive. Its files go to `site-packages`, except those
//! under `{name}-{version}.data/`: `purelib`/`platlib` to `site-packages`,
//! `scripts` to `bin` (a `#!python` first line becomes the venv's
//! interpreter), `headers` to `include/site/pythonX.Y/{name}` and `data` to
//! the venv's root. Console and GUI entry points become scripts in `bin` with
//! pip's launcher text. Every written file is hashed as it is written and
//! `RECORD` lists it with its sha256 and size (the caller adds the byte-code
//! files later, [`Installed::add_files`]); `pip` and `venvbake verify` read it. `INSTALLER` says `venvbake`; `REQUESTED`
//! marks what the lock asked for. Archive paths that climb out (`..`, absolute)
//! are refused before anything is written for them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sys::record::{record_hash, RecordRow};

/// Where a venv's parts are, as host paths, and how its scripts start.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The venv's root.
    pub prefix: PathBuf,
    /// `lib/pythonX.Y/site-packages` under `prefix`.
    pub site: PathBuf,
    /// The interpreter scripts name in their `#!` line (a target path).
    pub python: String,
    pub major: u32,
    pub minor: u32,
}

impl Layout {
    fn bin(&self) -> PathBuf {
        self.prefix.join("bin")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a usable wheel: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
    /// PEP 427: a member differs from what the wheel's own RECORD says of it.
    #[error("`{}` does not match its own RECORD: `{member}` {problem}", file.display())]
    Record {
        file: PathBuf,
        member: String,
        problem: String,
    },
}

impl WheelError {
    /// The I/O error underneath, if any (disk full is told apart by callers).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            WheelError::Io { source, .. } => Some(source),
            WheelError::Invalid { .. } | WheelError::Record { .. } => None,
        }
    }
}

/// What installing one wheel wrote. Its `RECORD` is already on disk.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Host path of the `.dist-info` directory.
    pub dist_info: PathBuf,
    /// `.py` files written (host paths) and their sizes, for byte-code.
    pub sources: Vec<(PathBuf, u64)>,
    /// Files written and their bytes.
    pub files: usize,
    pub bytes: u64,
}

/// Write `dist_info/RECORD`: `rows` sorted, then `RECORD` itself.
fn write_record(dist_info: &Path, site: &Path, rows: Vec<RecordRow>) -> Result<(), WheelError> {
    let record = dist_info.join("RECORD");
    let text = crate::sys::record::render(rows, &rel_to_site(site, &record));
    write_new(&record, text.as_bytes(), 0o644, true).map(|_| ())
}

impl Installed {
    /// Add files written after installation (byte-code: host path,
    /// `sha256=...` hash and size, as their writer computed them) to
    /// `RECORD`. The rows live on disk in between, not in memory: a big
    /// venv has tens of thousands.
    pub fn add_files(
        &self,
        site: &Path,
        files: &[(PathBuf, String, u64)],
    ) -> Result<(), WheelError> {
        if files.is_empty() {
            return Ok(());
        }
        let record = self.dist_info.join("RECORD");
        let text = std::fs::read_to_string(&record).map_err(|source| WheelError::Io {
            action: "read",
            path: record.clone(),
            source,
        })?;
        let mut rows: Vec<RecordRow> = crate::sys::record::parse_record(&text)
            .into_iter()
            .map(|e| RecordRow {
                path: e.path,
                hash: e.sha256.map(|h| format!("sha256={h}")).unwrap_or_default(),
                size: e.size,
            })
            .collect();
        for (path, hash, size) in files {
            rows.push(RecordRow {
                path: rel_to_site(site, path),
                hash: hash.clone(),
                size: Some(*size),
            });
        }
        write_record(&self.dist_info, site, rows)
    }
}

/// `path` relative to `site`, `/`-separated; paths outside climb with `..`.
fn rel_to_site(site: &Path, path: &Path) -> String {
    if let Ok(rel) = path.strip_prefix(site) {
        return slash(rel);
    }
    let mut up = String::new();
    let mut base = site;
    while let Some(parent) = base.parent() {
        up.push_str("../");
        if let Ok(rel) = path.strip_prefix(parent) {
            return format!("{up}{}", slash(rel));
        }
        base = parent;
    }
    slash(path)
}

fn slash(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Create `path` (it must not exist unless `replace`) with `bytes`; returns its sha256 and size.
fn write_new(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
) -> Result<([u8; 32], u64), WheelError> {
    let mut w = open_new(path, mode, replace)?;
    w.write_all(bytes).map_err(|source| WheelError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })?;
    Ok((w.hash.finalize().into(), w.size))
}

fn open_new(path: &Path, mode: u32, replace: bool) -> Result<Hashing<File>, WheelError> {
    let mut o = OpenOptions::new();
    o.write(true).mode(mode);
    if replace {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    // Most files go where an earlier one made the directory: make it only
    // when missing (a failed mkdir per file is not free).
    let f = match o.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| WheelError::Io {
                    action: "create directory",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            o.open(path)
        }
        r => r,
    }
    .map_err(|source| WheelError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Hashing {
        inner: f,
        hash: Sha256::new(),
        size: 0,
    })
}

/// A safe relative path from an archive name: no root, no `..`, no empty parts.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Read the `WHEEL` and `METADATA` files' header fields we need.
fn headers(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    out
}

/// Where the members of one wheel go.
struct Destinations<'a> {
    layout: &'a Layout,
    dist_info: &'a str,
    /// `{name}-{version}.data/`
    data_dir: &'a str,
    headers_dir: &'a Path,
}

impl Destinations<'_> {
    /// The host path of archive member `raw` and whether it is a script;
    /// `None` for what is not installed as it is (directories, `RECORD`).
    fn of(&self, raw: &str) -> Result<Option<(PathBuf, bool)>, String> {
        if raw.ends_with('/') || raw == format!("{}/RECORD", self.dist_info) {
            return Ok(None);
        }
        let Some(rel) = safe_relative(raw) else {
            return Err(format!("`{raw}` would be written outside the venv"));
        };
        let site = &self.layout.site;
        let Some(rest) = raw.strip_prefix(self.data_dir) else {
            return Ok(Some((site.join(rel), false)));
        };
        let (key, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(rest) = safe_relative(rest) else {
            return Err(format!("`{raw}` is not inside a .data scheme"));
        };
        Ok(Some(match key {
            "purelib" | "platlib" => (site.join(rest), false),
            "scripts" => (self.layout.bin().join(rest), true),
            "headers" => (self.headers_dir.join(rest), false),
            "data" => (self.layout.prefix.join(rest), false),
            other => return Err(format!("`{raw}`: unknown .data scheme `{other}`")),
        }))
    }
}

/// Install `file` (already hash-checked by the caller) into `layout`.
pub fn install(file: &Path, layout: &Layout, requested: bool) -> Result<Installed, WheelError> {
    let invalid = |message: String| WheelError::Invalid {
        file: file.to_path_buf(),
        message,
    };
    let f = File::open(file).map_err(|source| WheelError::Io {
        action: "open",
        path: file.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| invalid(format!("not a zip archive ({e})")))?;

    // The one top-level `.dist-info` directory, and the `.data` beside it.
    let mut dist_infos: Vec<String> = zip
        .file_names()
        .filter_map(|n| {
            let n = n.ok()?;
            let (top, _) = n.split_once('/')?;
            top.ends_with(".dist-info").then(|| top.to_string())
        })
        .collect();
    dist_infos.sort();
    dist_infos.dedup();
    let dist_info = match dist_infos.as_slice() {
        [one] => one.clone(),
        [] => return Err(invalid("it has no .dist-info directory".into())),
        more => {
            return Err(invalid(format!(
                "it has several .dist-info directories: {}",
                more.join(", ")
            )))
        }
    };
    let read_member = |zip: &mut zip::ZipArchive<_>, name: &str| -> Result<String, WheelError> {
        let mut m = zip
            .by_name(name)
            .map_err(|e| invalid(format!("`{name}`: {e}")))?;
        let mut s = String::new();
        m.read_to_string(&mut s)
            .map_err(|e| invalid(format!("`{name}`: {e}")))?;
        Ok(s)
    };
    let wheel_meta = headers(&read_member(&mut zip, &format!("{dist_info}/WHEEL"))?);
    let major = wheel_meta
        .get("Wheel-Version")
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    if major != Some(1) {
        return Err(invalid(format!(
            "Wheel-Version {:?} is not 1.x",
            wheel_meta.get("Wheel-Version")
        )));
    }
    // PEP 427: every member but RECORD (and its signatures) is listed in
    // RECORD with its hash and size; the installer checks them.
    let record_name = format!("{dist_info}/RECORD");
    let recorded: BTreeMap<String, (Option<String>, Option<u64>)> =
        crate::sys::record::parse_record(&read_member(&mut zip, &record_name)?)
            .into_iter()
            .map(|e| (e.path, (e.sha256.map(|h| format!("sha256={h}")), e.size)))
            .collect();
    let unsigned = |raw: &str| {
        raw == record_name
            || raw == format!("{record_name}.jws")
            || raw == format!("{record_name}.p7s")
    };
    let check = |raw: &str, digest: &[u8], size: u64| -> Result<(), WheelError> {
        let problem = match recorded.get(raw) {
            None if unsigned(raw) => return Ok(()),
            None => "is not listed in it".to_string(),
            Some((Some(want), _)) if *want != record_hash(digest) => {
                format!("has {}, RECORD says {want}", record_hash(digest))
            }
            Some((_, Some(want))) if *want != size => {
                format!("has {size} bytes, RECORD says {want}")
            }
            Some(_) => return Ok(()),
        };
        Err(WheelError::Record {
            file: file.to_path_buf(),
            member: raw.to_string(),
            problem,
        })
    };
    let metadata = headers(&read_member(&mut zip, &format!("{dist_info}/METADATA"))?);
    let name = metadata
        .get("Name")
        .cloned()
        .ok_or_else(|| invalid("METADATA has no Name".into()))?;
    let data_dir = format!(
        "{}.data/",
        dist_info.strip_suffix(".dist-info").unwrap_or(&dist_info)
    );

    let site = &layout.site;
    let mut out = Installed {
        dist_info: site.join(&dist_info),
        sources: Vec::new(),
        files: 0,
        bytes: 0,
    };
    let mut rows: Vec<RecordRow> = Vec::new();
    let headers_dir = layout
        .prefix
        .join(format!(
            "include/site/python{}.{}",
            layout.major, layout.minor
        ))
        .join(&name);
    let to = Destinations {
        layout,
        dist_info: &dist_info,
        data_dir: &data_dir,
        headers_dir: &headers_dir,
    };
    // Two passes. The first writes and hashes, keeping only fixed-size facts:
    // per-member heap strings kept alive between the decompressors' buffers
    // would fragment the allocator (measured: 28 MB of arena for one worker
    // instead of 4). The second turns the facts into RECORD rows.
    let mut written: Vec<(usize, [u8; 32], u64)> = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| invalid(format!("member {i}: {e}")))?;
        let raw = member
            .name()
            .map_err(|e| invalid(format!("member {i}: {e}")))?
            .into_owned();
        if member.is_dir() {
            continue;
        }
        let Some((dest, is_script)) = to.of(&raw).map_err(invalid)? else {
            continue;
        };
        if !recorded.contains_key(&raw) && !unsigned(&raw) {
            return Err(WheelError::Record {
                file: file.to_path_buf(),
                member: raw,
                problem: "is not listed in it".into(),
            });
        }
        let executable = member.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mode = if executable || is_script {
            0o755
        } else {
            0o644
        };
        let (digest, size) = if is_script {
            let mut bytes = Vec::new();
            member
                .read_to_end(&mut bytes)
                .map_err(|e| invalid(format!("`{raw}`: {e}")))?;
            // RECORD describes the script as the wheel has it.
            check(&raw, &Sha256::digest(&bytes), bytes.len() as u64)?;
            let bytes = fix_script_shebang(bytes, &layout.python);
            write_new(&dest, &bytes, mode, true)?
        } else {
            let mut w = open_new(&dest, mode, false)?;
            std::io::copy(&mut member, &mut w).map_err(|source| {
                // A broken member reads as InvalidData; a full disk is a write error.
                if source.kind() == std::io::ErrorKind::InvalidData {
                    invalid(format!("`{raw}`: {source}"))
                } else {
                    WheelError::Io {
                        action: "write",
                        path: dest.clone(),
                        source,
                    }
                }
            })?;
            let (digest, size): ([u8; 32], u64) = (w.hash.finalize().into(), w.size);
            check(&raw, &digest, size)?;
            (digest, size)
        };
        written.push((i, digest, size));
    }
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(Cow::into_owned).unwrap_or_default())
        .collect();
    for (i, digest, size) in written {
        let Ok(Some((dest, _))) = to.of(&names[i]) else {
            continue;
        };
        // pip compiles every installed `.py` file, a `.py` script in `bin` too.
        if dest.extension().is_some_and(|e| e == "py") {
            out.sources.push((dest.clone(), size));
        }
        rows.push(RecordRow {
            path: rel_to_site(site, &dest),
            hash: record_hash(&digest),
            size: Some(size),
        });
    }

    // Entry points become launcher scripts.
    let entry_points = out.dist_info.join("entry_points.txt");
    if let Ok(text) = std::fs::read_to_string(&entry_points) {
        for (script, target) in console_scripts(&text, &name, layout.major, layout.minor) {
            let body = launcher(&layout.python, &target).ok_or_else(|| {
                invalid(format!(
                    "entry point `{script} = {target}` is not `module:function`"
                ))
            })?;
            let dest = layout.bin().join(&script);
            if safe_relative(&script).is_none_or(|r| r.components().count() != 1) {
                return Err(invalid(format!(
                    "entry point name `{script}` is not a file name"
                )));
            }
            let (digest, size) = write_new(&dest, body.as_bytes(), 0o755, true)?;
            rows.push(RecordRow {
                path: rel_to_site(site, &dest),
                hash: record_hash(&digest),
                size: Some(size),
            });
        }
    }
    let mut marks = vec![("INSTALLER", "venvbake\n")];
    if requested {
        marks.push(("REQUESTED", ""));
    }
    for (file, text) in marks {
        let dest = out.dist_info.join(file);
        let (digest, size) = write_new(&dest, text.as_bytes(), 0o644, true)?;
        rows.push(RecordRow {
            path: rel_to_site(site, &dest),
            hash: record_hash(&digest),
            size: Some(size),
        });
    }
    out.files = rows.len();
    out.bytes = rows.iter().filter_map(|r| r.size).sum();
    write_record(&out.dist_info, site, rows)?;
    Ok(out)
}

/// `[console_scripts]` and `[gui_scripts]` of `entry_points.txt` as
/// (script name, `module:attr`). pip's and setuptools' own versioned scripts
/// are named for the interpreter they are installed for, as pip does.
pub fn console_scripts(text: &str, dist: &str, major: u32, minor: u32) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_scripts = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_scripts = matches!(section.trim(), "console_scripts" | "gui_scripts");
            continue;
        }
        if !in_scripts {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let versioned = |name: &str, base: &str| {
        name == base
            || name
                .strip_prefix(base)
                .map(|r| r.trim_start_matches('-'))
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    let dist = dist.to_ascii_lowercase();
    for (base, names) in [
        (
            "pip",
            vec![
                "pip".to_string(),
                format!("pip{major}"),
                format!("pip{major}.{minor}"),
            ],
        ),
        (
            "easy_install",
            vec![
                "easy_install".to_string(),
                format!("easy_install-{major}.{minor}"),
            ],
        ),
    ] {
        let own =
            (base == "pip" && dist == "pip") || (base == "easy_install" && dist == "setuptools");
        if !own {
            continue;
        }
        let Some(target) = out
            .iter()
            .find(|(n, _)| versioned(n, base))
            .map(|(_, t)| t.clone())
        else {
            continue;
        };
        out.retain(|(n, _)| !versioned(n, base));
        out.extend(names.into_iter().map(|n| (n, target.clone())));
    }
    out
}

/// The `#!` line for `python`: direct when the kernel can take it, else
/// through `/bin/sh` (long paths or spaces), as pip writes it.
fn shebang(python: &str) -> String {
    if python.len() + 2 <= 127 && !python.contains(' ') {
        format!("#!{python}\n")
    } else {
        format!("#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n")
    }
}

/// pip's launcher text for `module:attr.sub [extras]`.
fn launcher(python: &str, target: &str) -> Option<String> {
    let target = target.split('[').next().unwrap_or(target).trim();
    let (module, attr) = target.split_once(':')?;
    let (module, attr) = (module.trim(), attr.trim());
    if module.is_empty() || attr.is_empty() {
        return None;
    }
    let import = attr.split('.').next().unwrap_or(attr);
    Some(format!(
        "{}# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import}\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({attr}())\n",
        shebang(python)
    ))
}

/// A `.data/scripts` file whose first line is `#!python` (or `#!pythonw`)
/// starts with the venv's interpreter instead.
fn fix_script_shebang(bytes: Vec<u8>, python: &str) -> Vec<u8> {
    let first_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let first = &bytes[..first_end];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let Some(rest) = first
        .strip_prefix(b"#!pythonw")
        .or_else(|| first.strip_prefix(b"#!python"))
    else {
        return bytes;
    };
    let args = String::from_utf8_lossy(rest).trim().to_string();
    let mut line = shebang(python);
    if !args.is_empty() && line.starts_with(&format!("#!{python}")) {
        line = format!("#!{python} {args}\n");
    }
    let mut out = line.into_bytes();
    out.extend_from_slice(&bytes[(first_end + 1).min(bytes.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::record::csv_field;

    /// A wheel made here, with the layout a real build backend writes and
    /// a RECORD that lists every member.
    fn make_wheel(dir: &Path, members: &[(&str, &[u8], u32)]) -> PathBuf {
        let mut record = String::new();
        for (name, data, _) in members {
            let hash = record_hash(&Sha256::digest(data));
            record.push_str(&format!("{},{hash},{}\n", csv_field(name), data.len()));
        }
        record.push_str("demo-1.0.dist-info/RECORD,,\n");
        make_wheel_with_record(dir, members, &record)
    }

    /// A wheel with the RECORD given.
    fn make_wheel_with_record(dir: &Path, members: &[(&str, &[u8], u32)], record: &str) -> PathBuf {
        let mut all = members.to_vec();
        all.push(("demo-1.0.dist-info/RECORD", record.as_bytes(), 0o644));
        zip_of(dir, &all)
    }

    /// A zip archive of exactly `members`, named as a wheel.
    fn zip_of(dir: &Path, members: &[(&str, &[u8], u32)]) -> PathBuf {
        let path = dir.join("demo-1.0-py3-none-any.whl");
        let f = File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for (name, data, mode) in members {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        path
    }

    fn layout(root: &Path) -> Layout {
        Layout {
            prefix: root.to_path_buf(),
            site: root.join("lib/python3.11/site-packages"),
            python: "/opt/v.generations/g1-x/bin/python".into(),
            major: 3,
            minor: 11,
        }
    }

    const WHEEL: &[u8] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    const META: &[u8] = b"Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\n";

    #[test]
    fn a_wheel_lands_where_pip_puts_it() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(
            dir.path(),
            &[
                ("demo/__init__.py", b"X = 1\n", 0o644),
                ("demo/tool.so", b"\x7fELF", 0o755),
                (
                    "demo-1.0.data/scripts/demo-run",
                    b"#!python\nprint(1)\n",
                    0o644,
                ),
                ("demo-1.0.data/data/share/demo/a.txt", b"a", 0o644),
                ("demo-1.0.data/headers/demo.h", b"int x;", 0o644),
                ("demo-1.0.dist-info/WHEEL", WHEEL, 0o644),
                ("demo-1.0.dist-info/METADATA", META, 0o644),
                (
                    "demo-1.0.dist-info/entry_points.txt",
                    b"[console_scripts]\ndemo = demo.cli:main.run [extra]\n[other]\nx = y:z\n",
                    0o644,
                ),
            ],
        );
        let root = dir.path().join("venv");
        let l = layout(&root);
        let got = install(&whl, &l, true).unwrap();
        let site = &l.site;
        assert_eq!(
            std::fs::read(site.join("demo/__init__.py")).unwrap(),
            b"X = 1\n"
        );
        assert_eq!(got.sources, [(site.join("demo/__init__.py"), 6)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&site.join("demo/tool.so")), 0o755);
        assert_eq!(mode(&site.join("demo/__init__.py")), 0o644);
        let script = std::fs::read_to_string(root.join("bin/demo-run")).unwrap();
        assert_eq!(script, "#!/opt/v.generations/g1-x/bin/python\nprint(1)\n");
        assert_eq!(mode(&root.join("bin/demo-run")), 0o755);
        assert!(root.join("share/demo/a.txt").is_file());
        assert!(root.join("include/site/python3.11/Demo/demo.h").is_file());
        let launcher = std::fs::read_to_string(root.join("bin/demo")).unwrap();
        assert!(launcher.starts_with("#!/opt/v.generations/g1-x/bin/python\n"));
        assert!(launcher.contains("from demo.cli import main\n"));
        assert!(launcher.contains("sys.exit(main.run())"));
        assert!(!root.join("bin/x").exists());
        assert_eq!(
            std::fs::read_to_string(got.dist_info.join("INSTALLER")).unwrap(),
            "venvbake\n"
        );
        assert!(got.dist_info.join("REQUESTED").is_file());

        let record = std::fs::read_to_string(got.dist_info.join("RECORD")).unwrap();
        assert!(!record.contains("stale"), "{record}");
        assert!(record.contains("../../../bin/demo,sha256="), "{record}");
        assert!(
            record.contains("../../../share/demo/a.txt,sha256="),
            "{record}"
        );
        assert!(
            record.ends_with("demo-1.0.dist-info/RECORD,,\n"),
            "{record}"
        );
        let x = format!(
            "demo/__init__.py,sha256={},6\n",
            crate::sys::codec::base64(&Sha256::digest(b"X = 1\n"), true)
        );
        assert!(record.contains(&x), "{record}");
    }

    #[test]
    fn paths_that_climb_out_are_refused() {
        for bad in ["../evil.py", "/etc/evil", "demo/../../evil"] {
            let dir = tempfile::tempdir().unwrap();
            let whl = make_wheel(
                dir.path(),
                &[
                    ("demo-1.0.dist-info/WHEEL", WHEEL, 0o644),
                    ("demo-1.0.dist-info/METADATA", META, 0o644),
                    (bad, b"x", 0o644),
                ],
            );
            let err = install(&whl, &layout(&dir.path().join("v")), false).unwrap_err();
            assert!(err.to_string().contains("outside the venv"), "{bad}: {err}");
            assert!(!dir.path().join("evil.py").exists());
        }
    }

    #[test]
    fn not_a_wheel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-1-py3-none-any.whl");
        std::fs::write(&p, b"not a zip").unwrap();
        let err = install(&p, &layout(dir.path()), false).unwrap_err();
        assert!(err.to_string().contains("not a zip archive"), "{err}");
        let whl = zip_of(dir.path(), &[("demo/x.py", b"", 0o644)]);
        let err = install(&whl, &layout(dir.path()), false).unwrap_err();
        assert!(err.to_string().contains("no .dist-info"), "{err}");
    }

    /// PEP 427: the installer checks each member against the wheel's own
    /// RECORD (the lock's hash pins the archive, not what its author put in).
    #[test]
    fn a_wheel_that_disagrees_with_its_own_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base: [(&str, &[u8], u32); 4] = [
            ("demo/__init__.py", b"X = 1\n", 0o644),
            (
                "demo-1.0.data/scripts/demo-run",
                b"#!python\nprint(1)\n",
                0o644,
            ),
            ("demo-1.0.dist-info/WHEEL", WHEEL, 0o644),
            ("demo-1.0.dist-info/METADATA", META, 0o644),
        ];
        let row = |name: &str, data: &[u8]| {
            format!(
                "{name},{},{}\n",
                record_hash(&Sha256::digest(data)),
                data.len()
            )
        };
        let good: String = base.iter().map(|(n, d, _)| row(n, d)).collect();
        let cases = [
            // A file changed after RECORD was written.
            (
                good.replace(
                    &row("demo/__init__.py", b"X = 1\n"),
                    &row("demo/__init__.py", b"X = 2\n"),
                ),
                "`demo/__init__.py` has sha256=",
            ),
            // A script, checked as the wheel has it (before its shebang is set).
            (
                good.replace(
                    &row("demo-1.0.data/scripts/demo-run", b"#!python\nprint(1)\n"),
                    &row("demo-1.0.data/scripts/demo-run", b"#!python\nprint(2)\n"),
                ),
                "`demo-1.0.data/scripts/demo-run` has sha256=",
            ),
            // The right hash but a wrong size.
            (
                good.replace(",6\n", ",7\n"),
                "`demo/__init__.py` has 6 bytes, RECORD says 7",
            ),
            // A file RECORD does not list.
            (
                good.replace(&row("demo/__init__.py", b"X = 1\n"), ""),
                "`demo/__init__.py` is not listed in it",
            ),
        ];
        for (record, want) in cases {
            let whl = make_wheel_with_record(dir.path(), &base, &record);
            let root = dir.path().join("venv");
            let err = install(&whl, &layout(&root), false).unwrap_err();
            assert!(matches!(err, WheelError::Record { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains("demo-1.0-py3-none-any.whl"), "{text}");
            assert!(text.contains(want), "{want}: {text}");
            let _ = std::fs::remove_dir_all(&root);
        }
        // Signatures of RECORD need no row; the same wheel then installs.
        let mut signed = base.to_vec();
        signed.push(("demo-1.0.dist-info/RECORD.jws", b"{}", 0o644));
        let whl = make_wheel_with_record(dir.path(), &signed, &good);
        install(&whl, &layout(&dir.path().join("ok")), false).unwrap();
    }

    #[test]
    fn pip_scripts_are_named_for_the_target_python() {
        let ep = "[console_scripts]\npip = pip._internal.cli.main:main\npip3 = pip._internal.cli.main:main\npip3.9 = pip._internal.cli.main:main\n";
        let mut names: Vec<String> = console_scripts(ep, "pip", 3, 13)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["pip", "pip3", "pip3.13"]);
        // Another distribution's `pip3` script is its own business.
        assert_eq!(console_scripts(ep, "other", 3, 13).len(), 3);
    }

    #[test]
    fn long_interpreter_paths_go_through_sh() {
        let long = format!("/opt/{}/bin/python", "x".repeat(130));
        let s = launcher(&long, "m:f").unwrap();
        assert!(s.starts_with("#!/bin/sh\n'''exec' \""), "{s}");
        assert_eq!(launcher("/p", "nocolon"), None);
        assert_eq!(
            fix_script_shebang(b"#!pythonw -E\nx".to_vec(), "/v/bin/python"),
            b"#!/v/bin/python -E\nx"
        );
        assert_eq!(
            fix_script_shebang(b"#!/bin/sh\n".to_vec(), "/p"),
            b"#!/bin/sh\n"
        );
    }

    #[test]
    fn record_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a,b.py"), "\"a,b.py\"");
        assert_eq!(csv_field("plain.py"), "plain.py");
        let site = Path::new("/v/lib/python3.11/site-packages");
        assert_eq!(rel_to_site(site, Path::new("/v/bin/x")), "../../../bin/x");
        assert_eq!(rel_to_site(site, &site.join("a/b.py")), "a/b.py");
    }
}
