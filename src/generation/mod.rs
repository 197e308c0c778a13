//! Generations and what describes them: the store (naming, the link, the lock,
//! commit), its locks, the manifest and fact, bundles, and `verify`.

pub mod bundle;
pub mod locks;
pub mod manifest;
pub mod store;
pub mod verify;
