//! The one place that runs subprocesses.
//!
//! Steps describe a command as plain data ([`Cmd`]: program, arguments,
//! environment, optional chroot) so unit tests can check it without running
//! it. [`run`] executes it through duct with stdin closed (or, [`run_fed`],
//! fed through a pipe by the caller), stderr merged into
//! stdout and a *clean, explicit environment* (nothing of venvbake's own
//! environment leaks into the target), streams every line to a callback as it
//! arrives, and keeps the tail for the error message. No shell is ever used.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// How many of a failing command's last lines an error shows.
pub const TAIL_LINES: usize = 25;

/// How many last lines are kept to find the cause of a failure (hints).
pub const RECENT_LINES: usize = 400;

/// PATH inside the target: the Debian default for root.
pub const TARGET_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Proxy variables that are passed on to the target, and nothing else of the host.
pub const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// A command as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// The complete environment of the child (sorted for stable output).
    pub env: Vec<(String, String)>,
    /// Run chrooted into this directory (the image tree), if set.
    pub chroot: Option<PathBuf>,
    /// Strings (secrets) replaced by `***` in every line of output.
    pub masks: Vec<String>,
}

impl Cmd {
    /// A command with the base target environment (see [`base_env`]).
    pub fn new(program: impl Into<String>, base: &[(String, String)]) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: base.to_vec(),
            chroot: None,
            masks: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// Set (or replace) one variable of the child's environment.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key.to_string(), value)),
        }
        self
    }

    /// Never show `secret` in the output (it is replaced by `***`).
    pub fn mask(mut self, secret: impl Into<String>) -> Self {
        self.masks.push(secret.into());
        self
    }

    pub fn chroot(mut self, root: Option<&Path>) -> Self {
        self.chroot = root.map(Path::to_path_buf);
        self
    }

    /// The shell-quoted command line, as a person would type it.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if let Some(root) = &self.chroot {
            words.push("chroot".into());
            words.push(root.display().to_string());
        }
        words.push(self.program.clone());
        words.extend(self.args.iter().cloned());
        words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
    }

    fn expression(&self, input: Option<std::io::PipeReader>) -> duct::Expression {
        let expr = match &self.chroot {
            Some(root) => {
                let mut argv: Vec<std::ffi::OsString> = vec![root.as_os_str().to_owned()];
                argv.push(self.program.clone().into());
                argv.extend(self.args.iter().map(Into::into));
                // The host's own chroot(8), found through the host PATH
                // directories only, never the caller's PATH.
                duct::cmd(host_tool("chroot"), argv)
            }
            None => duct::cmd(&self.program, &self.args),
        };
        let expr = expr.full_env(self.env.iter().cloned());
        match input {
            Some(pipe) => expr.stdin_file(pipe),
            None => expr.stdin_null(),
        }
        .stderr_to_stdout()
        .unchecked()
    }
}

/// POSIX-shell quoting, only where a word needs it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The fixed location of a host tool (coreutils' chroot lives in /usr/sbin).
fn host_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// The clean base environment of every command run in the target.
///
/// Only these variables exist in the child; the build host's `PIP_*`,
/// `PYTHON*`, `VIRTUAL_ENV`, `UV_*` and everything else stay behind. Proxy
/// variables are the one deliberate exception, passed on explicitly.
pub fn base_env(host_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), TARGET_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
    ];
    for (k, v) in host_env {
        if PROXY_VARS.contains(&k.as_str()) || k == "SOURCE_DATE_EPOCH" {
            env.push((k.clone(), v.clone()));
        }
    }
    env
}

/// A command that failed to start or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` {}", self.outcome())]
pub struct CommandError {
    pub command: String,
    pub status: Option<i32>,
    pub spawn: Option<std::io::Error>,
    /// The last lines the command printed (shown in the error).
    pub tail: Vec<String>,
    /// A longer tail, searched by [`CommandError::mentions`] for the cause.
    pub recent: Vec<String>,
}

impl CommandError {
    /// How it ended: `exited with status 1`, `was killed by a signal`, ...
    pub fn outcome(&self) -> String {
        match (self.status, &self.spawn) {
            (_, Some(e)) => format!("could not be started: {e}"),
            (Some(code), None) => format!("exited with status {code}"),
            (None, None) => "was killed by a signal".to_string(),
        }
    }

    /// The tail of the command's output, framed, for the error message.
    pub fn render_tail(&self) -> String {
        if self.tail.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        // Error lines that scrolled out of the tail (pip lists every hash after its ERROR line).
        let earlier = self.recent.len().saturating_sub(self.tail.len());
        let errors: Vec<&String> = self.recent[..earlier]
            .iter()
            .filter(|l| l.starts_with("ERROR:") || l.starts_with("E: "))
            .take(5)
            .collect();
        if !errors.is_empty() {
            out.push_str("\n--- errors reported earlier ---");
            for l in errors {
                out.push('\n');
                out.push_str(l);
            }
        }
        out.push_str(&format!(
            "\n--- last {} lines of output ---",
            self.tail.len()
        ));
        for l in &self.tail {
            out.push('\n');
            out.push_str(l);
        }
        out.push_str("\n---");
        out
    }

    /// Whether any of the last lines contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.recent
            .iter()
            .chain(&self.tail)
            .any(|l| l.contains(needle))
    }
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub lines: Vec<String>,
}

