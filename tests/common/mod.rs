//! Test harness for end-to-end tests: real Debian trees, a real wheelhouse,
//! the real venvbake binary.
//!
//! - One minbase tree per suite (bookworm, trixie, forky) is built with `mmdebstrap`
//!   once, kept as a tarball and an unpacked copy in the cache directory
//!   (`$VENVBAKE_TEST_CACHE`, default `/var/cache/venvbake-tests`).
//! - Each test gets a copy-on-write overlay of that tree, mounted inside a
//!   private mount namespace of the test's own thread: the mount is gone when
//!   the test ends, however it ends.
//! - The wheelhouse is filled once by `pip download` for Python 3.11, 3.13
//!   and 3.14, so the tests then install offline.
//!
//! Missing prerequisites fail loudly with the command that installs them;
//! nothing is skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_venvbake");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Bumped when the tree recipe changes, so caches are rebuilt.
const TREE_RECIPE: &str = "minbase+python3+lists-v1";
const MIRROR: &str = "http://deb.debian.org/debian";

pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("VENVBAKE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/venvbake-tests"));
    std::fs::create_dir_all(&dir).expect("create the test cache directory");
    dir
}

fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let path = cache_dir().join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    let out = f();
    drop(file);
    out
}

fn require_tool(tool: &str) {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .any(|d: PathBuf| d.join(tool).exists());
    assert!(
        found,
        "`{tool}` is missing: run `sudo scripts/test-deps` (the README's test command does)"
    );
}

pub fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The unpacked, read-only lower tree of `suite` (built on first use).
pub fn suite_tree(suite: &str) -> PathBuf {
    let dir = cache_dir();
    let tar = dir.join(format!("{suite}-{TREE_RECIPE}.tar"));
    let root = dir.join(format!("{suite}-{TREE_RECIPE}.root"));
    locked(suite, || {
        if !tar.exists() {
            require_tool("mmdebstrap");
            let tmp = tar.with_extension("tar.partial");
            // The mirror serves forky (testing) with a Release file past its
            // Valid-Until; the option also lands in the tree's own apt
            // configuration, so apt in the tree accepts it too.
            let aptopt: &[&str] = if suite == "forky" {
                &["--aptopt=Acquire::Check-Valid-Until \"false\""]
            } else {
                &[]
            };
            run_checked(
                Command::new("mmdebstrap")
                    .args([
                        "--quiet",
                        "--mode=root",
                        "--variant=minbase",
                        "--include=python3",
                        "--skip=cleanup/apt/lists",
                    ])
                    .args(aptopt)
                    .args(["--format=tar", suite])
                    .arg(&tmp)
                    .arg(MIRROR)
                    .env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("HOME", "/root"),
                &format!("mmdebstrap {suite}"),
            );
            std::fs::rename(&tmp, &tar).unwrap();
        }
        if !root.exists() {
            let tmp = root.with_extension("partial");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            run_checked(
                Command::new("tar")
                    .args(["--numeric-owner", "-xpf"])
                    .arg(&tar)
                    .arg("-C")
                    .arg(&tmp),
                "unpack tree",
            );
            std::fs::rename(&tmp, &root).unwrap();
        }
    });
    root
}

/// A clean environment for the host's pip reaching PyPI: the proxy variables
/// and the host's CA bundle, nothing else of this process's environment.
pub fn pip_env(cmd: &mut Command) {
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/root")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_CONFIG_FILE", "/dev/null");
    for var in [
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        cmd.env("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt");
    }
}

/// The uv that `venvbake lock` resolves with: the uv wheel's binary from
/// PyPI, installed once into the test cache (as a user installs it: pip
/// into a venv of its own).
pub const UV_VERSION: &str = "0.13.9";

