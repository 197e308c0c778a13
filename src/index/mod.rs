//! The package index, from the build host and never from inside the image:
//! find each locked file (the lock's own URL, or the project's page of the
//! simple API), download it in parallel, streamed to disk and checked
//! against the lock, into the host's download cache.
//!
//! `http` is the network (proxies, CA, auth, retries), `simple` reads an
//! index page (PEP 691 JSON, PEP 503 HTML), `cache` keeps files by sha256,
//! `metadata` reads PEP 658 metadata for the plan.

pub mod cache;
pub mod http;
pub mod metadata;
pub mod simple;

pub use metadata::with_plan_requires;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use self::http::{Client, HttpError};

/// The index PyPI serves when the profile names none.
pub const PYPI: &str = "https://pypi.org/simple";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("no index lists a file of `{requirement}` (asked: {asked})")]
    NotFound { requirement: String, asked: String },
    #[error("`{requirement}`: the index lists no wheel this Python accepts whose hash the lock allows ({listed})")]
    NoFit { requirement: String, listed: String },
    #[error("the index page `{url}` could not be read: {message}")]
    Page { url: String, message: String },
    #[error("could not use the download cache `{}`: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl IndexError {
    /// The file's content differs from the lock (exit 6, never retried).
    pub fn hint(&self) -> String {
        match self {
            IndexError::Http(HttpError::Hash { .. }) | IndexError::Http(HttpError::Size { .. }) => {
                "the index served a file that is not the one the lock pins: it was altered, or the lock is wrong; nothing of this build was kept".into()
            }
            IndexError::Http(HttpError::Timeout { .. }) => {
                "the index did not answer in time: check the network and the proxy variables (`https_proxy`), or build offline with `--wheelhouse`".into()
            }
            IndexError::Http(HttpError::Connect { message, .. }) if message.contains("certificate") || message.contains("Certificate") => {
                "TLS verification failed: give the CA of the index (or of the TLS-inspecting proxy) with `--cert` or `[index] cert`".into()
            }
            IndexError::Http(HttpError::Status { status: 401 | 403, .. }) => {
                "the index wants credentials: set the variables `[index] username_env`/`password_env` name, or a `~/.netrc` entry for its host".into()
            }
            IndexError::Http(_) => {
                "the package index could not be reached or failed: check the network and proxy variables, or build offline with `--wheelhouse`".into()
            }
            IndexError::NotFound { .. } | IndexError::NoFit { .. } => {
                "check `[index] url` and `extra_urls`, or that the lock was made for this Python; `venvbake fetch` and `--wheelhouse` build offline".into()
            }
            IndexError::Page { .. } => "is `[index] url` a simple API (`…/simple`)?".into(),
            IndexError::Cache { .. } => {
                "check `--cache-dir` (or `VENVBAKE_CACHE_DIR`) is writable, or pass `--no-cache`".into()
            }
        }
    }
}

/// `scheme://user:secret@host` as `scheme://user:***@host` (messages only).
pub fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '`')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                out.push_str(&format!("{user}:***@{host}"));
            }
            None => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One file the build needs.
#[derive(Debug, Clone)]
pub struct Want {
    /// PEP 503 name.
    pub name: String,
    /// For messages: the requirement as the lock writes it.
    pub requirement: String,
    pub version: Option<pep440_rs::Version>,
    /// sha256 digests the lock allows.
    pub hashes: Vec<String>,
    /// A `pylock.toml`'s files with a URL (no index lookup then).
    pub files: Vec<Candidate>,
}

impl Want {
    /// What a locked requirement asks of the index: its pinned version and
    /// hashes, and a `pylock.toml`'s file URLs when the lock has them.
    pub fn for_requirement(r: &crate::input::requirements::Requirement) -> Self {
        Want {
            name: r.name.to_string(),
            requirement: r.text.clone(),
            version: r.version.clone(),
            hashes: r.hashes.clone(),
            files: r
                .locked
                .iter()
                .flat_map(|l| &l.wheels)
                .filter_map(|w| {
                    Some(Candidate {
                        filename: w.name.clone(),
                        url: w.url.clone()?,
                        sha256: w.sha256.clone(),
                        size: w.size,
                        metadata: false,
                    })
                })
                .collect(),
        }
    }
}

