//! venvbake: the image-build step that bakes a standard Python venv into
//! Debian and Ubuntu images, where PEP 668 stops `pip install` against the
//! system Python.
//!
//! The flow is CLI + profile → checked settings (`input`) → observe the
//! target (`target`) → two pure plans (`plan`, with the decisions of
//! `decide`) → steps that carry them out (`steps`) → a new generation and
//! what describes it (`generation`). `commands` holds each command's own
//! code; `sys` the plumbing: every subprocess goes through `sys::exec`.
//! Every error is an [`error::Error`] with a stable exit code. The folders'
//! arrows point one way: sys ← input ← decide ← target ← generation ← plan ←
//! steps ← commands.
//!
//! Only what the binary and the tests use is public: [`run`] with [`cli`],
//! [`error`], and [`codec`]'s digests. Read the rest with
//! `cargo doc --document-private-items`.

pub mod cli;
mod commands;
mod decide;
pub mod error;
mod generation;
mod index;
mod input;
mod plan;
mod steps;
mod sys;
mod target;

pub use sys::codec;

use std::io::Write;

use commands::{apply, cloudconfig, fetch, inventory, lifecycle, lock, sbom};
use generation::{bundle, manifest, verify};
use input::{profile, settings};
use sys::report;

use cli::{Cli, Command, PlanFormat};
use error::Result;
use report::Reporter;
use target::Target;

