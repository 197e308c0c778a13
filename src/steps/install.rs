//! The native installer: the lock's wheels, from a local wheelhouse or from
//! the index client as each download finishes, into a venv made
//! `--without-pip`, without pip's resolver or its start-up.
//!
//! The lock is complete and pinned, so there is nothing to resolve: for each
//! venv-bound requirement [`select`] picks the wheelhouse file of that name
//! and version with the best tag the target's CPython accepts
//! ([`crate::steps::tags`]; the index client picks the same way). [`install`]
//! then, on every core and as each wheel arrives ([`Incoming`]), checks the
//! file's sha256 against the lock and unpacks it ([`crate::steps::wheel`]);
//! compiles the byte-code with the target's own interpreter in parallel
//! processes (checked-hash `.pyc` files, fixed `PYTHONHASHSEED`: the same
//! bytes on every build); and writes each distribution's `RECORD` with the
//! `.pyc` files in it, as pip does. pip itself (the wheels the target's
//! `ensurepip` would use) is installed the same way, so the venv still has
//! a working `pip`. What this path cannot do (source distributions) stays
//! with pip; [`crate::steps::venv`] chooses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use pep508_rs::PackageName;

use crate::input::requirements::Requirement;
use crate::steps::tags::WheelName;
use crate::steps::wheel::{Installed, Layout, WheelError};
use crate::sys::exec::{self, Cmd};

/// Compiles the `.py` files whose target paths arrive on stdin, each ended
/// by a NUL byte, as they come (the installer feeds each compiler a few at a
/// time, most urgent first). The `argv[1]` prefix of those paths is shown as
/// `argv[2]` in code objects. Writes checked-hash `.pyc` files (PEP 552) with
/// public APIs only, each through a temporary file renamed into place (the
/// import check reads finished distributions while others still compile),
/// and prints a line for each path as soon as it is done: the `.pyc`'s
/// `RECORD` hash and size, or `-` for a module that does not compile (it gets
/// no `.pyc`, as with pip). A write error (a full disk) fails the run.
const COMPILE: &str = r#"
import binascii, hashlib, importlib.util, marshal, os, sys, warnings
warnings.filterwarnings("ignore")
# RECORD's urlsafe base64 without `base64`, which imports `re` (7 ms a start).
urlsafe = bytes.maketrans(b"+/", b"-_")
real, shown = sys.argv[1:3]
head = importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little")
made = set()
out = sys.stdout

def one(src):
    dfile = shown + src[len(real):] if src.startswith(real) else src
    # Unbuffered, here and below: one read and one write per file, and no
    # isatty() probe of each file that a buffered open makes.
    with open(src, "rb", buffering=0) as s:
        data = s.readall()
    try:
        code = compile(data, dfile, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeError):
        return "-"
    pyc = importlib.util.cache_from_source(src)
    d = os.path.dirname(pyc)
    if d not in made:
        os.makedirs(d, exist_ok=True)
        made.add(d)
    blob = head + importlib.util.source_hash(data) + marshal.dumps(code)
    tmp = pyc + ".venvbake-tmp"
    try:
        with open(tmp, "wb", buffering=0) as f:
            view = memoryview(blob)
            while view:
                view = view[f.write(view):]
        os.replace(tmp, pyc)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    digest = binascii.b2a_base64(hashlib.sha256(blob).digest(), newline=False)
    digest = digest.translate(urlsafe).rstrip(b"=")
    return "sha256=%s %d" % (digest.decode(), len(blob))

rest = b""
while True:
    chunk = os.read(0, 1 << 16)
    if not chunk:
        break
    *paths, rest = (rest + chunk).split(b"\0")
    for p in paths:
        out.write("venvbake-pyc " + one(os.fsdecode(p)) + "\n")
        out.flush()
