//! apt and dpkg in the target: install only what is missing, non-interactively.
//!
//! Commands are built as data (see [`install_cmd`], [`update_cmd`]) and run
//! through [`crate::sys::exec`]. apt waits for the dpkg lock itself
//! (`DPkg::Lock::Timeout`), so a lock held by cloud-init or
//! unattended-upgrades delays the build instead of failing it. In an image
//! tree a temporary `policy-rc.d` keeps package scripts from starting daemons.

use std::path::{Path, PathBuf};

use crate::error::{Error, Phase, Result};
use crate::plan::AptPlan;
use crate::sys::exec::{self, Cmd, CommandError};
use crate::sys::report::Reporter;
use crate::target::Target;

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const POLICY_MARK: &str = "# written by venvbake: no service starts during an image build";

fn common(cmd: Cmd, lock_timeout_s: u64) -> Cmd {
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .args([
            "-q".to_string(),
            "-o".to_string(),
            format!("DPkg::Lock::Timeout={lock_timeout_s}"),
        ])
}

pub fn update_cmd(base: &[(String, String)], chroot: Option<&Path>, lock_timeout_s: u64) -> Cmd {
    common(Cmd::new("apt-get", base).chroot(chroot), lock_timeout_s).arg("update")
}

pub fn install_cmd(
    base: &[(String, String)],
    chroot: Option<&Path>,
    packages: &[String],
    lock_timeout_s: u64,
    recommends: bool,
) -> Cmd {
    common(Cmd::new("apt-get", base).chroot(chroot), lock_timeout_s)
        .args([
            "-y",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            if recommends {
                "--install-recommends"
            } else {
                "--no-install-recommends"
            },
            "install",
            "--",
        ])
        .args(packages.iter().cloned())
}

/// Keeps daemons from starting in an image tree while it lives.
struct PolicyGuard {
    path: Option<PathBuf>,
}

impl PolicyGuard {
    fn install(target: &Target) -> Result<Self> {
        if !target.is_tree() {
            return Ok(PolicyGuard { path: None });
        }
        let path = target.host_path(Path::new(POLICY_RC_D));
        match std::fs::read_to_string(&path) {
            // Ours, left by a killed run: reuse it and remove it afterwards.
            Ok(text) if text.contains(POLICY_MARK) => {}
            // The image's own policy: respect it, never remove it.
            Ok(_) => return Ok(PolicyGuard { path: None }),
            Err(_) => {
                let text = format!("#!/bin/sh\n{POLICY_MARK}\nexit 101\n");
                crate::sys::fsutil::atomic_write(&path, text.as_bytes(), 0o755)?;
            }
        }
        Ok(PolicyGuard { path: Some(path) })
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Remove a `policy-rc.d` a killed run left behind.
pub fn clean_stale_policy(target: &Target) {
    if !target.is_tree() {
        return;
    }
    let path = target.host_path(Path::new(POLICY_RC_D));
    if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(POLICY_MARK)) {
        let _ = std::fs::remove_file(path);
    }
}

/// `apt-get update` in the target.
pub fn update(
    target: &Target,
    base: &[(String, String)],
    lock_timeout_s: u64,
    reporter: &mut Reporter,
) -> Result<()> {
    reporter.step("apt: update package lists");
    exec::run(
        &update_cmd(base, target.chroot(), lock_timeout_s),
        0,
        &mut |l| reporter.output(l),
    )
    .map(|_| ())
    .map_err(|e| apt_error(e, lock_timeout_s, "apt-get update failed"))
}

/// Carry out the apt part of a plan.
pub fn apply(
    target: &Target,
    base: &[(String, String)],
    plan: &AptPlan,
    recommends: bool,
    reporter: &mut Reporter,
) -> Result<()> {
    if plan.install.is_empty() {
        return Ok(());
    }
    let _guard = PolicyGuard::install(target)?;
    let names: Vec<String> = plan.install.iter().map(|i| i.name.clone()).collect();
    let timeout = plan.lock_timeout_s;
    let run = |cmd: Cmd, reporter: &mut Reporter| -> std::result::Result<(), CommandError> {
        exec::run(&cmd, 0, &mut |l| reporter.output(l)).map(|_| ())
    };
    let mut updated = false;
    if plan.update {
        update(target, base, timeout, reporter)?;
        updated = true;
    }
    reporter.step(format!("apt: install {}", names.join(" ")));
    match run(
        install_cmd(base, target.chroot(), &names, timeout, recommends),
        reporter,
    ) {
        Ok(()) => Ok(()),
        Err(e) if !updated && stale_lists(&e) => {
            reporter.info("apt: package lists look stale; running apt-get update and retrying");
            run(update_cmd(base, target.chroot(), timeout), reporter)
                .map_err(|e| apt_error(e, timeout, "apt-get update failed"))?;
            run(
                install_cmd(base, target.chroot(), &names, timeout, recommends),
                reporter,
            )
            .map_err(|e| apt_error(e, timeout, "apt-get install failed"))
        }
        Err(e) if e.mentions("dpkg was interrupted") => {
            // A run killed during dpkg (ours or anyone's): finish its work first.
            reporter.info(
                "apt: dpkg was interrupted earlier; running dpkg --configure -a and retrying",
            );
            let configure = Cmd::new("dpkg", base)
                .chroot(target.chroot())
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["--configure", "-a", "--force-confdef", "--force-confold"]);
            run(configure, reporter)
                .map_err(|e| apt_error(e, timeout, "dpkg --configure -a failed"))?;
            run(
                install_cmd(base, target.chroot(), &names, timeout, recommends),
                reporter,
            )
            .map_err(|e| apt_error(e, timeout, "apt-get install failed"))
        }
        Err(e) => Err(apt_error(e, timeout, "apt-get install failed")),
    }
}