/// A file that may serve a [`Want`]: where it is and what the lock allows.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub filename: String,
    pub url: String,
    /// The lock's digest for it.
    pub sha256: String,
    pub size: Option<u64>,
    /// PEP 658: the index serves the file's core metadata at `URL.metadata`.
    pub metadata: bool,
}

/// A file at hand, in the cache (or the scratch folder).
#[derive(Debug, Clone)]
pub struct Got {
    pub file: PathBuf,
    pub sha256: String,
    pub size: Option<u64>,
    pub cached: bool,
}

/// Where downloads go: the cache, or (with `--no-cache`) a folder of this build.
pub enum Store {
    Cache(cache::Cache),
    Scratch(PathBuf),
}

pub struct Index {
    pub client: Client,
    /// Pages looked up ahead of need ([`Index::look_ahead`]).
    ahead: Option<std::sync::Arc<Ahead>>,
    /// The primary index, then `extra_urls`.
    pub urls: Vec<String>,
    pub store: Store,
    /// Take a `pylock.toml`'s files from their own `url`s. Off when the
    /// profile names an index (`[index] url`): a corporate mirror then
    /// serves them, matched by the lock's hashes, as the lock's URLs
    /// (usually files.pythonhosted.org) may not be reachable from there.
    pub lock_urls: bool,
}

impl Index {
    /// The folder of this build's downloads when the cache is off (the
    /// caller removes it before the generation is hashed).
    pub fn scratch(&self) -> Option<&std::path::Path> {
        match &self.store {
            Store::Scratch(dir) => Some(dir),
            Store::Cache(_) => None,
        }
    }

    /// The profile's index (`[index] url`, else PyPI, then `extra_urls`),
    /// its credentials (the profile's variables, else `~/.netrc`), the CA
    /// bundle and the cache of `sources`; `scratch` holds downloads when
    /// the cache is off.
    pub fn for_profile(
        profile: &crate::input::profile::Profile,
        sources: &crate::input::settings::Sources,
        host_env: &[(String, String)],
        scratch: PathBuf,
    ) -> Result<Self, crate::error::Error> {
        let client = Self::client(profile, sources, host_env)?;
        Ok(Self::with_client(profile, sources, client, scratch))
    }

    /// The index the pages of `ahead` were looked up on (its client, so its
    /// connections too), taking those pages instead of asking again.
    pub fn after(
        ahead: std::sync::Arc<Ahead>,
        profile: &crate::input::profile::Profile,
        sources: &crate::input::settings::Sources,
        scratch: PathBuf,
    ) -> Self {
        let mut index = Self::with_client(profile, sources, ahead.client.clone(), scratch);
        index.ahead = Some(ahead);
        index
    }

    /// The profile's index URLs: `[index] url` (else PyPI), then `extra_urls`.
    fn urls(profile: &crate::input::profile::Profile) -> Vec<String> {
        let mut urls = vec![profile
            .index
            .url
            .clone()
            .unwrap_or_else(|| PYPI.to_string())];
        urls.extend(profile.index.extra_urls.iter().cloned());
        urls
    }

    fn with_client(
        profile: &crate::input::profile::Profile,
        sources: &crate::input::settings::Sources,
        client: Client,
        scratch: PathBuf,
    ) -> Self {
        let store = match &sources.cache {
            Some(dir) => Store::Cache(cache::Cache::new(dir)),
            None => Store::Scratch(scratch),
        };
        Index {
            client,
            ahead: None,
            urls: Self::urls(profile),
            store,
            lock_urls: profile.index.url.is_none(),
        }
    }