"#;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the wheelhouse has no file of `{requirement}` for Python {python} in `{}`{}", wheelhouse.display(), if others.is_empty() { String::new() } else { format!(" (only: {})", others.join(", ")) })]
    NoWheel {
        requirement: String,
        python: String,
        wheelhouse: PathBuf,
        /// Files of that distribution that do not fit.
        others: Vec<String>,
    },
    #[error("THESE PACKAGES DO NOT MATCH THE HASHES FROM THE LOCK: `{}` ({requirement}) has sha256 {got}, the lock allows {}", file.display(), allowed.join(", "))]
    HashMismatch {
        file: PathBuf,
        requirement: String,
        got: String,
        allowed: Vec<String>,
    },
    #[error("`{}` ({requirement}) is {got} bytes; the lock records {expected}", file.display())]
    SizeMismatch {
        file: PathBuf,
        requirement: String,
        got: u64,
        expected: u64,
    },
    #[error(transparent)]
    Wheel(#[from] WheelError),
    #[error("compiling byte-code failed")]
    Compile(#[source] Box<exec::CommandError>),
    /// The sender closed [`Incoming`] early (a download failed: its own
    /// error is the one to tell).
    #[error("only {arrived} of {expected} wheels arrived")]
    Missing { arrived: usize, expected: usize },
}

/// One wheel to install.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub name: PackageName,
    /// Host path of the file.
    pub file: PathBuf,
    /// The lock's allowed sha256 digests (hex); empty: not checked against a
    /// lock (the target's own `ensurepip` wheels).
    pub allowed: Vec<String>,
    /// The size a `pylock.toml` records for the file, checked with the hash.
    pub size: Option<u64>,
    /// Gets `REQUESTED` (the lock's, and what ensurepip asks for by name).
    pub requested: bool,
    /// A requirement of the lock (not one of the target's own wheels).
    pub from_lock: bool,
    /// For messages: the requirement as the lock writes it.
    pub requirement: String,
}

/// Every wheel in `dir`, parsed; other files are ignored.
pub fn scan_wheelhouse(dir: &Path) -> std::io::Result<Vec<(PathBuf, WheelName)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(w) = WheelName::parse(&name) {
            out.push((e.path(), w));
        }
    }
    out.sort_by(|a, b| a.1.file.cmp(&b.1.file));
    Ok(out)
}

/// The best-fitting wheel of each requirement, or the first requirement that
/// has none. Candidates are the wheelhouse's `files` and, for a package of a
/// `pylock.toml`, the wheels its `path` keys name; a `pylock.toml` package
/// takes only a wheel the lock lists (by file name), and that file's size.
pub fn select(
    reqs: &[&Requirement],
    wheelhouse: &Path,
    files: &[(PathBuf, WheelName)],
    supported: &[String],
    python: &str,
) -> Result<Vec<Chosen>, InstallError> {
    let mut out = Vec::new();
    for r in reqs {
        let locked = r.locked.as_ref();
        let from_paths: Vec<(PathBuf, WheelName)> = locked
            .into_iter()
            .flat_map(|l| &l.wheels)
            .filter_map(|f| {
                let p = f.path.as_ref().filter(|p| p.is_file())?;
                Some((p.clone(), WheelName::parse(&f.name)?))
            })
            .collect();
        let same: Vec<&(PathBuf, WheelName)> = from_paths
            .iter()
            .chain(files)
            .filter(|(_, w)| w.name == r.name && Some(&w.version) == r.version.as_ref())
            .filter(|(_, w)| locked.is_none_or(|l| l.file(&w.file).is_some()))
            .collect();
        let best = same
            .iter()
            .filter_map(|(p, w)| crate::steps::tags::rank(w, supported).map(|rank| (rank, p, w)))
            .min_by_key(|(rank, _, _)| *rank);
        match best {
            Some((_, p, w)) => out.push(Chosen {
                name: r.name.clone(),
                file: p.clone(),
                allowed: match locked.and_then(|l| l.file(&w.file)) {
                    Some(f) => vec![f.sha256.clone()],
                    None => r.hashes.clone(),
                },
                size: locked.and_then(|l| l.file(&w.file)).and_then(|f| f.size),
                requested: true,
                from_lock: true,
                requirement: r.text.clone(),
            }),
            None => {
                return Err(InstallError::NoWheel {
                    requirement: r.text.clone(),
                    python: python.to_string(),
                    wheelhouse: wheelhouse.to_path_buf(),
                    others: same.iter().map(|(_, w)| w.file.clone()).collect(),
                })
            }
        }
    }
    Ok(out)
}