fn stale_lists(e: &CommandError) -> bool {
    e.mentions("Unable to locate package")
        || e.mentions("has no installation candidate")
        || e.mentions("Failed to fetch")
        || e.mentions("404  Not Found")
}

fn apt_error(e: CommandError, timeout_s: u64, what: &str) -> Error {
    if e.mentions("Could not get lock") || e.mentions("Unable to acquire the dpkg") {
        return Error::DpkgLocked {
            timeout_s,
            command: e.command.clone(),
            holder: lock_holder(&e.recent),
        };
    }
    let hint = if e.mentions("Unable to locate package")
        || e.mentions("has no installation candidate")
    {
        "check the package names in `[apt] packages` against this distribution release"
    } else if e.mentions("Temporary failure resolving") || e.mentions("Could not connect") {
        "the target cannot reach its apt mirror; check the network, proxy variables or the image's sources"
    } else {
        "the output above shows apt's own reason"
    };
    Error::Command {
        phase: Phase::Apt,
        what: what.to_string(),
        hint: (hint.into()),
        source: Box::new(e),
    }
}

/// `... It is held by process 1234 (apt-get)` -> `apt-get (pid 1234)`.
pub fn lock_holder(tail: &[String]) -> Option<String> {
    tail.iter().find_map(|l| {
        let rest = &l[l.find("held by process ")? + "held by process ".len()..];
        let (pid, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let name = after
            .trim()
            .trim_start_matches('(')
            .split(')')
            .next()
            .unwrap_or("")
            .trim();
        Some(if name.is_empty() {
            format!("pid {pid}")
        } else {
            format!("{name} (pid {pid})")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_non_interactive_and_bounded() {
        let c = install_cmd(&[], Some(Path::new("/t")), &["git".into()], 30, false);
        let line = c.display();
        assert_eq!(
            line,
            "chroot /t apt-get -q -o DPkg::Lock::Timeout=30 -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends install -- git"
        );
        assert!(c
            .env
            .contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
    }

    #[test]
    fn lock_holder_is_named() {
        let tail = vec![
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)".to_string(),
        ];
        assert_eq!(
            lock_holder(&tail).as_deref(),
            Some("unattended-upgr (pid 4242)")
        );
        assert_eq!(lock_holder(&["nothing".into()]), None);
    }
}
