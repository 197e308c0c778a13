//! Plumbing every part uses: the one place that runs subprocesses (`exec`),
//! atomic file writes (`fsutil`), encodings (`codec`), RECORD files (`record`),
//! Python's paths (`layout`) and what people see on stderr (`report`).

pub mod codec;
pub mod exec;
pub mod fsutil;
pub mod layout;
pub mod record;
pub mod report;