    /// The HTTP client for the profile's index: its credentials (the
    /// profile's variables for the primary index, else `~/.netrc`), the CA
    /// bundle, the timeouts.
    fn client(
        profile: &crate::input::profile::Profile,
        sources: &crate::input::settings::Sources,
        host_env: &[(String, String)],
    ) -> Result<Client, crate::error::Error> {
        let urls = Self::urls(profile);
        let creds = crate::input::credentials::Credentials::from_profile(profile, host_env)?;
        let netrc = host_env
            .iter()
            .find(|(k, _)| k == "NETRC")
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| {
                host_env
                    .iter()
                    .find(|(k, _)| k == "HOME")
                    .map(|(_, h)| PathBuf::from(h).join(".netrc"))
            })
            .and_then(|p| std::fs::read_to_string(p).ok());
        let mut auth = Vec::new();
        for u in &urls {
            let host = http::host_of(u).to_string();
            if auth.iter().any(|a: &http::Auth| a.host == host) {
                continue;
            }
            // The profile's credentials are for its primary index.
            let from_profile = (Some(u) == profile.index.url.as_ref())
                .then(|| creds.basic())
                .flatten()
                .map(|(user, password)| http::Auth {
                    host: host.clone(),
                    user,
                    password,
                });
            if let Some(a) =
                from_profile.or_else(|| netrc.as_deref().and_then(|t| http::netrc_auth(t, &host)))
            {
                auth.push(a);
            }
        }
        Ok(Client::new(&http::Net {
            cert: sources.cert.clone(),
            auth,
            connect_timeout: profile.index.timeout,
            read_timeout: profile.index.timeout,
        })
        .map_err(IndexError::from)?)
    }

    /// Look up the pages of `wants` now, on threads of their own, and
    /// return at once: the pages the [`Index::after`] the answer takes
    /// later. An image build probes the interpreter (and may run apt)
    /// before it can choose files; a distant index answers meanwhile.
    pub fn look_ahead(self, wants: Vec<Want>) -> std::sync::Arc<Ahead> {
        let wants: Vec<Want> = wants.into_iter().filter(|w| self.needs_page(w)).collect();
        let ahead = std::sync::Arc::new(Ahead {
            client: self.client.clone(),
            pages: Default::default(),
            signal: Default::default(),
        });
        if let Ok(mut pages) = ahead.pages.lock() {
            pages.extend(wants.iter().map(|w| (w.requirement.clone(), None)));
        }
        let shared = ahead.clone();
        let _ = std::thread::Builder::new()
            .name("index-ahead".into())
            .spawn(move || {
                let next = std::sync::atomic::AtomicUsize::new(0);
                std::thread::scope(|s| {
                    for _ in 0..wants.len().min(8) {
                        s.spawn(|| {
                            while let Some(want) =
                                wants.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
                            {
                                let retries = Mutex::new(Vec::new());
                                let found = self.lookup(want, &|m: &str| {
                                    if let Ok(mut r) = retries.lock() {
                                        r.push(m.to_string());
                                    }
                                });
                                let retries = retries.into_inner().unwrap_or_default();
                                shared.put(&want.requirement, (found, retries));
                            }
                        });
                    }
                });
            });
        ahead
    }

    /// Whether `want`'s files come from its project's page (not from a
    /// `pylock.toml`'s own URLs).
    fn needs_page(&self, want: &Want) -> bool {
        want.files.is_empty() || !self.lock_urls
    }

    /// `want`'s files: from the pages looked up ahead when there is one
    /// for it (replaying its retry lines), else asked now.
    fn candidates(
        &self,
        want: &Want,
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Candidate>, IndexError> {
        if let Some((found, retries)) = self.ahead.as_ref().and_then(|a| a.take(&want.requirement))
        {
            for m in &retries {
                on_retry(m);
            }
            return found;
        }
        self.lookup(want, on_retry)
    }
}

/// What [`Index::look_ahead`] found: each want's files (or why not) and
/// the retry lines on the way, by requirement; `None` while under way.
pub struct Ahead {
    /// The client that asked (its connections stay open for the downloads).
    client: Client,
    pages: Mutex<std::collections::HashMap<String, Option<Looked>>>,
    signal: std::sync::Condvar,
}

type Looked = (Result<Vec<Candidate>, IndexError>, Vec<String>);

impl Ahead {
    fn put(&self, requirement: &str, looked: Looked) {
        if let Ok(mut pages) = self.pages.lock() {
            pages.insert(requirement.to_string(), Some(looked));
        }
        self.signal.notify_all();
    }

    /// The answer for `requirement`, once (waiting while it is under way);
    /// None if it was never asked.
    fn take(&self, requirement: &str) -> Option<Looked> {
        let mut pages = self.pages.lock().ok()?;
        loop {
            match pages.get(requirement)? {
                Some(_) => return pages.remove(requirement).flatten(),
                None => pages = self.signal.wait(pages).ok()?,
            }
        }
    }
}

/// What the download reports as it goes (lines for the log).
pub trait Progress: Sync {
    fn line(&self, text: &str);
    fn bytes(&self, _n: u64) {}
    /// One wanted file is at hand (cached or downloaded).
    fn file_done(&self) {}
}