/// What the installer needs besides the wheels.
pub struct Job<'a> {
    pub layout: Layout,
    pub chroot: Option<&'a Path>,
    pub base_env: &'a [(String, String)],
    /// The generation's root as a target path (what the interpreter sees).
    pub gen_path: &'a Path,
    /// The venv's fixed path: code objects name their files through it.
    pub shown_path: &'a Path,
    /// `sys.implementation.cache_tag` (`cpython-311`).
    pub cache_tag: &'a str,
    pub threads: usize,
    /// The interpreter that compiles the byte-code (target path): the base
    /// interpreter the venv is made from, the same binary as the venv's
    /// `bin/python`. The compilers need only its standard library (`-I -S`),
    /// so they start at once instead of waiting for `venv` to make the venv.
    pub compiler: &'a Path,
}

/// What [`install`] did, for the log.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub files: usize,
    pub bytes: u64,
    /// Until the last wheel was unpacked.
    pub unpack_s: f64,
    pub compiled: usize,
    /// Until the last module was compiled and recorded.
    pub total_s: f64,
}

impl Stats {
    pub fn summary(&self) -> String {
        format!(
            "unpacked {} files ({:.1} MB) in {:.2}s; compiled {} modules, meanwhile and then, in {:.2}s in all",
            self.files,
            self.bytes as f64 / 1e6,
            self.unpack_s,
            self.compiled,
            self.total_s
        )
    }
}

/// What [`install`] tells as it goes, from its own threads (the import check
/// starts on distributions that are ready while others still compile).
pub trait Watch: Sync {
    /// Every wheel is unpacked: each distribution's files and metadata are
    /// in place (called once, only when all unpacked without error).
    fn unpacked(&self) {}
    /// Every module of wheel `i` (an index of `wheels`) is compiled.
    fn compiled(&self, _i: usize) {}
}

/// The wheels to install, as they become ready: all at once (a wheelhouse,
/// the cache) or one by one as their downloads finish, so unpacking starts
/// with the first file instead of after the last. Each wheel has a slot
/// (its index, fixed before anything arrives: the lock's order, then the
/// target's own pip wheels); the unpackers take the biggest ready wheel first.
#[derive(Debug)]
pub struct Incoming {
    slots: usize,
    queue: Mutex<Arrivals>,
    signal: Condvar,
}

#[derive(Debug, Default)]
struct Arrivals {
    /// Ready and not yet taken: (size, slot, wheel).
    ready: Vec<(u64, usize, Chosen)>,
    /// Nothing more will arrive: every slot came, or the rest never will.
    closed: bool,
    /// The install failed: nothing more is taken, and the sender may stop.
    stopped: bool,
}

impl Incoming {
    /// `slots` wheels, to arrive by [`Incoming::arrive`].
    pub fn expect(slots: usize) -> Self {
        Incoming {
            slots,
            queue: Mutex::new(Arrivals::default()),
            signal: Condvar::new(),
        }
    }

    /// Every wheel ready now, slot `i` being `wheels[i]`.
    pub fn all(wheels: Vec<Chosen>) -> Self {
        let incoming = Incoming::expect(wheels.len());
        for (i, w) in wheels.into_iter().enumerate() {
            incoming.arrive(i, w);
        }
        incoming.close();
        incoming
    }

    /// Wheel `slot` is ready. Returns whether the install still wants
    /// wheels (false once it failed: the sender may stop).
    pub fn arrive(&self, slot: usize, wheel: Chosen) -> bool {
        let size = std::fs::metadata(&wheel.file).map_or(0, |m| m.len());
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        q.ready.push((size, slot, wheel));
        self.signal.notify_all();
        !q.stopped
    }

    /// No more wheels will arrive (all did, or the sender failed).
    pub fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.signal.notify_all();
    }

    fn stop(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.stopped = true;
        }
        self.signal.notify_all();
    }

    /// The biggest ready wheel, waiting for one; None when none will come.
    fn next(&self) -> Option<(usize, Chosen)> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if q.stopped {
                return None;
            }
            // The biggest first (ties: the lower slot), so the last to
            // finish is a small one.
            let biggest = (q.ready.iter().enumerate())
                .max_by_key(|(_, (size, slot, _))| (*size, std::cmp::Reverse(*slot)))
                .map(|(k, _)| k);
            if let Some(k) = biggest {
                let (_, slot, w) = q.ready.swap_remove(k);
                return Some((slot, w));
            }
            if q.closed {
                return None;
            }
            q = self.signal.wait(q).ok()?;
        }
    }
}

