//! Living with cloud-init on a freshly booted VM.
//!
//! While cloud-init's first boot runs, it (and unattended-upgrades after it)
//! holds the dpkg lock and may still be installing packages. A Packer
//! provisioner that starts early should let it finish first:
//! `cloud-init status --wait`, bounded, where exit 2 ("degraded") is not a
//! failure. But venvbake is also run *from* cloud-init's own `runcmd`; there
//! it must never wait on itself, or first boot deadlocks. Only the running
//! system is concerned: an image tree (`--root`) never waits.

use std::path::Path;

use crate::error::Result;
use crate::sys::exec::{self, Cmd};
use crate::sys::report::Reporter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Wait when cloud-init's first boot is still running and venvbake is not part of it.
    Auto,
    /// Never wait (the apt lock is still waited for).
    Never,
}

/// What is known about cloud-init on the running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub installed: bool,
    /// `/run/cloud-init` exists: cloud-init ran during this boot.
    pub ran_this_boot: bool,
    /// `/run/cloud-init/result.json` or `boot-finished`: the final stage is done.
    pub finished: bool,
    /// venvbake is a descendant of a cloud-init process (its `runcmd`).
    pub under_cloud_init: bool,
}

/// Whether to wait, and why (for the log).
pub fn decide(mode: Wait, tree: bool, s: State) -> (bool, &'static str) {
    match () {
        _ if tree => (false, "an image tree is not booted"),
        _ if mode == Wait::Never => (false, "--cloud-init-wait never"),
        _ if !s.installed || !s.ran_this_boot => (false, "cloud-init did not run in this boot"),
        _ if s.finished => (false, "cloud-init has finished"),
        _ if s.under_cloud_init => (
            false,
            "venvbake runs under cloud-init (runcmd): waiting would deadlock",
        ),
        _ => (true, "cloud-init's first boot is still running"),
    }
}

/// Read the state of the running system.
pub fn observe() -> State {
    State {
        installed: Path::new("/usr/bin/cloud-init").exists(),
        ran_this_boot: Path::new("/run/cloud-init").is_dir(),
        finished: Path::new("/run/cloud-init/result.json").exists()
            || Path::new("/var/lib/cloud/instance/boot-finished").exists(),
        under_cloud_init: under_cloud_init(std::os::unix::process::parent_id()),
    }
}

/// Whether `pid` or any of its ancestors is a cloud-init process.
pub fn under_cloud_init(mut pid: u32) -> bool {
    for _ in 0..64 {
        if pid <= 1 {
            return false;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if is_cloud_init(&cmdline) {
            return true;
        }
        match parent_of(pid) {
            Some(p) => pid = p,
            None => return false,
        }
    }
    false
}

/// `python3 /usr/bin/cloud-init modules --mode=final` and the like.
fn is_cloud_init(cmdline: &[u8]) -> bool {
    cmdline
        .split(|b| *b == 0)
        .take(2)
        .any(|arg| arg.rsplit(|b| *b == b'/').next() == Some(b"cloud-init".as_slice()))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Wait for cloud-init's first boot when that is right; never an error.
pub fn wait_if_needed(
    mode: Wait,
    tree: bool,
    timeout_s: u64,
    base: &[(String, String)],
    reporter: &mut Reporter,
) -> Result<()> {
    let state = if tree {
        State {
            installed: false,
            ran_this_boot: false,
            finished: false,
            under_cloud_init: false,
        }
    } else {
        observe()
    };
    let (wait, why) = decide(mode, tree, state);
    if !wait {
        if state.installed && state.ran_this_boot && !state.finished {
            reporter.info(&format!("not waiting for cloud-init: {why}"));
        }
        return Ok(());
    }
    reporter.step(format!(
        "cloud-init: wait for first boot to finish (up to {timeout_s} s)"
    ));
    let cmd = Cmd::new("timeout", base).args([
        "--kill-after=5".to_string(),
        timeout_s.to_string(),
        "cloud-init".to_string(),
        "status".to_string(),
        "--wait".to_string(),
    ]);
    match exec::run(&cmd, 0, &mut |l| reporter.output(l)) {
        Ok(_) => {}
        // 2: finished "degraded" (recoverable errors): not a failure for us.
        Err(e) if e.status == Some(2) => reporter.info("cloud-init finished degraded; going on"),
        Err(e) if e.status == Some(124) => reporter.warn(&format!(
            "cloud-init still runs after {timeout_s} s; going on (apt waits for the dpkg lock)"
        )),
        Err(e) => reporter.warn(&format!("`cloud-init status --wait` failed: {e}; going on")),
    }
    reporter.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(installed: bool, ran: bool, finished: bool, under: bool) -> State {
        State {
            installed,
            ran_this_boot: ran,
            finished,
            under_cloud_init: under,
        }
    }

    #[test]
    fn waits_only_for_a_running_first_boot_it_is_not_part_of() {
        let table = [
            (Wait::Auto, false, s(true, true, false, false), true),
            (Wait::Auto, false, s(true, true, false, true), false),
            (Wait::Auto, false, s(true, true, true, false), false),
            (Wait::Auto, false, s(true, false, false, false), false),
            (Wait::Auto, false, s(false, true, false, false), false),
            (Wait::Never, false, s(true, true, false, false), false),
            (Wait::Auto, true, s(true, true, false, false), false),
        ];
        for (mode, tree, state, want) in table {
            assert_eq!(
                decide(mode, tree, state).0,
                want,
                "{mode:?} tree={tree} {state:?}"
            );
        }
    }

    #[test]
    fn recognises_cloud_init_command_lines() {
        assert!(is_cloud_init(
            b"/usr/bin/python3\0/usr/bin/cloud-init\0modules\0--mode=final\0"
        ));
        assert!(is_cloud_init(b"/usr/bin/cloud-init\0init\0"));
        assert!(!is_cloud_init(b"/bin/sh\0-c\0cloud-init-like\0"));
        assert!(!is_cloud_init(b"/usr/bin/python3\0/opt/x/not-cloud-init\0"));
    }

    #[test]
    fn this_test_is_not_under_cloud_init_and_parents_resolve() {
        let me = std::process::id();
        assert!(parent_of(me).is_some());
        assert!(!under_cloud_init(me));
    }
}
