//! HTTP for the package index, on the build host: one `ureq` agent with the
//! network settings a corporate build needs, and downloads that are streamed
//! to disk and checked.
//!
//! - Proxies from `https_proxy`/`http_proxy`/`no_proxy` (either case).
//! - TLS roots: the build host's CA bundle (`/etc/ssl/certs/ca-certificates.crt`,
//!   else Mozilla's), plus the bundle from `--cert` or `[index] cert`.
//! - Basic auth for the index's host only: from the variables the profile
//!   names, else from `~/.netrc`; a redirect to another host carries none.
//! - Timeouts for connecting and for each read; retries with backoff on
//!   connection errors, timeouts, 5xx and a body cut short, each said in the
//!   log; a hash that differs is never retried.
//!
//! `ureq` because it is synchronous (venvbake has no async runtime and
//! wants none), small, maintained, and uses rustls: the binary needs no
//! OpenSSL, which differs between the build hosts it runs on.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts per request (the first and two retries).
const ATTEMPTS: u32 = 3;
/// The host's CA bundle on Debian and Ubuntu.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("`{url}` did not answer in time ({what})")]
    Timeout { url: String, what: String },
    #[error("`{url}` could not be reached: {message}")]
    Connect { url: String, message: String },
    #[error("`{url}` ended after {got} of {expected} bytes")]
    Short {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("THESE PACKAGES DO NOT MATCH THE HASHES FROM THE LOCK: `{url}` has sha256 {got}, the lock allows {expected}")]
    Hash {
        url: String,
        got: String,
        expected: String,
    },
    #[error("`{url}` is {got} bytes; the lock records {expected}")]
    Size {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("the CA bundle `{}` could not be read: {message}", path.display())]
    Cert { path: PathBuf, message: String },
    #[error("could not write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HttpError {
    /// Worth another attempt: the network or the server, not the content.
    fn transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => *status >= 500,
            HttpError::Timeout { .. } | HttpError::Connect { .. } | HttpError::Short { .. } => true,
            _ => false,
        }
    }
}

/// Basic auth for one host.
#[derive(Clone)]
pub struct Auth {
    pub host: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({}@{}, ***)", self.user, self.host)
    }
}

/// The network settings, resolved once.
#[derive(Debug, Clone, Default)]
pub struct Net {
    /// An extra CA bundle (added to the host's roots).
    pub cert: Option<PathBuf>,
    pub auth: Vec<Auth>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
}

/// A retry, for the log: what failed, and the attempt that follows.
pub type OnRetry<'a> = &'a (dyn Fn(&str) + Sync);

/// Clones share the agent's connections (ureq's pool).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    auth: Vec<Auth>,
}

/// The host of an http(s) URL (`pypi.example.org:8443`).
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

impl Client {
    pub fn new(net: &Net) -> Result<Self, HttpError> {
        let mut roots = Vec::new();
        let mut add = |path: &Path, required: bool| -> Result<(), HttpError> {
            let pem = match std::fs::read(path) {
                Ok(p) => p,
                Err(_) if !required => return Ok(()),
                Err(e) => {
                    return Err(HttpError::Cert {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })
                }
            };
            let before = roots.len();
            for item in ureq::tls::parse_pem(&pem) {
                if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                    roots.push(c.to_owned());
                }
            }
            if required && roots.len() == before {
                return Err(HttpError::Cert {
                    path: path.to_path_buf(),
                    message: "it holds no PEM certificate".into(),
                });
            }
            Ok(())
        };
        add(Path::new(SYSTEM_CA), false)?;
        if let Some(c) = &net.cert {
            add(c, true)?;
        }
        let root_certs = if roots.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots))
        };
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(root_certs)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(ureq::Proxy::try_from_env())
            .http_status_as_error(false)
            .max_redirects(10)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(net.connect_timeout.unwrap_or(Duration::from_secs(15))))
            .timeout_recv_response(Some(net.read_timeout.unwrap_or(Duration::from_secs(30))))
            .timeout_recv_body(Some(net.read_timeout.unwrap_or(Duration::from_secs(30))))
            .user_agent(format!("venvbake/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client {
            agent,
            auth: net.auth.clone(),
        })
    }

    fn request(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let mut req = self.agent.get(url).header("Accept", accept);
        if let Some(a) = self.auth.iter().find(|a| a.host == host_of(url)) {
            let token =
                crate::sys::codec::base64(format!("{}:{}", a.user, a.password).as_bytes(), false);
            req = req.header("Authorization", format!("Basic {token}"));
        }
        let resp = req.call().map_err(|e| classify(url, e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(HttpError::Status {
                url: url.to_string(),
                status,
            });
        }
        Ok(resp)
    }

    /// GET a text page (at most 64 MB): its content type and body.
    pub fn text(
        &self,
        url: &str,
        accept: &str,
        on_retry: OnRetry,
    ) -> Result<(String, String), HttpError> {
        retry(on_retry, || {
            let resp = self.request(url, accept)?;
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = resp
                .into_body()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| classify(url, e))?;
            Ok((ctype, body))
        })
    }

    /// Download `url` to `dest` (written beside it, then renamed), checking
    /// sha256 and, when known, the size. Returns the bytes written.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        sha256: &str,
        size: Option<u64>,
        on_retry: OnRetry,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, HttpError> {
        let part = dest.with_extension(format!("part{}", std::process::id()));
        let result = retry(on_retry, || {
            let resp = self.request(url, "*/*")?;
            let declared = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let write_err = |source| HttpError::Write {
                path: part.clone(),
                source,
            };
            let mut out = std::fs::File::create(&part).map_err(write_err)?;
            let mut reader = resp.into_body().into_reader();
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        return Err(match declared {
                            Some(expected) => HttpError::Short {
                                url: url.to_string(),
                                got,
                                expected,
                            },
                            None => HttpError::Connect {
                                url: url.to_string(),
                                message: e.to_string(),
                            },
                        })
                    }
                };
                sha2::Digest::update(&mut hasher, &buf[..n]);
                out.write_all(&buf[..n]).map_err(write_err)?;
                got += n as u64;
                progress(n as u64);
            }
            if let Some(expected) = declared.filter(|e| *e != got) {
                return Err(HttpError::Short {
                    url: url.to_string(),
                    got,
                    expected,
                });
            }
            let sha = crate::sys::codec::hex(&sha2::Digest::finalize(hasher));
            if !sha.eq_ignore_ascii_case(sha256) {
                return Err(HttpError::Hash {
                    url: url.to_string(),
                    got: sha,
                    expected: sha256.to_string(),
                });
            }
            if let Some(expected) = size.filter(|e| *e != got) {
                return Err(HttpError::Size {
                    url: url.to_string(),
                    got,
                    expected,
                });
            }
            out.sync_all().map_err(write_err)?;
            std::fs::rename(&part, dest).map_err(|source| HttpError::Write {
                path: dest.to_path_buf(),
                source,
            })?;
            Ok(got)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }
}