pub fn uv() -> PathBuf {
    cached_folder(&format!("uv-{UV_VERSION}"), |tmp| {
        let venv = tmp.join("venv");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-m", "venv"]).arg(&venv);
        pip_env(&mut cmd);
        run_checked(&mut cmd, "python3 -m venv (for uv)");
        let mut cmd = Command::new(venv.join("bin/pip"));
        cmd.args([
            "install",
            "--quiet",
            "--only-binary=:all:",
            &format!("uv=={UV_VERSION}"),
        ]);
        pip_env(&mut cmd);
        run_checked(&mut cmd, "pip install uv");
        std::fs::copy(venv.join("bin/uv"), tmp.join("uv")).unwrap();
        std::fs::remove_dir_all(&venv).unwrap();
    })
    .join("uv")
}

/// The tests' small lock: six, jmespath and markupsafe.
pub fn small_lock() -> PathBuf {
    Path::new(REPO).join("tests/data/small.requirements.txt")
}

/// The small lock's six and jmespath only, as `DIR/two.txt`.
pub fn small_two_lock(dir: &Path) -> PathBuf {
    lock_subset(&small_lock(), &["six", "jmespath"], &dir.join("two.txt"))
}

/// The lock files whose wheels the wheelhouse holds.
pub fn locks() -> Vec<PathBuf> {
    vec![
        Path::new(REPO).join("profiles/ansible.requirements.txt"),
        Path::new(REPO).join("tests/data/small.requirements.txt"),
        Path::new(REPO).join("tests/data/pinned-extra.requirements.txt"),
    ]
}

/// The CPython versions (and ABIs) the wheelhouse serves: bookworm's,
/// trixie's and forky's (Ubuntu 26.04's) interpreters.
const PYTHONS: [(&str, &str); 3] = [("3.11", "cp311"), ("3.13", "cp313"), ("3.14", "cp314")];

/// A folder of the test cache, filled once by `fill` (into a partial
/// folder, renamed into place when complete).
fn cached_folder(name: &str, fill: impl FnOnce(&Path)) -> PathBuf {
    let dir = cache_dir().join(name);
    locked(name, || {
        if dir.join(".complete").exists() {
            return;
        }
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        fill(&tmp);
        std::fs::write(tmp.join(".complete"), "").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
    });
    dir
}

/// Ansible from PyPI (the `ansible` package: ansible-core with the
/// community collections) and ansible-lint, in a venv of the test cache. A
/// venv cannot move, so it is built in place and marked complete at the end.
pub const PYPI_ANSIBLE: [&str; 2] = ["ansible==12.3.0", "ansible-lint==26.10.1"];