/// Run one command line; returns what `main` should exit with.
pub fn run(cli: Cli) -> Result<()> {
    // Whatever the caller's umask, what venvbake writes (generations,
    // manifests, the fact, bundles, wheelhouses) is never group- or
    // world-writable.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "venvbake", &mut out);
            print_stdout(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let page = |cmd: clap::Command| -> Result<Vec<u8>> {
                let mut out = Vec::new();
                clap_mangen::Man::new(cmd)
                    .render(&mut out)
                    .map_err(|e| error::Error::Internal(format!("the man page: {e}")))?;
                Ok(out)
            };
            let Some(dir) = dir else {
                print_stdout(&String::from_utf8_lossy(&page(cmd)?));
                return Ok(());
            };
            let mut pages = vec![("venvbake.1".to_string(), page(cmd.clone())?)];
            for sub in cmd.get_subcommands() {
                let name = format!("venvbake-{}", sub.get_name());
                pages.push((format!("{name}.1"), page(sub.clone().name(name))?));
            }
            for (file, bytes) in &pages {
                sys::fsutil::atomic_write(&dir.join(file), bytes, 0o644)?;
            }
            print_stdout(&format!("{}\n", dir.display()));
            Ok(())
        }
        Command::Apply {
            profile,
            target,
            wheelhouse,
            cert,
            format,
            progress,
            cloud_init_wait,
            adopt,
            take_over,
            bundle,
            cache,
        } => {
            let mut reporter = Reporter::new(progress);
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile_for(&profile, &target)?;
            let host_env: Vec<(String, String)> = std::env::vars().collect();
            let mut sources = settings::Sources::resolve(&profile, wheelhouse, bundle, cert)?;
            sources.cache = settings::cache_dir(cache.cache_dir, cache.no_cache, &host_env);
            let request = apply::Request {
                profile: &profile,
                target: &target,
                sources: &sources,
                cloud_init_wait,
                adopt,
                take_over: take_over.as_deref(),
                host_env,
            };
            let outcome = apply::apply(&request, &mut reporter);
            if outcome.is_err() {
                reporter.abandon();
            }
            let outcome = outcome?;
            reporter.close();
            match format {
                PlanFormat::Text => print_stdout(&format!("{}\n", outcome.interpreter.display())),
                PlanFormat::Json => {
                    let mut text = serde_json::to_string_pretty(&outcome).unwrap_or_default();
                    text.push('\n');
                    print_stdout(&text);
                }
            }
            Ok(())
        }
        Command::Bundle {
            profile,
            target,
            output,
        } => {
            let mut reporter = Reporter::new(report::Progress::Plain);
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile_for(&profile, &target)?;
            let size = apply::bundle(&profile, &target, &output, &mut reporter)?;
            reporter.info(&format!(
                "wrote {} ({:.1} MB)",
                output.display(),
                size as f64 / 1e6
            ));
            print_stdout(&format!("{}\n", output.display()));
            Ok(())
        }
        Command::Plan {
            profile,
            target,
            wheelhouse,
            take_over,
            bundle,
            cert,
            adopt,
            format,
            cache,
        } => {
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile_for(&profile, &target)?;
            let host_env: Vec<(String, String)> = std::env::vars().collect();
            let mut sources = settings::Sources::resolve(&profile, wheelhouse, bundle, cert)?;
            sources.cache = settings::cache_dir(cache.cache_dir, cache.no_cache, &host_env);
            let header = sources
                .bundle
                .as_deref()
                .map(bundle::read_header)
                .transpose()?;
            let mut observed = plan::observe(&profile, &target, true)?;
            plan::adopt(&mut observed, adopt);
            plan::hand_over(&mut observed, take_over.as_deref(), &profile.venv.path)?;
            let mut plan = plan::make(&profile, &target, &observed, &sources)?;
            // As apply does: the index's metadata only when something is to change.
            if !plan.noop {
                let warn = Reporter::new(report::Progress::Quiet);
                if let Some(enriched) =
                    index::with_plan_requires(&profile, &sources, &host_env, |n| warn.warn(n))
                {
                    plan = plan::make(&profile, &target, &observed, &enriched)?;
                }
            }
            if let (Some(file), Some(header)) = (&sources.bundle, &header) {
                plan.bundle = Some(plan::bundle_verdict(file, header, &plan));
            }
            print_stdout(&match format {
                PlanFormat::Text => plan.to_text(),
                PlanFormat::Json => plan.to_json(),
            });
            let unresolved = plan.unresolved();
            if !unresolved.is_empty() {
                return Err(error::Error::Unresolved { items: unresolved });
            }
            match plan.bundle.as_ref().and_then(|v| v.refusal()) {
                Some(refused) => Err(refused),
                None => Ok(()),
            }
        }
        Command::Map {
            names,
            target,
            profile,
            format,
        } => {
            let overrides = match profile {
                Some(p) => profile::load_for(&p, profile::LockSelect::Skip)?.python.map,
                None => Default::default(),
            };
            let target = Target::for_command(target.root.as_deref())?;
            let decisions = plan::map(&names, &target, &overrides)?;
            print_stdout(&match format {
                PlanFormat::Text => plan::decisions_table(&decisions),
                PlanFormat::Json => json_text(&decisions),
            });
            Ok(())
        }
        Command::Verify {
            profile,
            target,
            manifest,
            format,
        } => {
            let (target, m) = target_manifest(&target, profile.as_deref(), manifest.as_deref())?;
            let report = verify::verify(&target, &m)?;
            print_stdout(&match format {
                PlanFormat::Text => report.to_text(),
                PlanFormat::Json => json_text(&report),
            });
            if report.clean {
                Ok(())
            } else {
                Err(error::Error::Drift {
                    profile: report.profile,
                    count: report.drift.len(),
                })
            }
        }
        Command::Rollback { profile, target } => {
            let mut reporter = Reporter::new(report::Progress::Plain);
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile_for(&profile, &target)?;
            let generation = lifecycle::rollback(&profile, &target, &mut reporter)?;
            print_stdout(&format!("{generation}\n"));
            Ok(())
        }
        Command::Gc {
            profile,
            target,
            keep,
        } => {
            let mut reporter = Reporter::new(report::Progress::Plain);
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile_for(&profile, &target)?;
            for name in lifecycle::gc(&profile, &target, keep, &mut reporter)? {
                print_stdout(&format!("{name}\n"));
            }
            Ok(())
        }
        Command::Sbom {
            name,
            target,
            manifest,
            format,
        } => {
            let (target, m) = target_manifest(&target, name.as_deref(), manifest.as_deref())?;
            print_stdout(&sbom::render(&target, &m, format));
            Ok(())
        }
        Command::Fetch {
            profile,
            dest,
            python,
            platforms,
            abi,
            cert,
            release,
            cache,
        } => {
            let mut reporter = Reporter::new(report::Progress::Auto);
            let keys: Vec<String> = release.into_iter().collect();
            let profile = if keys.is_empty() {
                profile::load(&profile)?
            } else {
                profile::load_for(&profile, profile::LockSelect::Release(&keys))?
            };
            let host_env: Vec<(String, String)> = std::env::vars().collect();
            let index = fetch::fetch(
                &fetch::Request {
                    profile: &profile,
                    dest: &dest,
                    python: &python,
                    platforms,
                    abi,
                    host_env: &host_env,
                    cert: cert.as_deref(),
                    cache: settings::cache_dir(cache.cache_dir, cache.no_cache, &host_env),
                },
                &mut reporter,
            )?;
            let targets: Vec<String> = index
                .targets
                .iter()
                .map(|t| format!("{} ({})", t.python, t.abi))
                .collect();
            reporter.info(&format!(
                "{} file(s) in {} for {}",
                index.files.len(),
                dest.display(),
                targets.join(", ")
            ));
            reporter.close();
            print_stdout(&format!("{}\n", dest.display()));
            Ok(())
        }
        Command::Lock {
            profile: path,
            target,
            input,
            output,
            uv,
            cert,
        } => {
            let mut reporter = Reporter::new(report::Progress::Auto);
            let target = Target::for_command(target.root.as_deref())?;
            let profile = profile::load_for(&path, profile::LockSelect::Skip)?;
            let keys = target.os_release()?.release_keys();
            let output = match output {
                Some(o) => o,
                None => profile
                    .venv
                    .locks
                    .for_release(&keys)
                    .cloned()
                    .ok_or_else(|| {
                        error::Error::usage(
                            format!(
                                "`{}` names no lock for `{}`; say where to write it",
                                path.display(),
                                keys.join("` or `")
                            ),
                            "pass `-o pylock.RELEASE.toml`, and add it to `[venv] requirements`",
                        )
                    })?,
            };
            let host_env: Vec<(String, String)> = std::env::vars().collect();
            let request = lock::Request {
                profile: &profile,
                target: &target,
                input: &input,
                output: &output,
                uv: lock::find_uv(uv, &host_env)?,
                cert: settings::cert_for(&profile, cert),
                host_env: &host_env,
            };
            let pinned = lock::lock(&request, &mut reporter)?;
            for p in &pinned {
                reporter.info(&format!(
                    "  {}=={}: {}",
                    p.name,
                    p.version,
                    if p.apt.is_some() {
                        format!("apt ({})", p.reason)
                    } else {
                        format!("venv ({})", p.reason)
                    }
                ));
            }
            reporter.info(&format!(
                "wrote {}: {} of {} distributions at apt's version",
                output.display(),
                pinned.iter().filter(|p| p.apt.is_some()).count(),
                pinned.len()
            ));
            reporter.close();
            print_stdout(&format!("{}\n", output.display()));
            Ok(())
        }
        Command::CloudConfig { profile: path } => {
            let profile = profile::load_for(&path, profile::LockSelect::Skip)?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| error::Error::io("read", &path, e))?;
            print_stdout(&cloudconfig::render(&profile, &text)?);
            Ok(())
        }
        Command::Inventory {
            name,
            target,
            manifest,
            format,
        } => {
            let (_, m) = target_manifest(&target, name.as_deref(), manifest.as_deref())?;
            print_stdout(&inventory::render(&m, format));
            Ok(())
        }
    }
}

