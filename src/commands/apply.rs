//! `venvbake apply`: carry out a plan, in an order that never leaves a
//! half-built image.
//!
//! A straight line, under the venv path's lock: settings (resolved by the
//! caller) → observe → plan (stage 1: who serves what, apt, the system's
//! pip; stage 2: the venv) → stop when nothing changes, and refuse what can
//! be refused before any change (another profile's path, a bundle built for
//! another target) → for an image tree, a private mount namespace → apt →
//! stage 2 again from the target apt left → probe the interpreter → the
//! system's pip → fill and check a new generation beside the old one (or
//! stamp it from a bundle) → commit: manifest, fact, then the switch of the
//! fixed path's symlink in one rename → remove old generations. Until the
//! switch, the previous generation keeps serving.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::decide::Choice;
use crate::error::{Error, Result};
use crate::generation::manifest::{
    self, AptPackage, Distribution, FileInfo, GenerationRecord, Manifest, ProfileInfo, Tool,
    VenvInfo,
};
use crate::input::profile::Profile;
use crate::plan::{self, Plan, VenvAction};
use crate::sys::report::Reporter;
use crate::target::Target;

/// What an apply did, as `apply --format json` prints it (stable:
/// `schema_version` 1; fields are only ever added).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub schema_version: u32,
    /// Whether anything on the target changed (a new or another generation,
    /// apt packages, system pip).
    pub changed: bool,
    pub profile: String,
    /// `keep`, `switch` (to a generation already built) or `build`.
    pub action: &'static str,
    /// The generation the fixed path serves now, and the one before (None
    /// on a first build).
    pub generation: String,
    pub previous_generation: Option<String>,
    /// `ansible_python_interpreter`: the venv's python under the fixed path.
    pub interpreter: PathBuf,
    pub venv: PathBuf,
    pub manifest: PathBuf,
    /// apt packages this apply installed.
    pub apt_installed: Vec<String>,
    /// Distributions pip installed into the system interpreter.
    pub system_pip_installed: Vec<String>,
    pub duration_s: f64,
}

pub struct Request<'a> {
    pub profile: &'a Profile,
    pub target: &'a Target,
    /// Where the files come from (`--wheelhouse`, `--bundle`) and the
    /// index's CA bundle, resolved once.
    pub sources: &'a crate::input::settings::Sources,
    pub cloud_init_wait: crate::target::cloudinit::Wait,
    /// Move a directory that is not venvbake's out of the fixed path's way.
    pub adopt: bool,
    /// Hand the venv path over from this profile (`--take-over`).
    pub take_over: Option<&'a str>,
    /// The host environment; only proxy variables and `SOURCE_DATE_EPOCH` are used.
    pub host_env: Vec<(String, String)>,
}

/// Carry out the profile on the target. A failure comes back as
/// [`Error::Stopped`], saying what the venv's fixed path serves now.
pub fn apply(req: &Request, reporter: &mut Reporter) -> Result<Outcome> {
    let venv_path = &req.profile.venv.path;
    let serving = || {
        crate::generation::store::generation_of_link(
            &req.target.host_path_nofollow(venv_path),
            venv_path,
        )
    };
    let before = serving();
    apply_inner(req, reporter).map_err(|e| {
        let after = serving();
        let path = venv_path.display();
        let state = match (&before, &after) {
            (Some(b), Some(a)) if a == b => {
                format!("state: `{path}` still serves generation {a}, as before this apply")
            }
            (_, Some(a)) => format!("state: `{path}` now serves generation {a}"),
            (_, None) => format!("state: no venv of this profile is at `{path}`; nothing of this build was left behind"),
        };
        Error::Stopped {
            source: Box::new(e),
            state,
        }
    })
}