/// Check, unpack, compile and record every wheel of `incoming`, as each
/// arrives. Returns the sha256 (hex) of each distribution's file, by name,
/// and what was done.
///
/// Unpacking runs on `job.threads` threads, the biggest ready wheel first;
/// the compilers start at once and get each wheel's `.py` files as soon as
/// it is unpacked, so byte-code compilation overlaps the unpacking (and the
/// downloads). The smallest distributions compile first, so most are
/// complete early.
pub fn install(
    job: &Job,
    incoming: &Incoming,
    watch: &dyn Watch,
) -> Result<(BTreeMap<PackageName, String>, Stats), InstallError> {
    let started = std::time::Instant::now();
    let mut stats = Stats::default();
    let slots = incoming.slots;
    let results: Mutex<Vec<(usize, PackageName, Unpacked)>> = Mutex::new(Vec::new());
    let compilers = job.threads.max(1);
    let shared = Shared::new(compilers, slots);
    let compiled_rows = std::thread::scope(|s| -> Result<Vec<Compiled>, InstallError> {
        let compilers = Compilers::start(s, job, compilers, &shared, watch)?;
        std::thread::scope(|u| {
            for _ in 0..job.threads.clamp(1, slots.max(1)) {
                u.spawn(|| {
                    while let Some((i, wheel)) = incoming.next() {
                        let r = unpack(job, &wheel);
                        match &r {
                            Ok((inst, _)) => compilers.send(job, i, inst),
                            // Stop taking work; the generation is removed anyway.
                            Err(_) => incoming.stop(),
                        }
                        if let Ok(mut v) = results.lock() {
                            v.push((i, wheel.name, r));
                        }
                    }
                });
            }
        });
        stats.unpack_s = started.elapsed().as_secs_f64();
        let all_unpacked = results
            .lock()
            .is_ok_and(|v| v.len() == slots && v.iter().all(|(_, _, r)| r.is_ok()));
        if all_unpacked {
            watch.unpacked();
        }
        compilers.finish()
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _, _)| *i);
    let mut installed = Vec::new();
    let mut hashes = BTreeMap::new();
    // An unpacking error explains more than what it made the compilers do.
    for (i, name, r) in results {
        let (inst, sha) = r?;
        hashes.insert(name, sha);
        installed.push((i, inst));
    }
    if installed.len() < slots {
        return Err(InstallError::Missing {
            arrived: installed.len(),
            expected: slots,
        });
    }
    let mut compiled: BTreeMap<usize, Vec<(PathBuf, String, u64)>> = BTreeMap::new();
    for (i, pyc, hash, size) in compiled_rows? {
        compiled.entry(i).or_default().push((pyc, hash, size));
    }

    stats.files = installed.iter().map(|(_, i)| i.files).sum();
    stats.bytes = installed.iter().map(|(_, i)| i.bytes).sum();
    for (i, inst) in &installed {
        let rows = compiled.remove(i).unwrap_or_default();
        stats.compiled += rows.len();
        inst.add_files(&job.layout.site, &rows)?;
    }
    stats.total_s = started.elapsed().as_secs_f64();
    Ok((hashes, stats))
}

/// One wheel unpacked (its files and the sha256 of the wheel), or why not.
type Unpacked = Result<(Installed, String), InstallError>;

/// Check one wheel's hash, then unpack it.
fn unpack(job: &Job, w: &Chosen) -> Unpacked {
    let sha = crate::sys::codec::sha256_file_hex(&w.file).map_err(|source| WheelError::Io {
        action: "read",
        path: w.file.clone(),
        source,
    })?;
    if !w.allowed.is_empty() && !w.allowed.iter().any(|h| h.eq_ignore_ascii_case(&sha)) {
        return Err(InstallError::HashMismatch {
            file: w.file.clone(),
            requirement: w.requirement.clone(),
            got: sha,
            allowed: w.allowed.clone(),
        });
    }
    if let Some(expected) = w.size {
        let got = std::fs::metadata(&w.file).map_or(0, |m| m.len());
        if got != expected {
            return Err(InstallError::SizeMismatch {
                file: w.file.clone(),
                requirement: w.requirement.clone(),
                got,
                expected,
            });
        }
    }
    let inst = crate::steps::wheel::install(&w.file, &job.layout, w.requested)?;
    Ok((inst, sha))
}

