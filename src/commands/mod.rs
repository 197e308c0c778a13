//! The commands beyond the core of `plan`: `apply`, `rollback`/`gc`, `fetch`,
//! `lock`, `sbom`, `inventory`, `cloud-config`.

pub mod apply;
pub mod cloudconfig;
pub mod fetch;
pub mod inventory;
pub mod lifecycle;
pub mod lock;
pub mod sbom;