fn apply_inner(req: &Request, reporter: &mut Reporter) -> Result<Outcome> {
    let started = Instant::now();
    let (profile, target) = (req.profile, req.target);
    let _lock = crate::generation::store::lock_venv(target, profile, reporter)?;
    let ask_apt = profile.python.asks_apt();
    // With --adopt, a directory (or foreign symlink) at the fixed path is
    // planned around and moved aside just before the switch; never deleted.
    let took_over = std::cell::Cell::new(false);
    let observe = |ask: bool| -> Result<plan::Observed> {
        let mut o = plan::observe(profile, target, ask)?;
        plan::adopt(&mut o, req.adopt);
        if plan::hand_over(&mut o, req.take_over, &profile.venv.path)? {
            took_over.set(true);
        }
        Ok(o)
    };
    let mut observed = observe(ask_apt)?;
    let mut plan = plan::make(profile, target, &observed, req.sources)?;
    // Unless nothing is to change: the index's metadata for the conflict
    // check (on this host), and the plan again with it.
    let enriched = match plan.noop {
        true => None,
        false => crate::index::with_plan_requires(profile, req.sources, &req.host_env, |n| {
            reporter.warn(n)
        }),
    };
    let sources = enriched.as_ref().unwrap_or(req.sources);
    if enriched.is_some() {
        plan = plan::make(profile, target, &observed, sources)?;
    }
    let previous = match &observed.link {
        crate::generation::store::Link::Generation(g) => Some(g.clone()),
        _ => None,
    };
    let outcome = |plan: &Plan, generation: String, changed: bool| Outcome {
        schema_version: 1,
        changed,
        profile: profile.name.clone(),
        action: plan.venv.action.kind(),
        generation,
        previous_generation: previous.clone(),
        interpreter: profile.venv.path.join("bin/python"),
        venv: profile.venv.path.clone(),
        manifest: profile.outputs.manifest.clone(),
        apt_installed: plan.apt.install.iter().map(|i| i.name.clone()).collect(),
        system_pip_installed: plan
            .system_pip
            .iter()
            .filter(|s| !s.present)
            .map(|s| s.name.clone())
            .collect(),
        duration_s: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };
    if plan.noop {
        reporter.info(&format!(
            "profile `{}` is up to date ({} -> {}); nothing changed",
            profile.name,
            profile.venv.path.display(),
            plan.venv.action.generation()
        ));
        return Ok(outcome(
            &plan,
            plan.venv.action.generation().to_string(),
            false,
        ));
    }
    // What this apply creates on the way to its generations directory goes
    // again if it fails: a refused first build leaves nothing behind.
    let scaffold = crate::sys::fsutil::NewDirs::note(
        &target.root,
        &target.host_path(&plan.venv.generations_dir),
    );
    // A bundle that cannot be read, or was built for another target, is
    // refused before anything changes (when apt must first update its
    // lists, the plan may still change: checked again after the update).
    let bundle = match req.sources.bundle.as_deref() {
        Some(file) => Some((file, crate::generation::bundle::read_header(file)?)),
        None => None,
    };
    let refuse_foreign_bundle = |plan: &Plan| -> Result<()> {
        match &bundle {
            Some((file, header)) => plan::bundle_verdict(file, header, plan)
                .refusal()
                .map_or(Ok(()), Err),
            None => Ok(()),
        }
    };
    // The plan is final unless the decisions wait for apt's lists.
    let final_plan = !ask_apt || observed.apt_lists;
    if final_plan {
        refuse_foreign_bundle(&plan)?;
    }

    if target.is_tree() {
        crate::target::ns::enter_private_namespace()?;
        crate::target::ns::mount_api_filesystems(&target.root)?;
        crate::steps::apt::clean_stale_policy(target);
    }
    // (After the namespace is entered: a thread keeps the one it started in.)
    crate::sys::fsutil::prefetch(target.interpreter_files(&profile.venv.python));
    let base_env = crate::sys::exec::base_env(&req.host_env);
    // The interpreter's pip wheel: for pip in the venv, and to download
    // from an index (looking it up costs the probe an import).
    let needs = |plan: &Plan| crate::steps::venv::Needs {
        pip_wheels: profile.venv.pip,
        ensurepip: plan.apt.wants_ensurepip(),
    };
    // With no apt work planned, the interpreter is probed while the rest is
    // planned; apt work may upgrade the interpreter, so then it is probed
    // after apt.
    let early_probe = plan.apt.install.is_empty().then(|| {
        let (target, env) = (target.clone(), base_env.clone());
        let (python, needs) = (profile.venv.python.clone(), needs(&plan));
        std::thread::spawn(move || crate::steps::venv::probe(&target, &env, &python, needs))
    });
    // The index's pages of the venv's requirements are looked up meanwhile
    // (and while apt works): the files are chosen once the probe is done.
    let ahead = look_ahead(profile, req, &plan);
    crate::target::cloudinit::wait_if_needed(
        req.cloud_init_wait,
        target.is_tree(),
        profile.apt.lock_timeout.as_secs(),
        &base_env,
        reporter,
    )?;

    if ask_apt && !observed.apt_lists {
        // The decisions need apt's view of the archive.
        crate::steps::apt::update(
            target,
            &base_env,
            profile.apt.lock_timeout.as_secs(),
            reporter,
        )?;
        observed = observe(ask_apt)?;
        plan = plan::make(profile, target, &observed, sources)?;
    }
    report_decisions(&plan, reporter);
    let unresolved = plan.unresolved();
    if !unresolved.is_empty() {
        return Err(Error::Unresolved { items: unresolved });
    }
    if !final_plan {
        // Planned again with apt's lists: judge the bundle on this plan.
        refuse_foreign_bundle(&plan)?;
    }
    // A bundle for the planned generation unpacks while the interpreter is
    // probed and the bundle's fields compared; if they differ, what it
    // unpacked is removed again (only when nothing else runs first).
    let mut early = match (&bundle, &plan.venv.action) {
        (Some((file, header)), VenvAction::Build { generation, .. })
            if header.record.generation == *generation
                && plan.apt.install.is_empty()
                && plan.system_pip.iter().all(|s| s.present) =>
        {
            let dir = target.host_path(&plan.venv.generations_dir.join(generation));
            (std::fs::symlink_metadata(&dir).is_err())
                .then(|| crate::generation::bundle::Early::start(file, &dir))
        }
        _ => None,
    };

    crate::steps::apt::apply(
        target,
        &base_env,
        &plan.apt,
        profile.apt.install_recommends,
        reporter,
    )?;
    if !plan.apt.install.is_empty() {
        // Stage 2 again, from the target as apt left it: apt may have
        // upgraded the interpreter itself (its identity is an input).
        observed.refresh_after_apt(profile, target)?;
        plan = plan::replan_venv(&plan, profile, target, &observed, sources);
    }
    let creds = crate::input::credentials::Credentials::from_profile(profile, &req.host_env)?;

    reporter.step(format!("python: probe {}", profile.venv.python.display()));
    let early_probe = early_probe
        .map(|t| t.join())
        .transpose()
        .map_err(|_| Error::Internal("the interpreter probe failed".into()))?;
    let probe = match early_probe {
        Some(probed) => probed?,
        None => crate::steps::venv::probe(target, &base_env, &profile.venv.python, needs(&plan))?,
    };
    reporter.finish();
    // The plan judged the lock's scope from the tree; the interpreter has the last word.
    if let Some(env) = probe.marker_env() {
        profile.requirements.check_scope(&env)?;
    }
    reporter.info(&format!(
        "python {} ({}), externally managed (PEP 668): {}",
        probe.version,
        probe.soabi,
        if probe.externally_managed {
            "yes"
        } else {
            "no"
        }
    ));

    let steps = Steps {
        req,
        plan: &plan,
        base_env: &base_env,
        creds: &creds,
        ahead,
    };
    steps.system_pip(reporter)?;
    let record = steps.fill(&probe, bundle.as_ref(), early.take(), &observed, reporter)?;
    let generation = steps.switch(&record, &observed, took_over.get(), reporter)?;
    scaffold.keep();
    crate::generation::store::remove_generations(
        target,
        &plan.venv.generations_dir,
        &plan.venv.remove,
        &generation,
        reporter,
    );
    reporter.finish();
    reporter.info(&format!(
        "profile `{}` applied: {} -> {generation} (python {}, {} distributions) in {:.1}s",
        profile.name,
        profile.venv.path.display(),
        record.python.version,
        record.distributions.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(outcome(&plan, generation.clone(), true))
}

/// `venvbake bundle`: pack the profile's active generation into `out`, once
/// `verify` finds it clean and the profile still describes it.
pub fn bundle(
    profile: &Profile,
    target: &Target,
    out: &Path,
    reporter: &mut Reporter,
) -> Result<u64> {
    let (path, m) =
        crate::commands::inventory::find_manifest(target, None, Some(&profile.outputs.manifest))?;
    crate::commands::inventory::check_describes(&path, &m, &profile.name)?;
    let report = crate::generation::verify::verify(target, &m)?;
    if !report.clean {
        return Err(Error::Drift {
            profile: m.profile.name.clone(),
            count: report.drift.len(),
        });
    }
    let observed = plan::observe(profile, target, profile.python.asks_apt())?;
    let plan = plan::make(
        profile,
        target,
        &observed,
        &crate::input::settings::Sources::default(),
    )?;
    if plan.venv.fingerprint != m.venv.fingerprint {
        return Err(Error::usage(
            format!(
                "the active generation `{}` was built from other inputs than `{}` describes now",
                m.venv.generation,
                profile.file.display()
            ),
            "run `venvbake apply` first, then bundle",
        ));
    }
    let gen_host = target.host_path(&plan.venv.generations_dir.join(&m.venv.generation));
    let record = manifest::read_generation(&gen_host).ok_or_else(|| {
        Error::Internal(format!("generation {} lost its record", m.venv.generation))
    })?;
    let tree_sha256 = record.tree_sha256.clone().ok_or_else(|| {
        Error::usage(
            format!(
                "generation {} has no tree hash (built by an older venvbake)",
                m.venv.generation
            ),
            "apply again to rebuild it, then bundle",
        )
    })?;
    reporter.step(format!(
        "bundle: pack {} into {}",
        m.venv.generation,
        out.display()
    ));
    let header = crate::generation::bundle::Header {
        format: crate::generation::bundle::FORMAT.into(),
        profile: profile.name.clone(),
        generation: m.venv.generation.clone(),
        fingerprint: m.venv.fingerprint.clone(),
        inputs: plan.venv.inputs.clone(),
        os_id: observed.os_release.id.clone(),
        os_version_id: observed.os_release.version_id.clone(),
        python_version: record.python.version.clone(),
        abi: record.python.abi.clone(),
        tree_sha256,
        record,
    };
    let size = crate::generation::bundle::write(&header, &gen_host, out)?;
    reporter.finish();
    Ok(size)
}

/// When the plan downloads from the index: the pages of the venv's
/// requirements, looked up from now on (see [`crate::index::Index::look_ahead`]).
/// Markers are not evaluated yet (the interpreter has not been probed): a
/// page no build takes is one request too many, nothing more.
fn look_ahead(
    profile: &crate::input::profile::Profile,
    req: &Request,
    plan: &Plan,
) -> Option<std::sync::Arc<crate::index::Ahead>> {
    let downloads = matches!(plan.venv.action, VenvAction::Build { .. })
        && plan
            .venv
            .route
            .as_ref()
            .is_some_and(|r| r.kind == plan::RouteKind::Download);
    if !downloads {
        return None;
    }
    let wants = (plan.venv.served.iter())
        .filter(|s| s.by == crate::decide::Choice::Venv)
        .map(|s| crate::index::Want::for_requirement(&s.requirement))
        .collect();
    // A client that cannot be made here fails again, with its error, where
    // the download needs it.
    let index =
        crate::index::Index::for_profile(profile, req.sources, &req.host_env, std::env::temp_dir())
            .ok()?;
    Some(index.look_ahead(wants))
}

/// What the steps after the plan share: the request, the plan, the clean
/// environment of commands in the target, the index's credentials and the
/// pages looked up ahead.
struct Steps<'a> {
    req: &'a Request<'a>,
    plan: &'a Plan,
    base_env: &'a [(String, String)],
    creds: &'a crate::input::credentials::Credentials,
    /// The index's pages, looked up while the interpreter was probed.
    ahead: Option<std::sync::Arc<crate::index::Ahead>>,
}

impl Steps<'_> {
    /// The last resort: pip installs the planned `[python] system` entries
    /// into the system interpreter, each said as a warning.
    fn system_pip(&self, reporter: &mut Reporter) -> Result<()> {
        let (target, profile) = (self.req.target, self.req.profile);
        let gens_dir = &self.plan.venv.generations_dir;
        let wheelhouse = self.req.sources.wheelhouse.as_deref();
        let cert = self.req.sources.cert.as_deref();
        let pending: Vec<_> = self
            .plan
            .system_pip
            .iter()
            .filter(|s| !s.present)
            .cloned()
            .collect();
        if !pending.is_empty() {
            for s in &pending {
                reporter.warn(&format!(
                    "installing {}=={} into the system interpreter with pip{}: {}",
                    s.name,
                    s.version,
                    if s.flag {
                        " --break-system-packages"
                    } else {
                        ""
                    },
                    s.reason
                ));
            }
            crate::steps::venv::install_system(
                &crate::steps::venv::SystemInstall {
                    target,
                    base_env: self.base_env,
                    profile,
                    entries: &pending,
                    staging: gens_dir,
                    wheelhouse,
                    cert,
                    creds: self.creds,
                },
                reporter,
            )?;
        }
        Ok(())
    }

    /// The generation that becomes the venv: built (or stamped from the
    /// bundle) when the plan says so, else the complete one it names.
    fn fill(
        &self,
        probe: &crate::steps::venv::Probe,
        bundle: Option<&(&Path, crate::generation::bundle::Header)>,
        early: Option<crate::generation::bundle::Early>,
        observed: &plan::Observed,
        reporter: &mut Reporter,
    ) -> Result<GenerationRecord> {
        let plan = self.plan;
        let (target, profile, req) = (self.req.target, self.req.profile, self.req);
        let gens_dir = &plan.venv.generations_dir;
        let wheelhouse = req.sources.wheelhouse.as_deref();
        let cert = req.sources.cert.as_deref();
        let record = match &plan.venv.action {
            VenvAction::Build { generation, reason } => {
                reporter.info(&format!("building generation {generation}: {reason}"));
                let sde = req
                    .host_env
                    .iter()
                    .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
                    .map(|(_, v)| v.as_str());
                let route = plan.venv.route.as_ref().ok_or_else(|| {
                    Error::Internal("a generation to build has no planned route".into())
                })?;
                // venvbake's own index client, on this host, for the download route.
                let index = match route.kind {
                    plan::RouteKind::Download => {
                        let scratch = target
                            .host_path(&gens_dir.join(generation))
                            .join(".venvbake/download");
                        Some(match &self.ahead {
                            Some(ahead) => crate::index::Index::after(
                                ahead.clone(),
                                profile,
                                req.sources,
                                scratch,
                            ),
                            None => crate::index::Index::for_profile(
                                profile,
                                req.sources,
                                &req.host_env,
                                scratch,
                            )?,
                        })
                    }
                    _ => None,
                };
                let build = crate::steps::venv::Build {
                    route,
                    target,
                    base_env: self.base_env,
                    profile,
                    probe,
                    gen_path: gens_dir.join(generation),
                    gen_name: generation.clone(),
                    fingerprint: plan.venv.fingerprint.clone(),
                    wheelhouse,
                    cert,
                    built_at: crate::sys::fsutil::rfc3339(crate::sys::fsutil::build_epoch(sde)),
                    system_site_packages: plan.venv.system_site_packages,
                    pip_lines: &plan.venv.pip_lines,
                    decisions: &plan.decisions,
                    served: &plan.venv.served,
                    creds: self.creds,
                    index: index.as_ref(),
                };
                match bundle {
                    Some((file, header)) => {
                        let wanted = crate::generation::bundle::Wanted {
                            generation,
                            inputs: &plan.venv.inputs,
                            os_id: &observed.os_release.id,
                            os_version_id: &observed.os_release.version_id,
                            python_version: Some(&probe.version),
                            abi: Some(&probe.soabi),
                        };
                        let fields = crate::generation::bundle::mismatches(header, &wanted);
                        if !fields.is_empty() {
                            return Err(Error::BundleMismatch {
                                file: file.to_path_buf(),
                                fields,
                            });
                        }
                        crate::steps::venv::stamp(&build, file, header, early, reporter)?
                    }
                    None => crate::steps::venv::build(&build, reporter)?,
                }
            }
            VenvAction::Switch { generation } | VenvAction::Keep { generation } => {
                manifest::read_generation(&target.host_path(&gens_dir.join(generation)))
                    .ok_or_else(|| {
                        Error::Internal(format!("generation {generation} lost its record"))
                    })?
            }
        };
        Ok(record)
    }

    /// Write the generation to disk when it must be, move an adopted
    /// directory aside, and commit: manifest, fact, then the switch.
    /// Returns the generation now active.
    fn switch(
        &self,
        record: &GenerationRecord,
        observed: &plan::Observed,
        took_over: bool,
        reporter: &mut Reporter,
    ) -> Result<String> {
        let plan = self.plan;
        let (target, profile, req) = (self.req.target, self.req.profile, self.req);
        let gens_dir = &plan.venv.generations_dir;
        let generation = record.generation.clone();

        let installed = target.dpkg_installed()?;
        let system_dists = target.system_dists(&observed.interpreter);
        let manifest = build_manifest(
            profile,
            plan,
            record,
            &observed.os_release,
            &installed,
            &system_dists,
        );
        let fixed_host = target.host_path_nofollow(&profile.venv.path);
        let occupied = std::fs::symlink_metadata(&fixed_host).is_ok();
        if crate::generation::store::must_sync(
            matches!(plan.venv.action, VenvAction::Build { .. }),
            target.chroot().is_none(),
            occupied,
        ) {
            let gen_host = target.host_path(&gens_dir.join(&generation));
            let t = std::time::Instant::now();
            crate::sys::fsutil::sync_fs(&gen_host)?;
            reporter.info(&format!(
                "wrote generation {generation} to disk before the switch ({:.2}s)",
                t.elapsed().as_secs_f64()
            ));
        }
        let adopted = if req.adopt
            && occupied
            && crate::generation::store::generation_of_link(&fixed_host, &profile.venv.path)
                .is_none()
        {
            let dest = (1..)
                .map(|n| PathBuf::from(format!("{}.adopted-{n}", profile.venv.path.display())))
                .find(|p| std::fs::symlink_metadata(target.host_path_nofollow(p)).is_err())
                .unwrap_or_default();
            std::fs::rename(&fixed_host, target.host_path_nofollow(&dest))
                .map_err(|e| Error::io("move aside", &fixed_host, e))?;
            reporter.warn(&format!(
                "moved the existing `{}` aside to `{}` (--adopt); nothing was deleted",
                profile.venv.path.display(),
                dest.display()
            ));
            Some(dest)
        } else {
            None
        };
        let mut manifest = manifest;
        let before = observed.manifest.as_ref();
        manifest.adopted = adopted.or_else(|| before.and_then(|m| m.adopted.clone()));
        manifest.taken_over_from = req
            .take_over
            .filter(|_| took_over)
            .map(str::to_string)
            .or_else(|| before.and_then(|m| m.taken_over_from.clone()));
        reporter.step(format!(
            "switch {} -> {generation}",
            profile.venv.path.display()
        ));
        crate::generation::store::commit(
            target,
            profile,
            gens_dir,
            &manifest,
            !matches!(plan.venv.action, VenvAction::Keep { .. }),
        )?;
        Ok(generation)
    }
}