/// The `.pyc` path `src` compiles to (host path), as `importlib` names it.
fn pyc_path(src: &Path, cache_tag: &str) -> Option<PathBuf> {
    let stem = src.file_stem()?.to_string_lossy().into_owned();
    Some(
        src.parent()?
            .join("__pycache__")
            .join(format!("{stem}.{cache_tag}.pyc")),
    )
}

/// One compiled module: the index of its wheel, its `.pyc` (host path), and
/// that file's `RECORD` hash and size.
type Compiled = (usize, PathBuf, String, u64);

/// How one compiler ended, and what it compiled.
type CompilerRun = (Result<exec::Output, exec::CommandError>, Vec<Compiled>);

/// What [`COMPILE`] prints for each module it was sent.
const PYC_LINE: &str = "venvbake-pyc ";

/// Modules a compiler may have been sent and not yet answered: enough to
/// keep it busy, few enough that a more urgent module queued later is next.
const IN_FLIGHT: usize = 8;

/// A module waiting to be compiled. The most urgent is the greatest: of the
/// wheel with the least source (small distributions are complete early and
/// their import check can start), then the wheel's index, then the biggest file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Task {
    urgency: (std::cmp::Reverse<u64>, std::cmp::Reverse<usize>, u64),
    /// Index of the wheel.
    wheel: usize,
    /// The source as the interpreter sees it (target path).
    target: PathBuf,
    /// The `.pyc` it becomes (host path).
    pyc: PathBuf,
}

/// What the compilers and their feeders share.
struct Shared {
    /// The queue and who was sent what, and its signal: something changed.
    work: (Mutex<Work>, Condvar),
    /// Per wheel: modules not yet answered (set when the wheel is queued).
    left: Vec<AtomicUsize>,
}

impl Shared {
    fn new(compilers: usize, wheels: usize) -> Self {
        Shared {
            work: (
                Mutex::new(Work {
                    sent: vec![Default::default(); compilers],
                    gone: vec![false; compilers],
                    ..Default::default()
                }),
                Condvar::new(),
            ),
            left: (0..wheels).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
}

/// The compile queue, under one lock.
#[derive(Default)]
struct Work {
    queue: std::collections::BinaryHeap<Task>,
    /// No more modules will be queued.
    closed: bool,
    /// Per compiler: what it was sent and has not answered, in order.
    sent: Vec<std::collections::VecDeque<(usize, PathBuf)>>,
    /// Per compiler: it has exited (or never started).
    gone: Vec<bool>,
}

/// The byte-code compilers: one target interpreter ([`Job::compiler`]) per
/// thread, each reading NUL-ended target paths from a pipe ([`COMPILE`]).
/// A feeder thread per compiler writes the most urgent queued modules to it,
/// at most [`IN_FLIGHT`] ahead of its answers, so whichever compiler is free
/// takes the next one. Each compiler answers every path with the `.pyc`'s
/// hash, so `RECORD` needs no second read.
struct Compilers<'scope> {
    work: &'scope (Mutex<Work>, Condvar),
    /// Per wheel: modules not yet answered (set when the wheel is queued).
    left: &'scope [AtomicUsize],
    watch: &'scope dyn Watch,
    runs: Vec<std::thread::ScopedJoinHandle<'scope, CompilerRun>>,
}

impl<'scope> Compilers<'scope> {
    fn start<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        job: &Job<'env>,
        n: usize,
        shared: &'scope Shared,
        watch: &'scope dyn Watch,
    ) -> Result<Self, InstallError> {
        let (work, left) = (&shared.work, &shared.left[..]);
        let python = job.compiler.display().to_string();
        let mut runs = Vec::new();
        for k in 0..n {
            let (input, pipe) = std::io::pipe().map_err(|source| WheelError::Io {
                action: "open a pipe for",
                path: job.layout.prefix.clone(),
                source,
            })?;
            let cmd = Cmd::new(python.clone(), job.base_env)
                .chroot(job.chroot)
                .env("PYTHONHASHSEED", "0")
                // -S: no `site` (the compiler needs the standard library only).
                .args(["-I", "-S", "-c", COMPILE])
                .arg(job.gen_path.display().to_string())
                .arg(job.shown_path.display().to_string());
            runs.push(s.spawn(move || {
                let mut done = Vec::new();
                let r = exec::run_fed(&cmd, input, 0, &mut |line| {
                    let Some(answer) = line.strip_prefix(PYC_LINE) else {
                        return;
                    };
                    let Some((i, pyc)) = answered(work, k) else {
                        return;
                    };
                    if let Some((hash, size)) = answer.split_once(' ') {
                        if let Ok(size) = size.parse() {
                            done.push((i, pyc, hash.to_string(), size));
                        }
                    }
                    if left[i].fetch_sub(1, Ordering::SeqCst) == 1 {
                        watch.compiled(i);
                    }
                });
                if let Ok(mut w) = work.0.lock() {
                    w.gone[k] = true;
                }
                work.1.notify_all();
                (r, done)
            }));
            s.spawn(move || feed(pipe, work, k));
        }
        Ok(Compilers {
            work,
            left,
            watch,
            runs,
        })
    }

