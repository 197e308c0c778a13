//! The command line: subcommands, flags and their help texts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::inventory::Format as InventoryFormat;
use crate::sys::report::Progress;

/// Bake a standard, hash-checked Python venv into a Debian or Ubuntu image
/// (PEP 668 systems), and tell Ansible where its interpreter is.
#[derive(Debug, Parser)]
#[command(
    name = "venvbake",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 internal error, 2 bad input, 3 unsupported target, \
4 apt failed, 5 lock not released in time, 6 venv creation or install failed, 7 checks failed, \
8 file write failed, 9 verify found drift.\n\nFull documentation: `man venvbake` (`venvbake man`), and venvbake's README.md \
(profile and lock reference, manifest schema, Packer, cloud-init and Ansible usage)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the apt packages, build the venv generation, switch to it, write the manifest and fact.
    ///
    /// Safe to re-run: with identical inputs nothing changes. The previous
    /// generation keeps serving until the new one is complete and checked.
    /// Prints the venv interpreter's path on stdout.
    Apply {
        /// The profile (TOML).
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Install offline from this folder of wheels (no index is contacted).
        /// Without it, venvbake downloads the locked wheels from the profile's
        /// index first (through the download cache); either way its own
        /// installer fills the venv.
        #[arg(long, value_name = "DIR")]
        wheelhouse: Option<PathBuf>,
        /// CA bundle (on this machine) the index is verified with, added to the
        /// system's; overrides `[index] cert`.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// What stdout gets: the venv interpreter's path, or one JSON object
        /// (`schema_version`, `changed`, `generation`, ...; see the README).
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// How progress is shown on stderr.
        #[arg(long, value_enum, default_value_t = Progress::Auto)]
        progress: Progress,
        /// On a freshly booted system, wait (up to `[apt] lock_timeout_s`) for cloud-init's
        /// first boot to finish, unless venvbake runs under cloud-init itself.
        #[arg(long, value_enum, default_value_t = crate::target::cloudinit::Wait::Auto)]
        cloud_init_wait: crate::target::cloudinit::Wait,
        /// If a directory that venvbake did not make stands at the venv path, move it aside
        /// to `<path>.adopted-N` (recorded in the manifest) instead of refusing. Never deletes.
        #[arg(long)]
        adopt: bool,
        /// Hand the venv path over from the profile that owns it (named here, so the
        /// hand-over is on purpose): its fact entry and manifest link go, and the
        /// manifest records `taken_over_from`. Without it, another profile's path is refused.
        #[arg(long, value_name = "PROFILE")]
        take_over: Option<String>,
        /// Stamp the venv from this bundle (`venvbake bundle`) instead of building it:
        /// unpacked at disk speed when it was built for the same release, interpreter,
        /// venv path and lock (else refused, naming what differs), then checked.
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Pack the active, verified generation of a profile into a bundle file, to stamp other images with.
    ///
    /// Refuses a generation that `verify` finds drifted or that the profile no
    /// longer describes. `apply --bundle FILE` on an image of the same kind
    /// unpacks it instead of building. Prints FILE on stdout.
    Bundle {
        /// The profile (TOML) whose generation to pack.
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// The bundle file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Print what `apply` would do; changes nothing.
    Plan {
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// The wheelhouse `apply --wheelhouse` would install from (the plan names it).
        #[arg(long, value_name = "DIR")]
        wheelhouse: Option<PathBuf>,
        /// Plan the hand-over of the venv path from this profile, as `apply --take-over`.
        #[arg(long, value_name = "PROFILE")]
        take_over: Option<String>,
        /// Judge this bundle as `apply --bundle` would: the plan says whether it stamps
        /// the planned generation, and exits 2 naming each differing field when it cannot.
        #[arg(long, value_name = "FILE", conflicts_with = "wheelhouse")]
        bundle: Option<PathBuf>,
        /// The CA bundle `apply --cert` would use (checked to exist).
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// Plan around a directory at the venv path, as `apply --adopt`.
        #[arg(long)]
        adopt: bool,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Which OS package serves each Python distribution on the target, and does its version fit?
    ///
    /// Looks each `NAME[SPEC]` up the way `[python] prefer = "os"` does: the profile's
    /// `[python.map]`, built-in aliases, Debian's dh-python table, the `python3-<name>`
    /// convention, each candidate confirmed by apt on the target.
    /// Example: venvbake map pyOpenSSL 'lxml>=4.9' psycopg2-binary --root ./tree
    Map {
        /// Distribution names, optionally with a version specifier (`lxml>=4.9`).
        #[arg(required = true, value_name = "NAME[SPEC]")]
        names: Vec<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// Read `[python.map]` overrides from this profile.
        #[arg(long, value_name = "PROFILE")]
        profile: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Check a host or image against its manifest: symlink, generation, every file's RECORD hash, python, apt.
    ///
    /// Exit 0 when clean, 9 when anything drifted (each item listed).
    Verify {
        /// A profile file, or the name of a profile applied on the target.
        profile: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// Check against this manifest (a path in the target).
        #[arg(long, value_name = "PATH", conflicts_with = "profile")]
        manifest: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Switch the fixed path back to the previous complete generation; rewrite manifest and fact.
    ///
    /// Prints the generation switched to. The next `apply` switches to the
    /// profile's current generation again.
    Rollback {
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Remove old generations, keeping N complete ones (the active one included).
    ///
    /// Prints the removed generations. Never touches the active generation or
    /// anything outside `<venv path>.generations`.
    Gc {
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// How many complete generations to keep (default: `[venv] keep_generations`).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
        keep: Option<u32>,
    },
    /// Print an SBOM of the image's Python environment (venv and apt side) from the manifest.
    Sbom {
        /// A profile file, or the name of a profile applied on the target.
        name: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// Use this manifest (a path in the target).
        #[arg(long, value_name = "PATH", conflicts_with = "name")]
        manifest: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: crate::commands::sbom::Format,
    },
    /// Write an OS-aware lock for the target's release (runs on the build host, resolves with uv).
    ///
    /// Resolves the top-level requirements of INPUT for the target's Python
    /// and platform; every distribution the profile lets apt serve, and that
    /// apt has in a version the whole resolution accepts, is pinned at apt's
    /// version (so `prefer = "os"` takes it from apt); the rest are pinned
    /// and hashed for the venv. A `.toml` output is a PEP 751 pylock.toml,
    /// anything else a hashed requirements file. Prints the lock's path.
    Lock {
        profile: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Top-level requirements (names and ranges, no pins needed).
        #[arg(long, value_name = "REQS.in")]
        input: PathBuf,
        /// Where to write the lock; default: the profile's lock for the target's release.
        #[arg(short = 'o', long, value_name = "LOCK")]
        output: Option<PathBuf>,
        /// The uv binary; default: `VENVBAKE_UV`, then `uv` on PATH.
        #[arg(long, value_name = "PATH")]
        uv: Option<PathBuf>,
        /// CA bundle for the index; overrides `[index] cert`.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
    },
    /// Download the files the profile's lock allows for one target into a wheelhouse (runs on the build host).
    ///
    /// Hash-checked; writes SHA256SUMS and venvbake-wheelhouse.json. Several
    /// targets can share one wheelhouse: fetch once per Python version.
    /// Then `venvbake apply --wheelhouse DIR` installs without any network.
    Fetch {
        profile: PathBuf,
        /// The wheelhouse folder.
        #[arg(long, value_name = "DIR")]
        dest: PathBuf,
        /// The target's Python, as 3.X (3.11 Debian 12, 3.12 Ubuntu 24.04, 3.13 Debian 13).
        #[arg(long, value_name = "X.Y")]
        python: String,
        /// Platform tags (repeat); default: manylinux 2.17 to 2.34 on x86_64, and `any`.
        #[arg(long = "platform", value_name = "TAG")]
        platforms: Vec<String>,
        /// ABI tag; default: cp3X for --python 3.X.
        #[arg(long, value_name = "TAG")]
        abi: Option<String>,
        /// CA bundle for the index; overrides `[index] cert`.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// With a profile that names one lock per release: which release's
        /// lock (`debian-12`, `ubuntu-24.04`).
        #[arg(long, value_name = "ID-VERSION")]
        release: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print a `#cloud-config` that bakes PROFILE at first boot (write_files + runcmd).
    ///
    /// The image must carry /usr/local/bin/venvbake; with /var/cache/venvbake/wheels
    /// present the build is offline.
    CloudConfig {
        /// The profile (TOML); its lock must sit next to it.
        profile: PathBuf,
    },
    /// Print Ansible inventory variables (`ansible_python_interpreter`, ...) from a manifest.
    Inventory {
        /// A profile file, or the name of a profile applied on the target; optional when
        /// only one profile is applied there.
        name: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// Read this manifest (a path in the target) instead of looking it up.
        #[arg(long, value_name = "PATH")]
        manifest: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = InventoryFormat::Yaml)]
        format: InventoryFormat,
    },
    /// Print a shell completion script on stdout.
    ///
    /// bash: `venvbake completions bash > /etc/bash_completion.d/venvbake`;
    /// zsh: into a directory of `$fpath` as `_venvbake`;
    /// fish: `~/.config/fish/completions/venvbake.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print venvbake's man page (roff) on stdout, or write every page.
    ///
    /// `venvbake man --dir /usr/local/share/man/man1` writes venvbake.1 and one
    /// page per command (venvbake-apply.1, ...); then `man venvbake-apply`.
    Man {
        /// Write venvbake.1 and venvbake-COMMAND.1 into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Work on the image tree at DIR instead of the running system (commands run chrooted).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// The build host's download cache (for files venvbake fetches from an index).
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// Keep downloads here, by sha256 (default: `VENVBAKE_CACHE_DIR`, else
    /// /var/cache/venvbake); never inside the image.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Download every file again, and keep none.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}
