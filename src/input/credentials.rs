//! Index credentials: read from named environment variables of the machine
//! running venvbake, never from the profile, and never written anywhere.
//!
//! They reach pip only through its environment (`PIP_INDEX_URL` with the
//! user and password in it), never through its command line, and every line
//! of output is masked for them before it is logged or kept for an error.

use crate::input::profile::{IndexSpec, Profile};
use crate::sys::exec::Cmd;

/// A variable the profile names for the index's credentials is not set.
#[derive(Debug, thiserror::Error)]
#[error("the index credentials variable `{var}` is not set in venvbake's environment")]
pub struct Unset {
    pub var: String,
}

impl Unset {
    pub fn hint(&self) -> String {
        "export it before venvbake runs (with sudo: `sudo --preserve-env=NAME`); the profile names the variable, never the value".into()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    user: Option<String>,
    password: Option<String>,
}

impl Credentials {
    pub fn from_profile(profile: &Profile, host_env: &[(String, String)]) -> Result<Self, Unset> {
        let get = |name: &Option<String>| -> Result<Option<String>, Unset> {
            match name {
                None => Ok(None),
                Some(var) => host_env
                    .iter()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| Some(v.clone()))
                    .ok_or_else(|| Unset { var: var.clone() }),
            }
        };
        Ok(Credentials {
            user: get(&profile.index.username_env)?,
            password: get(&profile.index.password_env)?,
        })
    }

    /// User and password for HTTP basic auth (an absent part is empty).
    pub fn basic(&self) -> Option<(String, String)> {
        (!self.is_empty()).then(|| {
            (
                self.user.clone().unwrap_or_default(),
                self.password.clone().unwrap_or_default(),
            )
        })
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.password.is_none()
    }

    /// `https://host/simple` with the credentials in it.
    pub fn url_with(&self, url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_string();
        };
        let user = self
            .user
            .as_deref()
            .map(crate::sys::codec::percent_encode)
            .unwrap_or_default();
        let auth = match &self.password {
            Some(p) => format!("{user}:{}", crate::sys::codec::percent_encode(p)),
            None => user,
        };
        format!("{scheme}://{auth}@{rest}")
    }

    /// The strings that must never appear in output.
    pub fn secrets(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = &self.password {
            if !p.is_empty() {
                v.push(p.clone());
                v.push(crate::sys::codec::percent_encode(p));
            }
        }
        v
    }

    /// Point pip at the index: the URL on the command line without
    /// credentials, or, with credentials, only in pip's environment.
    pub fn apply_to(&self, mut cmd: Cmd, index: &IndexSpec) -> Cmd {
        for s in self.secrets() {
            cmd = cmd.mask(s);
        }
        match &index.url {
            Some(u) if !self.is_empty() => cmd.env("PIP_INDEX_URL", self.url_with(u)),
            Some(u) => cmd.arg("--index-url").arg(u.clone()),
            None => cmd,
        }
    }
}

/// `[global]` pip configuration for the venv: the organisation's index,
/// without credentials, so a later `pip install` in the venv uses it.
pub fn venv_pip_conf(index: &IndexSpec) -> Option<String> {
    let url = index.url.as_ref()?;
    let mut s = format!("# Written by venvbake: the organisation's package index (no credentials).\n[global]\nindex-url = {url}\n");
    if !index.extra_urls.is_empty() {
        s.push_str(&format!(
            "extra-index-url = {}\n",
            index.extra_urls.join("\n    ")
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            user: Some(u.into()),
            password: Some(p.into()),
        }
    }

    #[test]
    fn credentials_go_to_the_environment_not_the_command_line() {
        let index = IndexSpec {
            url: Some("https://pypi.corp.example/simple".into()),
            ..Default::default()
        };
        let cmd = creds("bob", "s3cr:t/x").apply_to(Cmd::new("pip", &[]), &index);
        assert!(!cmd.display().contains("s3cr"), "{}", cmd.display());
        assert!(!cmd.display().contains("--index-url"));
        let env = cmd.env.iter().find(|(k, _)| k == "PIP_INDEX_URL").unwrap();
        assert_eq!(env.1, "https://bob:s3cr%3At%2Fx@pypi.corp.example/simple");
        let plain = Credentials::default().apply_to(Cmd::new("pip", &[]), &index);
        assert!(plain
            .display()
            .contains("--index-url https://pypi.corp.example/simple"));
    }

    #[test]
    fn output_is_masked() {
        let c = creds("bob", "s3cr:t");
        let line = "Looking in indexes: https://bob:s3cr%3At@host/simple and s3cr:t";
        assert_eq!(
            crate::sys::exec::mask(line, &c.secrets()),
            "Looking in indexes: https://bob:***@host/simple and ***"
        );
    }

    #[test]
    fn pip_conf_has_no_credentials() {
        let index = IndexSpec {
            url: Some("https://pypi.corp.example/simple".into()),
            extra_urls: vec!["https://extra.example/simple".into()],
            ..Default::default()
        };
        let conf = venv_pip_conf(&index).unwrap();
        assert!(conf.contains("index-url = https://pypi.corp.example/simple"));
        assert!(conf.contains("extra-index-url = https://extra.example/simple"));
    }
}