    /// Queue the `.py` files of wheel `i`, once unpacked.
    fn send(&self, job: &Job, i: usize, inst: &Installed) {
        let total: u64 = inst.sources.iter().map(|(_, size)| size).sum();
        let tasks: Vec<Task> = inst
            .sources
            .iter()
            .filter_map(|(src, size)| {
                let rel = src.strip_prefix(&job.layout.prefix).ok()?;
                Some(Task {
                    urgency: (std::cmp::Reverse(total), std::cmp::Reverse(i), *size),
                    wheel: i,
                    target: job.gen_path.join(rel),
                    pyc: pyc_path(src, job.cache_tag)?,
                })
            })
            .collect();
        if tasks.is_empty() {
            self.watch.compiled(i);
            return;
        }
        self.left[i].store(tasks.len(), Ordering::SeqCst);
        if let Ok(mut w) = self.work.0.lock() {
            w.queue.extend(tasks);
        }
        self.work.1.notify_all();
    }

    /// Close the queue, wait for every compiler, and return what they compiled.
    fn finish(self) -> Result<Vec<Compiled>, InstallError> {
        if let Ok(mut w) = self.work.0.lock() {
            w.closed = true;
        }
        self.work.1.notify_all();
        let mut first = Ok(Vec::new());
        for run in self.runs {
            let (r, done) = run.join().unwrap_or_else(|_| {
                (
                    Err(exec::CommandError {
                        command: "byte-code compiler".into(),
                        status: None,
                        spawn: None,
                        tail: vec![],
                        recent: vec![],
                    }),
                    Vec::new(),
                )
            });
            match (r, &mut first) {
                (Ok(_), Ok(all)) => all.extend(done),
                (Err(e), Ok(_)) => first = Err(InstallError::Compile(Box::new(e))),
                _ => {}
            }
        }
        first
    }
}

/// The wheel and `.pyc` of compiler `k`'s oldest unanswered module, which
/// its answer is for; its feeder may then send another.
fn answered(work: &(Mutex<Work>, Condvar), k: usize) -> Option<(usize, PathBuf)> {
    let front = work.0.lock().ok()?.sent[k].pop_front();
    work.1.notify_all();
    front
}

