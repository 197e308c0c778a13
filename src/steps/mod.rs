//! The steps that change a target: apt, the interpreter probe, filling a
//! generation (`venv`, the native installer in `install` and `wheel`, wheel
//! tags in `tags`) and the import check.

pub mod apt;
pub mod imports;
pub mod install;
pub mod tags;
pub mod venv;
pub mod wheel;