/// `f`, again after a transient failure (0.5 s, then 2 s later).
fn retry<T>(
    on_retry: OnRetry,
    mut f: impl FnMut() -> Result<T, HttpError>,
) -> Result<T, HttpError> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if e.transient() && attempt < ATTEMPTS => {
                let wait = Duration::from_millis(500 * 4u64.pow(attempt - 1));
                on_retry(&format!(
                    "{}; retrying in {:.1}s (attempt {} of {ATTEMPTS})",
                    crate::index::masked(&e.to_string()),
                    wait.as_secs_f64(),
                    attempt + 1
                ));
                std::thread::sleep(wait);
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn classify(url: &str, e: ureq::Error) -> HttpError {
    match e {
        ureq::Error::StatusCode(status) => HttpError::Status {
            url: url.to_string(),
            status,
        },
        ureq::Error::Timeout(t) => HttpError::Timeout {
            url: url.to_string(),
            what: t.to_string(),
        },
        other => HttpError::Connect {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

/// `machine HOST login USER password PASS` from a `.netrc` text.
pub fn netrc_auth(text: &str, host: &str) -> Option<Auth> {
    let bare = host.split(':').next().unwrap_or(host);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    let mut out: Option<Auth> = None;
    let mut default: Option<Auth> = None;
    while i < words.len() {
        let (is_default, name) = match words[i] {
            "machine" => (false, words.get(i + 1).copied().unwrap_or("")),
            "default" => (true, ""),
            _ => {
                i += 1;
                continue;
            }
        };
        i += if is_default { 1 } else { 2 };
        let (mut user, mut password) = (String::new(), String::new());
        while i < words.len() && !matches!(words[i], "machine" | "default") {
            match (words[i], words.get(i + 1)) {
                ("login", Some(v)) => user = v.to_string(),
                ("password", Some(v)) => password = v.to_string(),
                _ => {}
            }
            i += 2;
        }
        let auth = Auth {
            host: host.to_string(),
            user,
            password,
        };
        if is_default {
            default.get_or_insert(auth);
        } else if (name == host || name == bare) && out.is_none() {
            out = Some(auth);
        }
    }
    out.or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_netrc_entries() {
        assert_eq!(
            host_of("https://u:p@pypi.example.org:8443/simple/"),
            "pypi.example.org:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
        let netrc = "machine other login a password b\nmachine pypi.example.org\n  login builder\n  password s3cret\ndefault login anon password x\n";
        let a = netrc_auth(netrc, "pypi.example.org").unwrap();
        assert_eq!(
            (a.user.as_str(), a.password.as_str()),
            ("builder", "s3cret")
        );
        let a = netrc_auth(netrc, "pypi.example.org:8443").unwrap();
        assert_eq!(a.user, "builder");
        assert_eq!(netrc_auth(netrc, "elsewhere").unwrap().user, "anon");
        assert!(netrc_auth("machine x login y password z", "w").is_none());
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn only_the_network_and_the_server_are_retried() {
        let u = || "https://x/y".to_string();
        assert!(HttpError::Status {
            url: u(),
            status: 503
        }
        .transient());
        assert!(!HttpError::Status {
            url: u(),
            status: 404
        }
        .transient());
        assert!(HttpError::Short {
            url: u(),
            got: 1,
            expected: 2
        }
        .transient());
        assert!(!HttpError::Hash {
            url: u(),
            got: "a".into(),
            expected: "b".into()
        }
        .transient());
    }
}