/// Feed compiler `k`: whenever it has room, write the most urgent queued
/// modules to its stdin, NUL after each path. Returns (closing the pipe,
/// which ends the compiler's input) once the queue is closed and empty, or
/// when the compiler is gone (its error is what `finish` reports).
fn feed(mut pipe: std::io::PipeWriter, work: &(Mutex<Work>, Condvar), k: usize) {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        {
            let Ok(mut w) = work.0.lock() else { return };
            loop {
                if w.gone[k] || (w.closed && w.queue.is_empty()) {
                    return;
                }
                if w.sent[k].len() < IN_FLIGHT && !w.queue.is_empty() {
                    break;
                }
                w = match work.1.wait(w) {
                    Ok(w) => w,
                    Err(_) => return,
                };
            }
            while w.sent[k].len() < IN_FLIGHT {
                let Some(t) = w.queue.pop() else { break };
                buf.extend_from_slice(t.target.as_os_str().as_bytes());
                buf.push(0);
                w.sent[k].push_back((t.wheel, t.pyc));
            }
        }
        if pipe.write_all(&buf).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_distributions_compile_first() {
        use std::cmp::Reverse;
        let task = |wheel_bytes, wheel, size, name: &str| Task {
            urgency: (Reverse(wheel_bytes), Reverse(wheel), size),
            wheel,
            target: PathBuf::from(name),
            pyc: PathBuf::new(),
        };
        let mut queue = std::collections::BinaryHeap::new();
        queue.push(task(900, 0, 50, "big/a.py"));
        queue.push(task(900, 0, 850, "big/b.py"));
        queue.push(task(30, 2, 10, "small/x.py"));
        queue.push(task(30, 1, 30, "other/y.py"));
        queue.push(task(30, 2, 20, "small/z.py"));
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|t| t.target.display().to_string())
            .collect();
        // The smallest wheels first (ties: the lower index, all of one wheel
        // together), each wheel's biggest files first.
        assert_eq!(
            order,
            [
                "other/y.py",
                "small/z.py",
                "small/x.py",
                "big/b.py",
                "big/a.py"
            ]
        );
    }

    #[test]
    fn incoming_wheels_go_biggest_first_and_stop_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = |name: &str, size: usize| {
            let file = dir.path().join(format!("{name}-1.0-py3-none-any.whl"));
            std::fs::write(&file, vec![0u8; size]).unwrap();
            Chosen {
                name: name.parse().unwrap(),
                file,
                allowed: vec![],
                size: None,
                requested: true,
                from_lock: true,
                requirement: format!("{name}==1.0"),
            }
        };
        // Ready together: the biggest first, ties by slot.
        let all = Incoming::all(vec![wheel("a", 10), wheel("b", 30), wheel("c", 30)]);
        let order: Vec<usize> = std::iter::from_fn(|| all.next()).map(|(i, _)| i).collect();
        assert_eq!(order, [1, 2, 0]);
        // One by one: each is taken as it comes; once closed, none waits.
        let one_by_one = Incoming::expect(2);
        assert!(one_by_one.arrive(1, wheel("d", 5)));
        assert_eq!(one_by_one.next().map(|(i, _)| i), Some(1));
        std::thread::scope(|s| {
            let taker = s.spawn(|| one_by_one.next().map(|(i, _)| i));
            std::thread::sleep(std::time::Duration::from_millis(50));
            one_by_one.arrive(0, wheel("e", 5));
            assert_eq!(taker.join().unwrap(), Some(0));
        });
        one_by_one.close();
        assert!(one_by_one.next().is_none());
        // A failed install stops: nothing more is taken, the sender is told.
        let stopped = Incoming::expect(2);
        stopped.stop();
        assert!(!stopped.arrive(0, wheel("f", 5)));
        assert!(stopped.next().is_none());
    }

    #[test]
    fn the_best_wheel_of_the_pinned_version_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "m-1.0-py3-none-any.whl",
            "m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "m-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "m-1.0-cp313-cp313-manylinux_2_17_x86_64.whl",
            "notes.txt",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let files = scan_wheelhouse(dir.path()).unwrap();
        assert_eq!(files.len(), 4);
        let reqs = crate::input::requirements::parse(
            Path::new("lock.txt"),
            &format!(
                "m==1.0 --hash=sha256:{}\nother==1 --hash=sha256:{}\n",
                "a".repeat(64),
                "b".repeat(64)
            ),
        )
        .unwrap();
        let supported = crate::steps::tags::supported(&crate::steps::tags::Interp {
            major: 3,
            minor: 11,
            machine: "x86_64".into(),
            glibc: Some((2, 36)),
        });
        let one = [&reqs.items[0]];
        let got = select(&one, dir.path(), &files, &supported, "3.11").unwrap();
        assert!(got[0]
            .file
            .ends_with("m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"));
        assert_eq!(got[0].allowed, ["a".repeat(64)]);
        let both = [&reqs.items[0], &reqs.items[1]];
        let err = select(&both, dir.path(), &files, &supported, "3.11").unwrap_err();
        assert!(
            err.to_string()
                .contains("no file of `other==1` for Python 3.11"),
            "{err}"
        );
        let py313 = crate::steps::tags::supported(&crate::steps::tags::Interp {
            major: 3,
            minor: 12,
            machine: "aarch64".into(),
            glibc: Some((2, 36)),
        });
        let got = select(&one, dir.path(), &files, &py313, "3.12").unwrap();
        assert!(got[0].file.ends_with("m-1.0-py3-none-any.whl"));
    }
}