/// One line per requirement that does not simply go to the venv, so Packer
/// logs show why apt serves something or why the last resort is used.
fn report_decisions(plan: &Plan, reporter: &Reporter) {
    for d in &plan.decisions {
        if d.decision == Choice::Venv
            && d.scope == crate::decide::Scope::Venv
            && d.os_candidate.is_none()
        {
            continue;
        }
        reporter.info(&format!(
            "{} {}{}: {} ({})",
            d.scope_label(),
            d.name,
            d.specifier,
            d.decision.label(),
            d.reason
        ));
    }
}

pub fn build_manifest(
    profile: &Profile,
    plan: &Plan,
    record: &GenerationRecord,
    os: &crate::target::OsRelease,
    installed: &std::collections::BTreeMap<String, String>,
    system_dists: &std::collections::BTreeMap<String, String>,
) -> Manifest {
    let apt = plan
        .apt
        .install
        .iter()
        .chain(plan.apt.present.iter())
        .map(|i| (i.name.clone(), i.reason.clone()))
        .collect::<Vec<_>>();
    let system_pip = plan
        .system_pip
        .iter()
        .map(|s| crate::generation::manifest::SystemPipRecord {
            name: s.name.clone(),
            version: s.version.clone(),
            break_system_packages: s.flag,
            reason: s.reason.clone(),
        })
        .collect();
    manifest_for(
        profile,
        record,
        &plan.venv.generations_dir,
        &apt,
        system_pip,
        os,
        installed,
        system_dists,
    )
}