/// [`Progress`] through the one reporter: lines (credentials masked), and
/// on a terminal a transfer bar for `files` files while it lives.
pub struct LineLog<'r>(Mutex<&'r mut crate::sys::report::Reporter>);

impl<'r> LineLog<'r> {
    pub fn new(reporter: &'r mut crate::sys::report::Reporter, files: usize) -> Self {
        reporter.begin_transfer(files);
        LineLog(Mutex::new(reporter))
    }
}

impl Drop for LineLog<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.lock() {
            r.end_transfer();
        }
    }
}

impl Progress for LineLog<'_> {
    fn line(&self, text: &str) {
        if let Ok(r) = self.0.lock() {
            r.output(&masked(text));
        }
    }

    fn bytes(&self, n: u64) {
        if let Ok(r) = self.0.lock() {
            r.transfer_bytes(n);
        }
    }

    fn file_done(&self) {
        if let Ok(mut r) = self.0.lock() {
            r.transfer_file();
        }
    }
}

impl Index {
    /// Each wanted file, from the cache or downloaded: `rank` orders a
    /// wheel's filename by fit (lower is better; None: this Python cannot
    /// use it). Runs up to eight transfers at once.
    pub fn fetch(
        &self,
        wants: &[Want],
        rank: &(dyn Fn(&str) -> Option<usize> + Sync),
        progress: &dyn Progress,
    ) -> Result<Vec<Got>, IndexError> {
        self.fetch_each(wants, rank, progress, &|_, _| true)
    }