pub fn pypi_ansible() -> PathBuf {
    let name = format!("ansible-venv-{}", PYPI_ANSIBLE.join("-"));
    let dir = cache_dir().join(&name);
    locked(&name, || {
        if dir.join(".complete").exists() {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-m", "venv"]).arg(&dir);
        pip_env(&mut cmd);
        run_checked(&mut cmd, "python3 -m venv (for ansible from PyPI)");
        let mut cmd = Command::new(dir.join("bin/pip"));
        cmd.args(["install", "--quiet"]).args(PYPI_ANSIBLE);
        pip_env(&mut cmd);
        run_checked(&mut cmd, "pip install ansible ansible-lint");
        std::fs::write(dir.join(".complete"), "").unwrap();
    });
    dir
}

/// The host's `pip download --quiet --no-deps ARGS -d DEST` from PyPI.
fn pip_download(dest: &Path, args: &[&str]) {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-m", "pip", "download", "--quiet", "--no-deps"])
        .args(args)
        .arg("-d")
        .arg(dest);
    pip_env(&mut cmd);
    run_checked(&mut cmd, &format!("pip download {}", args.join(" ")));
}

/// A wheelhouse with the wheels of [`locks`] for [`PYTHONS`] on x86_64.
pub fn wheelhouse() -> PathBuf {
    let mut key = format!("{PYTHONS:?}");
    for l in locks() {
        key.push_str(&std::fs::read_to_string(&l).unwrap());
    }
    let digest = venvbake::codec::hex_sha256(key.as_bytes());
    cached_folder(&format!("wheelhouse-{}", &digest[..12]), |tmp| {
        for (version, abi) in PYTHONS {
            for lock in locks() {
                let lock = lock.to_str().unwrap();
                pip_download(
                    tmp,
                    &[
                        "--require-hashes",
                        "--only-binary=:all:",
                        "--implementation=cp",
                        &format!("--python-version={version}"),
                        &format!("--abi={abi}"),
                        "--abi=abi3",
                        "--abi=none",
                        "--platform=manylinux_2_17_x86_64",
                        "--platform=manylinux2014_x86_64",
                        "--platform=manylinux_2_28_x86_64",
                        "--platform=any",
                        "-r",
                        lock,
                    ],
                );
            }
        }
    })
}

/// A private, writable overlay of a suite's tree, alive for one closure.
pub struct Tree {
    pub root: PathBuf,
    pub suite: String,
    _scratch: tempfile::TempDir,
}

/// Run `f` on a fresh overlay of `suite`'s tree in a thread of its own, inside
/// a private mount namespace: the overlay vanishes with the thread.
pub fn with_tree<F>(suite: &str, f: F)
where
    F: FnOnce(&Tree) + Send + 'static,
{
    let lower = suite_tree(suite);
    let suite = suite.to_string();
    let handle = std::thread::spawn(move || {
        use nix::mount::{mount, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / private");
        let scratch = tempfile::Builder::new()
            .prefix("venvbake-e2e-")
            .tempdir_in(cache_dir())
            .unwrap();
        let (upper, work, merged) = (
            scratch.path().join("upper"),
            scratch.path().join("work"),
            scratch.path().join("root"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .expect("mount the overlay");
        let tree = Tree {
            root: merged.clone(),
            suite,
            _scratch: scratch,
        };
        f(&tree);
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

impl Drop for Tree {
    /// Unmount before the scratch directory goes, also when a test panics.
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path("/proc"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A venvbake command line being built (see [`Tree::case`]).
pub struct Case {
    args: Vec<String>,
}

impl Case {
    pub fn arg(mut self, arg: impl std::fmt::Display) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn args<D: std::fmt::Display>(self, args: impl IntoIterator<Item = D>) -> Self {
        args.into_iter().fold(self, Case::arg)
    }

    /// Offline, from the tests' wheelhouse.
    pub fn wheelhouse(self) -> Self {
        self.arg("--wheelhouse").arg(wheelhouse().display())
    }

    pub fn run(self) -> Run {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        venvbake(&args, &[])
    }

    /// Run it, and assert its exit code.
    pub fn expect(self, code: i32) -> Run {
        let run = self.run();
        run.expect_code(code);
        run
    }
}

/// What a venvbake run returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Assert the exit code; on a mismatch the failure shows what the
    /// command printed.
    pub fn expect_code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "expected exit {want}:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert that stderr says `text`.
    pub fn expect_stderr(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks `{text}`:\n{}",
            self.stderr
        );
        self
    }

    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "venvbake failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The download cache the tests share (never the host's own
/// /var/cache/venvbake): content-addressed and safe for concurrent runs, as
/// venvbake's is. A test that counts downloads names its own.
pub fn download_cache() -> PathBuf {
    cache_dir().join("download-cache")
}

/// The venvbake binary with a clean environment (plus `extra` variables).
pub fn venvbake(args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("VENVBAKE_CACHE_DIR", download_cache())
        .stdin(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run venvbake"))
}

impl Tree {
    pub fn path(&self, target_path: &str) -> PathBuf {
        self.root.join(target_path.trim_start_matches('/'))
    }

    /// Run a command chrooted in the tree with a clean environment.
    pub fn run(&self, argv: &[&str]) -> Run {
        let out = Command::new("/usr/sbin/chroot")
            .arg(&self.root)
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("chroot");
        Run::from(out)
    }

    /// Mount /proc in the tree (in this test's private namespace; gone with it).
    pub fn mount_proc(&self) {
        let proc_dir = self.path("/proc");
        let mounted = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == proc_dir.to_str());
        if !mounted {
            nix::mount::mount(
                Some("proc"),
                &proc_dir,
                Some("proc"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount proc in the tree");
        }
    }

    /// Install Debian packages in the tree with its own apt (no daemon starts).
    pub fn apt_install(&self, packages: &[&str]) {
        self.mount_proc();
        let policy = self.path("/usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
        std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut argv = vec![
            "/usr/bin/env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
        ];
        argv.extend_from_slice(packages);
        let mut run = self.run(&argv);
        if run.code != 0 {
            // Stale lists in the cached tree: update once and retry.
            self.run(&["apt-get", "update", "-q"]).ok();
            run = self.run(&argv);
        }
        std::fs::remove_file(&policy).unwrap();
        run.ok();
    }

    /// `venvbake apply` offline from the test wheelhouse.
    pub fn apply(&self, profile: &Path, extra: &[(&str, &str)]) -> Run {
        let wh = wheelhouse();
        self.apply_from(profile, &["--wheelhouse", wh.to_str().unwrap()], extra)
    }

    /// `venvbake apply` with these source options (`--wheelhouse DIR`, `--bundle FILE`).
    pub fn apply_from(&self, profile: &Path, source: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut args = vec![
            "apply",
            profile.to_str().unwrap(),
            "--root",
            self.root.to_str().unwrap(),
            "--progress",
            "plain",
        ];
        args.extend_from_slice(source);
        venvbake(&args, extra)
    }

    /// An end-to-end case stated in one chain: the command on a profile
    /// against this tree, its options, then what must come out:
    /// `tree.case("apply", &p).wheelhouse().expect(0).expect_stderr("applied")`.
    pub fn case(&self, command: &str, profile: &Path) -> Case {
        let mut args = vec![
            command.to_string(),
            profile.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        if command == "apply" {
            args.extend(["--progress".into(), "plain".into()]);
        }
        Case { args }
    }

    pub fn read_json(&self, target_path: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path(target_path))
            .unwrap_or_else(|e| panic!("read {target_path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    pub fn link(&self, target_path: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(target_path)).ok()
    }

    /// Mounts under the tree, as the host's first process sees them.
    pub fn host_mounts_under_tree(&self) -> Vec<String> {
        let root = self.root.to_string_lossy().into_owned();
        let mut found = Vec::new();
        for who in ["/proc/1/mountinfo", "/proc/thread-self/mountinfo"] {
            let text = std::fs::read_to_string(who).unwrap_or_default();
            for line in text.lines() {
                if let Some(mp) = line.split(' ').nth(4) {
                    if mp.starts_with(&root) && mp != root {
                        found.push(format!("{who}: {mp}"));
                    }
                }
            }
        }
        found
    }
}

/// Copy the wheels of `from` whose file names `keep` accepts into `dest` (created).
pub fn copy_wheels(from: &Path, dest: &Path, keep: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if keep(&e.file_name().to_string_lossy()) {
            std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
        }
    }
}

/// Write a profile into `dir` that uses `requirements` (copied next to it;
/// a `.toml` lock as `pylock.NAME.toml`).
pub fn write_profile(
    dir: &Path,
    name: &str,
    venv_path: &str,
    requirements: &Path,
    extra: &str,
) -> PathBuf {
    let req_name = if requirements.extension().is_some_and(|e| e == "toml") {
        format!("pylock.{name}.toml")
    } else {
        format!("{name}.requirements.txt")
    };
    std::fs::copy(requirements, dir.join(&req_name)).unwrap();
    let text = format!(
        "schema_version = 1\nname = \"{name}\"\ndescription = \"test profile\"\n\n[venv]\npath = \"{venv_path}\"\nrequirements = \"{req_name}\"\n{extra}"
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// What a test index does with requests for one project's page or files.
#[derive(Debug, Clone, PartialEq)]
pub enum Misbehave {
    /// Serves each file with one byte changed (same length).
    Tamper,
    /// Answers 404 for the project's page.
    Missing,
    /// Answers 500 to the first request for a file, then serves it.
    FailOnce,
    /// Accepts the connection (for the project's page or a file) and never answers.
    Hang,
    /// Sends half of a file, then closes; every time, or only the first time.
    Cut { every_time: bool },
    /// Redirects file requests to `http://localhost:PORT/files/...`.
    Redirect(u16),
    /// Sends half of a file, then the rest only once the test calls
    /// [`TestIndex::release`] (a download still under way).
    Hold,
}

/// A PEP 503 index on loopback serving the test wheelhouse, each request on
/// its own thread, misbehaving as told for some projects (a real server on
/// a real socket; only its misbehaviour is scripted). It logs every request
/// line, and whether it carried credentials, for tests to read.
pub struct TestIndex {
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Lets held files ([`Misbehave::Hold`]) finish.
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TestIndex {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }

    /// The request lines for project pages (`GET /simple/...`), in order.
    pub fn page_requests(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" /simple/"))
            .cloned()
            .collect()
    }

    /// The request lines for files (`GET /files/...`), in order.
    pub fn file_requests(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" /files/") && !l.contains(".metadata "))
            .cloned()
            .collect()
    }

    /// The projects whose files were requested (lowercase, sorted).
    pub fn downloaded_projects(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .file_requests()
            .iter()
            .map(|l| {
                l.split("/files/")
                    .nth(1)
                    .and_then(|f| f.split('-').next())
                    .unwrap_or("")
                    .to_lowercase()
            })
            .collect();
        out.sort();
        out
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Held files ([`Misbehave::Hold`]) are sent in full from now on.
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn start(
        faults: &[(&'static str, Misbehave)],
        auth: Option<(&'static str, &'static str)>,
    ) -> TestIndex {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let faults: Vec<(String, Misbehave)> = faults
            .iter()
            .map(|(n, m)| (n.to_string(), m.clone()))
            .collect();
        let (stop2, log2, released2) = (stop.clone(), log.clone(), released.clone());
        let wh = wheelhouse();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
            while !stop2.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let (log, seen, faults, wh, stop, released) = (
                    log2.clone(),
                    seen.clone(),
                    faults.clone(),
                    wh.clone(),
                    stop2.clone(),
                    released2.clone(),
                );
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).unwrap();
                    let mut req = [0u8; 8192];
                    let n = conn.read(&mut req).unwrap_or(0);
                    let head = String::from_utf8_lossy(&req[..n]).into_owned();
                    let line = head.lines().next().unwrap_or("").to_string();
                    let lower = head.to_lowercase();
                    let authorized = lower.lines().any(|l| l.starts_with("authorization:"));
                    log.lock().unwrap().push(format!(
                        "{line}{}",
                        if authorized { " [authorization]" } else { "" }
                    ));
                    if let Some((u, p)) = auth {
                        let want = format!(
                            "authorization: basic {}",
                            venvbake::codec::base64(format!("{u}:{p}").as_bytes(), false)
                                .to_lowercase()
                        );
                        if !lower.lines().any(|l| l.trim() == want) {
                            let _ = write!(
                                conn,
                                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"venvbake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            return;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    let project_of = |file: &str| {
                        file.split('-')
                            .next()
                            .unwrap_or("")
                            .to_lowercase()
                            .replace('_', "-")
                    };
                    // `*` stands for every project.
                    let fault = |project: &str| {
                        faults
                            .iter()
                            .find(|(n, _)| n == project || n == "*")
                            .map(|(_, m)| m.clone())
                    };
                    let hang = || {
                        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    };
                    let not_found =
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                    if let Some(name) = path
                        .strip_prefix("/simple/")
                        .map(|p| p.trim_end_matches('/').to_string())
                    {
                        match fault(&name) {
                            Some(Misbehave::Missing) => {
                                let _ = write!(conn, "{not_found}");
                                return;
                            }
                            Some(Misbehave::Hang) => return hang(),
                            _ => {}
                        }
                        let mut body = String::from("<html><body>\n");
                        for e in std::fs::read_dir(&wh).unwrap().flatten() {
                            let f = e.file_name().to_string_lossy().into_owned();
                            if project_of(&f) == name {
                                let sha =
                                    venvbake::codec::hex_sha256(&std::fs::read(e.path()).unwrap());
                                // PEP 658: each wheel's METADATA beside it.
                                let meta = if f.ends_with(".whl") {
                                    " data-core-metadata=\"true\""
                                } else {
                                    ""
                                };
                                body.push_str(&format!(
                                    "<a href=\"/files/{f}#sha256={sha}\"{meta}>{f}</a>\n"
                                ));
                            }
                        }
                        body.push_str("</body></html>\n");
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    } else if let Some(wheel) = path
                        .strip_prefix("/files/")
                        .and_then(|f| f.strip_suffix(".metadata"))
                    {
                        let Some(text) = wheel_metadata(&wh.join(wheel)) else {
                            let _ = write!(conn, "{not_found}");
                            return;
                        };
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
                    } else if let Some(file) = path.strip_prefix("/files/") {
                        let Ok(mut data) = std::fs::read(wh.join(file)) else {
                            let _ = write!(conn, "{not_found}");
                            return;
                        };
                        let first = {
                            let mut seen = seen.lock().unwrap();
                            let first = !seen.iter().any(|f| f == file);
                            seen.push(file.to_string());
                            first
                        };
                        let header = |len: usize| {
                            format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                        };
                        match fault(&project_of(file)) {
                            Some(Misbehave::Tamper) => {
                                let i = data.len() / 2;
                                data[i] ^= 0xff;
                            }
                            Some(Misbehave::FailOnce) if first => {
                                let _ = write!(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                                return;
                            }
                            Some(Misbehave::Hang) => return hang(),
                            Some(Misbehave::Cut { every_time }) if every_time || first => {
                                let _ = conn.write_all(header(data.len()).as_bytes());
                                // Half the promised bytes, then the connection goes away.
                                let _ = conn.write_all(&data[..data.len() / 2]);
                                return;
                            }
                            Some(Misbehave::Redirect(to)) => {
                                let _ = write!(conn, "HTTP/1.1 302 Found\r\nLocation: http://localhost:{to}/files/{file}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                                return;
                            }
                            Some(Misbehave::Hold) => {
                                let _ = conn.write_all(header(data.len()).as_bytes());
                                let _ = conn.write_all(&data[..data.len() / 2]);
                                let _ = conn.flush();
                                while !released.load(std::sync::atomic::Ordering::SeqCst)
                                    && !stop.load(std::sync::atomic::Ordering::SeqCst)
                                {
                                    std::thread::sleep(std::time::Duration::from_millis(20));
                                }
                                let _ = conn.write_all(&data[data.len() / 2..]);
                                return;
                            }
                            _ => {}
                        }
                        let _ = conn.write_all(header(data.len()).as_bytes());
                        let _ = conn.write_all(&data);
                    } else {
                        let _ = write!(conn, "{not_found}");
                    }
                });
            }
        });
        TestIndex {
            port,
            log,
            stop,
            released,
        }
    }
}

/// An HTTP proxy on loopback that tunnels `CONNECT host:port` (as a
/// corporate proxy does for clients that tunnel), logging each target.
pub struct TestProxy {
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TestProxy {
    pub fn start() -> TestProxy {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let log = log2.clone();
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).unwrap();
                    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap_or(0);
                    // The rest of the request's head.
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    log.lock().unwrap().push(line.trim().to_string());
                    let mut parts = line.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                        let mut c = conn;
                        let _ = write!(
                            c,
                            "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
                        );
                        return;
                    };
                    let Ok(upstream) = std::net::TcpStream::connect(target) else {
                        let mut c = conn;
                        let _ = write!(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                        return;
                    };
                    let mut c = conn;
                    let _ = write!(c, "HTTP/1.1 200 Connection established\r\n\r\n");
                    // Whatever the client sent after its head, then both ways.
                    let buffered = reader.buffer().to_vec();
                    let mut up = upstream.try_clone().unwrap();
                    let _ = up.write_all(&buffered);
                    let (mut from_client, mut to_up) =
                        (c.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let t = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from_client, &mut to_up);
                        let _ = to_up.shutdown(std::net::Shutdown::Write);
                    });
                    let mut from_up = upstream;
                    let _ = std::io::copy(&mut from_up, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let _ = t.join();
                });
            }
        });
        TestProxy { port, log, stop }
    }
}

/// The METADATA file inside a wheel.
fn wheel_metadata(wheel: &Path) -> Option<String> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).ok()?).ok()?;
    let name = (0..zip.len()).find_map(|i| {
        let n = zip.name_for_index(i)?.ok()?;
        n.ends_with(".dist-info/METADATA").then(|| n.to_string())
    })?;
    let mut text = String::new();
    zip.by_name(&name).ok()?.read_to_string(&mut text).ok()?;
    Some(text)
}

/// [`TestIndex`] that cuts every download of files starting with `cut`
/// halfway, and with `auth` answers 401 to requests without that basic
/// auth; the port, and a flag that stops it.
pub fn serve_index(
    cut: &'static str,
    auth: Option<(&'static str, &'static str)>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let project = cut.to_lowercase().replace('_', "-");
    let project: &'static str = Box::leak(project.into_boxed_str());
    let index = TestIndex::start(&[(project, Misbehave::Cut { every_time: true })], auth);
    let out = (index.port, index.stop.clone());
    std::mem::forget(index);
    out
}

/// The requirement blocks of `lock` named in `keep`: a smaller lock that is still valid.
pub fn lock_subset(lock: &Path, keep: &[&str], dest: &Path) -> PathBuf {
    let text = std::fs::read_to_string(lock).unwrap();
    let mut out = String::new();
    let mut take = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            take = keep.iter().any(|k| line.starts_with(&format!("{k}==")));
        }
        if take {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(dest, out).unwrap();
    dest.to_path_buf()
}

/// The generation directories (`g*`) in `dir` of the tree, sorted.
pub fn generation_dirs(tree: &Tree, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree.path(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('g'))
        .collect();
    v.sort();
    v
}

/// docopt 0.6.2, published only as a source distribution, and the build
/// backend pip needs to build it offline (setuptools, and wheel, which pip
/// 23 adds to a legacy project's build requirements), downloaded once.
pub const DOCOPT_SDIST_SHA256: &str =
    "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491";

/// A folder with docopt's sdist and its build backend's wheels (see [`DOCOPT_SDIST_SHA256`]).
pub fn sdist_files() -> PathBuf {
    cached_folder("sdist-docopt-0.6.2-setuptools-80.9.0-wheel-0.45.1", |tmp| {
        pip_download(tmp, &["--no-binary=:all:", "docopt==0.6.2"]);
        for wheel in ["setuptools==80.9.0", "wheel==0.45.1"] {
            pip_download(tmp, &["--only-binary=:all:", wheel]);
        }
    })
}

/// `venvbake verify NAME --format json` on the tree: exit code and report.
pub fn verify(tree: &Tree, name: &str) -> (i32, serde_json::Value) {
    let run = venvbake(
        &[
            "verify",
            "--root",
            tree.root.to_str().unwrap(),
            name,
            "--format",
            "json",
        ],
        &[],
    );
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null),
    )
}

/// `venvbake ARGS --format json`, which must succeed, parsed.
pub fn json_of(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let run = venvbake(&all, &[]).ok();
    serde_json::from_str(&run.stdout).unwrap()
}
