//! The private mount namespace that image-tree builds run in.
//!
//! With `--root`, venvbake first moves itself into a new mount namespace with
//! private propagation, then mounts what chrooted apt, dpkg and python need
//! (`/proc`, `/dev`, the host's `resolv.conf`, a read-only wheelhouse) under
//! the tree. Those mounts exist only in that namespace: the kernel drops them
//! when venvbake and its children exit, even after `kill -9`, so no mount
//! ever outlives a run and the host never sees them.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::sys::fsutil::FsError;
use crate::target::TargetError;

/// Entering the namespace or mounting in it failed.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error(transparent)]
    NotRoot(#[from] TargetError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

type Result<T> = std::result::Result<T, NsError>;

fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> NsError {
    NsError::Fs(FsError {
        action,
        path: path.to_path_buf(),
        source,
    })
}

fn nix_err(action: &'static str, path: &Path, e: nix::Error) -> NsError {
    io_err(action, path, std::io::Error::from(e))
}

/// Enter a new mount namespace whose mounts never propagate to the host.
pub fn enter_private_namespace() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(TargetError::NotRoot.into());
    }
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| nix_err("create a private mount namespace for", Path::new("/"), e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| nix_err("make mounts private under", Path::new("/"), e))
}

/// Mount `/proc`, `/dev` and the host's DNS configuration into the tree.
pub fn mount_api_filesystems(root: &Path) -> Result<()> {
    let proc_dir = root.join("proc");
    if proc_dir.is_dir() {
        mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| nix_err("mount proc at", &proc_dir, e))?;
    }
    let dev_dir = root.join("dev");
    if dev_dir.is_dir() {
        mount(
            Some("/dev"),
            &dev_dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| nix_err("bind-mount /dev at", &dev_dir, e))?;
    }
    // Name resolution for apt and pip inside the tree, without changing the
    // tree's own file: a bind mount over it, visible only in this namespace.
    let resolv = root.join("etc/resolv.conf");
    let host_resolv = Path::new("/etc/resolv.conf");
    if host_resolv.is_file()
        && std::fs::symlink_metadata(&resolv).is_ok_and(|m| m.file_type().is_file())
    {
        mount(
            Some(host_resolv),
            &resolv,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| nix_err("bind-mount resolv.conf at", &resolv, e))?;
    }
    Ok(())
}

/// Bind `src` (a directory or a file) read-only at `dst`, which must exist.
pub fn bind_read_only(src: &Path, dst: &Path) -> Result<()> {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| nix_err("bind-mount", dst, e))?;
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| nix_err("make read-only", dst, e))
}

/// A read-only bind mount that is undone, and its mount point removed, on drop.
pub struct Bound {
    host_path: PathBuf,
}

impl Bound {
    /// Make `src` visible read-only at `mount_point` (created as an empty
    /// directory or file to match `src`).
    pub fn new(src: &Path, mount_point: &Path) -> Result<Self> {
        if src.is_dir() {
            std::fs::create_dir_all(mount_point)
        } else {
            std::fs::write(mount_point, b"")
        }
        .map_err(|e| io_err("create mount point", mount_point, e))?;
        let bound = Bound {
            host_path: mount_point.to_path_buf(),
        };
        bind_read_only(src, mount_point)?;
        Ok(bound)
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = umount2(&self.host_path, MntFlags::MNT_DETACH);
        if self.host_path.is_dir() {
            let _ = std::fs::remove_dir(&self.host_path);
        } else {
            let _ = std::fs::remove_file(&self.host_path);
        }
    }
}
