//! `venvbake rollback` and `venvbake gc`: moving between and removing
//! generations.
//!
//! Both take the profile's lock, touch nothing outside venvbake's own
//! generations directory (and the manifest and fact, rewritten atomically by
//! rollback), and never remove the active generation.

use crate::commands::apply::manifest_for;
use crate::error::{Error, Result};
use crate::generation::store::lock_venv;
use crate::generation::store::Link;
use crate::input::profile::Profile;
use crate::plan;
use crate::sys::report::Reporter;
use crate::target::Target;

/// Switch to the previous complete generation; returns its name.
pub fn rollback(profile: &Profile, target: &Target, reporter: &mut Reporter) -> Result<String> {
    let _lock = lock_venv(target, profile, reporter)?;
    let obs = plan::observe(profile, target, false)?;
    let Link::Generation(active) = &obs.link else {
        return Err(Error::usage(
            format!(
                "`{}` has no active generation to roll back from",
                profile.venv.path.display()
            ),
            "`venvbake apply` builds one; nothing was changed",
        ));
    };
    let active_no = crate::generation::store::generation_number(active).unwrap_or(u32::MAX);
    let previous = obs
        .generations
        .iter()
        .rev()
        .find(|g| g.number < active_no && g.record.is_some())
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "no complete generation older than {active} is left in `{}`",
                    crate::generation::store::generations_dir(&profile.venv.path).display()
                ),
                format!(
                    "{active} stays active; `[venv] keep_generations` (at least 2) keeps one to roll back to for the next apply"
                ),
            )
        })?;
    let record = previous
        .record
        .clone()
        .ok_or_else(|| Error::Internal("record vanished".into()))?;
    let gens_dir = crate::generation::store::generations_dir(&profile.venv.path);

    // The old generation must still run on today's interpreter.
    let python = gens_dir.join(&previous.name).join("bin/python");
    let cmd = crate::sys::exec::Cmd::new(
        python.display().to_string(),
        &crate::sys::exec::base_env(&[]),
    )
    .chroot(target.chroot())
    .args([
        "-I",
        "-c",
        "import platform; print(platform.python_version())",
    ]);
    let runs = crate::sys::exec::run(&cmd, 5, &mut |_| {});
    match runs {
        Ok(o) if o.lines.first() == Some(&record.python.version) => {}
        Ok(o) => {
            return Err(Error::usage(
                format!(
                    "generation {} was built for Python {} but the system now has {}; it would not work",
                    previous.name,
                    record.python.version,
                    o.lines.first().cloned().unwrap_or_default()
                ),
                format!("{active} stays active; `venvbake apply` rebuilds for today's interpreter"),
            ))
        }
        Err(e) => {
            return Err(Error::usage(
                format!(
                    "generation {} no longer runs ({e}); it would not work",
                    previous.name
                ),
                format!("{active} stays active; `venvbake apply` rebuilds for today's interpreter"),
            ))
        }
    }

    reporter.step(format!(
        "rollback {} -> {}",
        profile.venv.path.display(),
        previous.name
    ));

    let apt: Vec<(String, String)> = obs
        .manifest
        .as_ref()
        .map(|m| {
            m.apt
                .iter()
                .map(|a| (a.name.clone(), a.reason.clone()))
                .collect()
        })
        .unwrap_or_default();
    let system_pip = obs
        .manifest
        .as_ref()
        .map(|m| m.system_pip.clone())
        .unwrap_or_default();
    let m = manifest_for(
        profile,
        &record,
        &gens_dir,
        &apt,
        system_pip,
        &obs.os_release,
        &target.dpkg_installed()?,
        &target.system_dists(&obs.interpreter),
    );
    let mut m = m;
    if let Some(before) = &obs.manifest {
        m.adopted = before.adopted.clone();
        m.taken_over_from = before.taken_over_from.clone();
    }
    crate::generation::store::commit(target, profile, &gens_dir, &m, true)?;
    reporter.finish();
    reporter.info(&format!(
        "rolled back `{}` from {active} to {}; the next `venvbake apply` switches to the profile's current generation again",
        profile.name, previous.name
    ));
    Ok(previous.name.clone())
}

/// Remove generations so that `keep` complete ones remain (the active one
/// included), and every incomplete leftover. Returns the removed names.
pub fn gc(
    profile: &Profile,
    target: &Target,
    keep: Option<u32>,
    reporter: &mut Reporter,
) -> Result<Vec<String>> {
    let _lock = lock_venv(target, profile, reporter)?;
    // Only the link and the generations: no dpkg, no interpreter.
    let (link, generations) =
        crate::generation::store::observe_generations(&profile.venv.path, target);
    let keep = keep.unwrap_or(profile.venv.keep_generations).max(1);
    let active = match &link {
        Link::Generation(g) => Some(g.as_str()),
        _ => None,
    };
    let names =
        crate::generation::store::to_remove(&generations, active.unwrap_or(""), active, keep);
    let gens_host = target.host_path(&crate::generation::store::generations_dir(
        &profile.venv.path,
    ));
    let mut removed = Vec::new();
    for name in names {
        if Some(name.as_str()) == active
            || crate::generation::store::generation_number(&name).is_none()
        {
            continue;
        }
        match std::fs::remove_dir_all(gens_host.join(&name)) {
            Ok(()) => {
                reporter.info(&format!("removed generation {name}"));
                removed.push(name);
            }
            Err(e) => return Err(Error::io("remove generation", gens_host.join(&name), e)),
        }
    }
    if removed.is_empty() {
        reporter.info("nothing to remove");
    }
    Ok(removed)
}