/// The manifest describing `record` as the active generation of `profile`.
/// `apt` lists the packages the profile relies on (name, reason); their
/// versions come from dpkg now.
#[allow(clippy::too_many_arguments)]
pub fn manifest_for(
    profile: &Profile,
    record: &GenerationRecord,
    generations_dir: &Path,
    apt: &[(String, String)],
    system_pip: Vec<crate::generation::manifest::SystemPipRecord>,
    os: &crate::target::OsRelease,
    installed: &std::collections::BTreeMap<String, String>,
    system_dists: &std::collections::BTreeMap<String, String>,
) -> Manifest {
    let mut distributions = record.distributions.clone();
    for d in record
        .decisions
        .iter()
        .filter(|d| d.decision == Choice::Apt && d.scope == crate::decide::Scope::Venv)
    {
        let Some(c) = &d.os_candidate else { continue };
        distributions.push(Distribution {
            name: d.name.clone(),
            version: system_dists
                .get(&d.name)
                .cloned()
                .or_else(|| c.pep440.clone())
                .unwrap_or_default(),
            source: "apt".into(),
            sha256: None,
            requirement: true,
            package: Some(c.package.clone()),
        });
    }
    distributions.sort_by_key(|d| d.name.to_lowercase());
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let apt = apt
        .iter()
        .map(|(name, reason)| {
            let bare = name.split(':').next().unwrap_or(name);
            AptPackage {
                name: name.clone(),
                version: installed.get(bare).cloned().unwrap_or_default(),
                reason: reason.clone(),
            }
        })
        .collect();
    Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        tool: Tool::current(),
        profile: ProfileInfo {
            name: profile.name.clone(),
            description: profile.description.clone(),
            file: file_name(&profile.file),
            sha256: profile.sha256.clone(),
            requirements: FileInfo {
                file: file_name(&profile.requirements.file),
                sha256: profile.requirements.sha256.clone(),
                format: Some(profile.requirements.format),
            },
        },
        os: os.clone(),
        externally_managed: record.externally_managed,
        interpreter: profile.venv.path.join("bin/python"),
        venv: VenvInfo {
            path: profile.venv.path.clone(),
            generation: record.generation.clone(),
            generation_path: generations_dir.join(&record.generation),
            system_site_packages: record.system_site_packages,
            fingerprint: record.fingerprint.clone(),
            tree_sha256: record.tree_sha256.clone(),
            import_check_skip: record.import_check_skip.clone(),
        },
        python: record.python.clone(),
        distributions,
        decisions: record.decisions.clone(),
        system_pip,
        apt,
        built_at: record.built_at.clone(),
        adopted: None,
        taken_over_from: None,
        outputs: Some(crate::generation::manifest::OutputPaths {
            manifest: profile.outputs.manifest.clone(),
            ansible_fact: profile.outputs.ansible_fact.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest as written for a generation (the schema's fields, in
    /// order; the README documents them).
    #[test]
    fn manifest_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("lock.txt"),
            "six==1.17.0 --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n",
        )
        .unwrap();
        let text = "schema_version = 1\nname = \"ansible\"\ndescription = \"d\"\n[venv]\npath = \"/opt/venvs/ansible\"\nrequirements = \"lock.txt\"\nimport_check_skip = [\"six\"]\n";
        let profile =
            crate::input::profile::parse(&dir.path().join("ansible.toml"), text, dir.path())
                .unwrap();
        let record = GenerationRecord {
            schema_version: 1,
            generation: "g1-6088c11d".into(),
            fingerprint: "6088c11d".into(),
            python: crate::generation::manifest::PythonInfo {
                base: "/usr/bin/python3".into(),
                version: "3.11.2".into(),
                abi: "cpython-311-x86_64-linux-gnu".into(),
            },
            externally_managed: true,
            distributions: vec![Distribution {
                name: "six".into(),
                version: "1.17.0".into(),
                source: "venv".into(),
                sha256: Some("4721f391".into()),
                requirement: true,
                package: None,
            }],
            built_at: "2026-12-02T00:00:00Z".into(),
            system_site_packages: false,
            decisions: vec![],
            tree_sha256: Some("5f0c".into()),
            import_check_skip: vec!["six".into()],
        };
        let os = crate::target::OsRelease::parse(
            "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
        let installed = [(
            "python3.11-venv".to_string(),
            "3.11.2-6+deb12u8".to_string(),
        )]
        .into_iter()
        .collect();
        let m = manifest_for(
            &profile,
            &record,
            &crate::generation::store::generations_dir(&profile.venv.path),
            &[("python3.11-venv".into(), "venv-module".into())],
            vec![],
            &os,
            &installed,
            &Default::default(),
        );
        insta::assert_snapshot!("manifest", m.to_json());
    }
}