/// The target of `--root` and the manifest named on the command line.
fn target_manifest(
    args: &cli::TargetArgs,
    profile_or_name: Option<&str>,
    explicit: Option<&std::path::Path>,
) -> Result<(Target, manifest::Manifest)> {
    let target = Target::for_command(args.root.as_deref())?;
    let (_, m) = locate_manifest(&target, profile_or_name, explicit)?;
    Ok((target, m))
}

/// A manifest from a profile file, a profile name, or an explicit path.
fn locate_manifest(
    target: &Target,
    profile_or_name: Option<&str>,
    explicit: Option<&std::path::Path>,
) -> Result<(std::path::PathBuf, manifest::Manifest)> {
    if let Some(p) = profile_or_name
        .map(std::path::Path::new)
        .filter(|p| p.is_file())
    {
        let profile = profile::load_for(p, profile::LockSelect::Skip)?;
        let (path, m) = inventory::find_manifest(target, None, Some(&profile.outputs.manifest))?;
        inventory::check_describes(&path, &m, &profile.name)?;
        return Ok((path, m));
    }
    inventory::find_manifest(target, profile_or_name, explicit)
}

/// The profile, with the lock for the target's release (a profile may name
/// one per release).
fn profile_for(path: &std::path::Path, target: &Target) -> Result<profile::Profile> {
    let keys = target
        .os_release()
        .map(|o| o.release_keys())
        .unwrap_or_default();
    Ok(profile::load_for(
        path,
        profile::LockSelect::Release(&keys),
    )?)
}

/// Pretty JSON with a final newline, for stdout.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