impl Output {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Run `cmd`, streaming each output line to `on_line`. Keeps at most
/// `keep` lines of output in the returned [`Output`] (0: only the tail for errors).
pub fn run(cmd: &Cmd, keep: usize, on_line: &mut dyn FnMut(&str)) -> Result<Output, CommandError> {
    run_with(cmd, None, keep, on_line)
}

/// [`run`], with the child's stdin read from `input` (the caller writes to
/// the other end of the pipe and closes it when done) instead of closed.
pub fn run_fed(
    cmd: &Cmd,
    input: std::io::PipeReader,
    keep: usize,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output, CommandError> {
    run_with(cmd, Some(input), keep, on_line)
}

fn run_with(
    cmd: &Cmd,
    input: Option<std::io::PipeReader>,
    keep: usize,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output, CommandError> {
    let command = cmd.display();
    let fail = |status, spawn, recent: &VecDeque<String>| CommandError {
        command: command.clone(),
        status,
        spawn,
        tail: recent
            .iter()
            .skip(recent.len().saturating_sub(TAIL_LINES))
            .cloned()
            .collect(),
        recent: recent.iter().cloned().collect(),
    };
    let reader = match cmd.expression(input).reader() {
        Ok(r) => r,
        Err(e) => return Err(fail(None, Some(e), &VecDeque::new())),
    };
    let mut tail: VecDeque<String> = VecDeque::with_capacity(RECENT_LINES);
    let mut kept: Vec<String> = Vec::new();
    let mut buf = BufReader::new(&reader);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match buf.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&raw);
                // pip and apt redraw with \r; keep the last state of such a line.
                let line = line.trim_end_matches(['\n', '\r']);
                let line = line.rsplit('\r').next().unwrap_or(line);
                let line = mask(line, &cmd.masks);
                on_line(&line);
                if kept.len() < keep {
                    kept.push(line.clone());
                }
                if tail.len() == RECENT_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Err(e) => return Err(fail(None, Some(e), &tail)),
        }
    }
    drop(buf);
    // duct reaps the child when the reader reaches EOF; a child that closed
    // its output early is waited for here.
    let status = loop {
        match reader.try_wait() {
            Ok(Some(out)) => break out.status,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(fail(None, Some(e), &tail)),
        }
    };
    if status.success() {
        Ok(Output { lines: kept })
    } else {
        Err(fail(status.code(), None, &tail))
    }
}

/// Replace every secret in `line` with `***`.
pub fn mask(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn base_env_keeps_only_proxies_of_the_host() {
        let env = base_env(&host(&[
            ("PIP_INDEX_URL", "http://127.0.0.1:9/"),
            ("PIP_FIND_LINKS", "/nonexistent"),
            ("PYTHONPATH", "/evil"),
            ("VIRTUAL_ENV", "/x"),
            ("UV_INDEX_URL", "http://x"),
            ("https_proxy", "http://proxy:3128"),
            ("PATH", "/home/me/bin:/usr/bin"),
        ]));
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["PATH", "HOME", "LANG", "LC_ALL", "TERM", "https_proxy"]
        );
        assert_eq!(env[0].1, TARGET_PATH);
    }

    #[test]
    fn display_quotes_and_shows_chroot() {
        let c = Cmd::new("apt-get", &[])
            .args(["install", "-y", "a b", "x;rm -rf /"])
            .chroot(Some(Path::new("/tmp/tree")));
        assert_eq!(
            c.display(),
            "chroot /tmp/tree apt-get install -y 'a b' 'x;rm -rf /'"
        );
    }

    #[test]
    fn quoting_is_minimal_and_safe() {
        assert_eq!(quote("DPkg::Lock::Timeout=30"), "DPkg::Lock::Timeout=30");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn env_replaces() {
        let c = Cmd::new("x", &host(&[("A", "1")]))
            .env("A", "2")
            .env("B", "3");
        assert_eq!(c.env, host(&[("A", "2"), ("B", "3")]));
    }

    #[test]
    fn run_streams_and_reports_tail() {
        let cmd = Cmd::new("/bin/sh", &base_env(&[])).args([
            "-c",
            "echo one; echo two >&2; echo \"$PIP_FIND_LINKS\"; exit 3",
        ]);
        let mut seen = Vec::new();
        let err = run(&cmd, 0, &mut |l| seen.push(l.to_string())).unwrap_err();
        assert_eq!(seen, ["one", "two", ""]);
        assert_eq!(err.status, Some(3));
        assert_eq!(err.tail, ["one", "two", ""]);
        assert!(err.to_string().contains("exited with status 3"));
    }

    #[test]
    fn long_output_keeps_the_error_line_for_the_message() {
        let cmd = Cmd::new("/bin/sh", &base_env(&[]))
            .args(["-c", "echo 'ERROR: the cause'; i=0; while [ $i -lt 60 ]; do echo hash$i; i=$((i+1)); done; exit 1"]);
        let err = run(&cmd, 0, &mut |_| {}).unwrap_err();
        assert_eq!(err.tail.len(), TAIL_LINES);
        assert!(err.mentions("ERROR: the cause"));
        let shown = err.render_tail();
        assert!(
            shown.contains("--- errors reported earlier ---\nERROR: the cause"),
            "{shown}"
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let cmd = Cmd::new("/nonexistent/venvbake-test", &[]);
        let err = run(&cmd, 0, &mut |_| {}).unwrap_err();
        assert!(err.spawn.is_some());
    }
}