    /// [`Index::fetch`], handing each file to `ready` (with its index in
    /// `wants`) as soon as it is at hand, in whatever order they finish; no
    /// new transfer starts once `ready` answers false (the receiver gave up).
    pub fn fetch_each(
        &self,
        wants: &[Want],
        rank: &(dyn Fn(&str) -> Option<usize> + Sync),
        progress: &dyn Progress,
        ready: &(dyn Fn(usize, &Got) -> bool + Sync),
    ) -> Result<Vec<Got>, IndexError> {
        use std::sync::atomic::Ordering::SeqCst;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Got, IndexError>>>> =
            Mutex::new((0..wants.len()).map(|_| None).collect());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..wants.len().min(8) {
                s.spawn(|| loop {
                    if stop.load(SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, SeqCst);
                    let Some(want) = wants.get(i) else { break };
                    let got = self.one(want, rank, progress);
                    match &got {
                        Ok(g) if ready(i, g) => {}
                        _ => stop.store(true, SeqCst),
                    }
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(got);
                    }
                });
            }
        });
        let all = results.into_inner().unwrap_or_default();
        // The first failure in the lock's order, else every file (all of
        // them unless the receiver gave up).
        let mut out = Vec::new();
        for r in all.into_iter().flatten() {
            out.push(r?);
        }
        Ok(out)
    }

    fn one(
        &self,
        want: &Want,
        rank: &(dyn Fn(&str) -> Option<usize> + Sync),
        progress: &dyn Progress,
    ) -> Result<Got, IndexError> {
        let on_retry = |m: &str| progress.line(m);
        let candidates: Vec<Candidate> = if self.needs_page(want) {
            self.candidates(want, &on_retry)?
        } else {
            want.files.clone()
        };
        let best = candidates
            .iter()
            .filter_map(|c| rank(&c.filename).map(|r| (r, c)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, c)| c.clone());
        let Some(Candidate {
            filename,
            url,
            sha256,
            size,
            ..
        }) = best
        else {
            return Err(IndexError::NoFit {
                requirement: want.requirement.clone(),
                listed: listing(candidates.iter().map(|c| c.filename.as_str())),
            });
        };
        // A file already at hand: in the cache (re-hashed there), or in the
        // scratch folder (a wheelhouse `fetch` fills again) when it matches.
        let at_hand = match &self.store {
            Store::Cache(c) => c.get(&sha256, &filename),
            Store::Scratch(dir) => Some(dir.join(&filename)).filter(|p| {
                crate::sys::codec::sha256_file_hex(p).is_ok_and(|h| h.eq_ignore_ascii_case(&sha256))
            }),
        };
        if let Some(file) = at_hand {
            progress.file_done();
            return Ok(Got {
                file,
                sha256,
                size,
                cached: true,
            });
        }
        let dest = match &self.store {
            Store::Cache(c) => {
                let slot = c.prepare(&sha256).map_err(|source| IndexError::Cache {
                    path: c.root().to_path_buf(),
                    source,
                })?;
                slot.join(&filename)
            }
            Store::Scratch(dir) => dir.join(&filename),
        };
        let started = Instant::now();
        let bytes = self
            .client
            .download(&url, &dest, &sha256, size, &on_retry, &|n| {
                progress.bytes(n)
            })?;
        progress.line(&format!(
            "downloaded {filename} ({:.1} MB) in {:.2}s",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        ));
        progress.file_done();
        Ok(Got {
            file: dest,
            sha256,
            size,
            cached: false,
        })
    }

    /// The files of `want`'s project that the lock allows: filename, URL,
    /// sha256 (the lock's, matched against the page's), size. The first
    /// index that lists any wins.
    fn lookup(
        &self,
        want: &Want,
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Candidate>, IndexError> {
        let mut asked = Vec::new();
        for base in &self.urls {
            let page = format!("{}/{}/", base.trim_end_matches('/'), want.name);
            asked.push(masked(&page));
            let (ctype, body) = match self.client.text(&page, simple::ACCEPT, on_retry) {
                Ok(x) => x,
                Err(HttpError::Status { status: 404, .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let files =
                simple::parse(&page, &ctype, &body).map_err(|message| IndexError::Page {
                    url: masked(&page),
                    message,
                })?;
            let ours: Vec<_> = files
                .into_iter()
                .filter(|f| file_is(&f.filename, &want.name, want.version.as_ref()))
                .filter_map(|f| {
                    let sha = match &f.sha256 {
                        Some(h) => want
                            .hashes
                            .iter()
                            .find(|a| a.eq_ignore_ascii_case(h))?
                            .clone(),
                        // No hash on the page: only a lock with one hash says which file.
                        None if want.hashes.len() == 1 => want.hashes[0].clone(),
                        None => return None,
                    };
                    Some(Candidate {
                        filename: f.filename,
                        url: f.url,
                        sha256: sha,
                        size: f.size,
                        metadata: f.metadata,
                    })
                })
                .collect();
            if !ours.is_empty() {
                return Ok(ours);
            }
        }
        Err(IndexError::NotFound {
            requirement: want.requirement.clone(),
            asked: asked.join(", "),
        })
    }
}

/// `N files listed: a, b, c, …` (the first few names only).
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        0 => "no file listed".into(),
        n if n <= 4 => format!("listed: {shown}"),
        n => format!("{n} files listed: {shown}, …"),
    }
}

/// Whether `filename` (a wheel or sdist) is of `name` at `version`.
fn file_is(filename: &str, name: &str, version: Option<&pep440_rs::Version>) -> bool {
    let stem = filename
        .strip_suffix(".whl")
        .or_else(|| filename.strip_suffix(".tar.gz"))
        .or_else(|| filename.strip_suffix(".zip"))
        .unwrap_or(filename);
    let (dist, ver) = if filename.ends_with(".whl") {
        let mut p = stem.split('-');
        (p.next().unwrap_or(""), p.next().unwrap_or(""))
    } else {
        stem.rsplit_once('-').unwrap_or((stem, ""))
    };
    crate::input::requirements::normalize(dist) == name
        && version.is_none_or(|v| ver.parse::<pep440_rs::Version>().is_ok_and(|p| p == *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_in_messages() {
        assert_eq!(
            masked("`https://builder:s3cret@pypi.example.org/simple/six/` answered 500"),
            "`https://builder:***@pypi.example.org/simple/six/` answered 500"
        );
        assert_eq!(
            masked("http://host/x and https://a/b"),
            "http://host/x and https://a/b"
        );
    }

    #[test]
    fn files_are_matched_by_name_and_version() {
        let v = |s: &str| s.parse::<pep440_rs::Version>().unwrap();
        assert!(file_is(
            "PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "pyyaml",
            Some(&v("6.0.1"))
        ));
        assert!(!file_is(
            "PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "pyyaml",
            Some(&v("6.0"))
        ));
        assert!(file_is(
            "python-dateutil-2.8.2.tar.gz",
            "python-dateutil",
            Some(&v("2.8.2"))
        ));
        assert!(file_is(
            "zope.interface-6.0-cp311-none-any.whl",
            "zope-interface",
            None
        ));
    }
}
