//! What the user gives: the profile and its lock (`profile`, `requirements`),
//! the index's credentials from the environment (`credentials`) and the command
//! line's sources (`settings`), each checked once.

pub mod credentials;
pub mod profile;
pub mod pylock;
pub mod requirements;
pub mod settings;
