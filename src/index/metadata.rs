//! What the plan reads from the index before it decides: the
//! `Requires-Dist` of the lock's pinned versions from PEP 658 `.metadata`
//! files, for the conflict check (an apt version another locked
//! distribution rules out), without downloading a wheel.

use std::sync::Mutex;

use super::http::HttpError;
use super::{masked, Index, IndexError, Store, Want};

/// What the index's core metadata says each locked version requires:
/// name → (version, `Requires-Dist` lines).
pub type Requires = std::collections::BTreeMap<String, (String, Vec<String>)>;

/// `sources` with what [`plan_requires`] reads, when it reads (or fails to
/// read) anything; `warn` gets the note. Callers plan first and ask only
/// when that plan is not a no-op: an up-to-date target costs no network.
pub fn with_plan_requires(
    profile: &crate::input::profile::Profile,
    sources: &crate::input::settings::Sources,
    host_env: &[(String, String)],
    warn: impl Fn(&str),
) -> Option<crate::input::settings::Sources> {
    let (requires, note) = plan_requires(profile, sources, host_env);
    if let Some(note) = &note {
        warn(note);
    }
    (!requires.is_empty() || note.is_some()).then(|| crate::input::settings::Sources {
        index_requires: requires,
        ..sources.clone()
    })
}

/// What the plan's conflict check needs from the index, read before
/// planning: the `Requires-Dist` of the lock's pinned versions whose wheels
/// are not at hand (no wheelhouse, no bundle, no lock `path`), when the
/// profile lets apt serve requirements at all. A note (for a warning) when
/// some could not be read.
pub fn plan_requires(
    profile: &crate::input::profile::Profile,
    sources: &crate::input::settings::Sources,
    host_env: &[(String, String)],
) -> (Requires, Option<String>) {
    if !profile.python.asks_apt() || sources.wheelhouse.is_some() || sources.bundle.is_some() {
        return (Requires::new(), None);
    }
    let wants: Vec<Want> = profile
        .requirements
        .items
        .iter()
        .filter(|r| r.version.is_some())
        .filter(|r| {
            r.locked
                .as_ref()
                .is_none_or(|l| l.wheels.iter().all(|w| w.path.is_none()))
        })
        .map(Want::for_requirement)
        .collect();
    if wants.is_empty() {
        return (Requires::new(), None);
    }
    let index = match Index::for_profile(profile, sources, host_env, std::env::temp_dir()) {
        Ok(i) => i,
        Err(e) => return (Requires::new(), Some(masked(&e.to_string()))),
    };
    let (requires, failed) = index.requires_dist(&wants);
    let note = failed.first().map(|first| {
        format!(
            "the index's metadata could not be read for {} of {} requirement(s) (first: {first}); the conflict check covers what it read",
            failed.len(),
            wants.len()
        )
    });
    (requires, note)
}

impl Index {
    /// `Requires-Dist` of each pinned want, from the PEP 658 `.metadata` of
    /// one of its files, where the index serves one; kept in the cache
    /// beside the file's slot. Best effort, for the plan's conflict check:
    /// what cannot be read is left out, and said in the returned notes.
    pub fn requires_dist(&self, wants: &[Want]) -> (Requires, Vec<String>) {
        let out = Mutex::new((Requires::new(), Vec::new()));
        let next = std::sync::atomic::AtomicUsize::new(0);
        // An index that cannot be reached is not asked again for every
        // requirement (each would wait out its timeouts and retries).
        let unreachable = std::sync::atomic::AtomicBool::new(false);
        let quiet = |_: &str| {};
        std::thread::scope(|s| {
            for _ in 0..wants.len().min(8) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(want) = wants.get(i) else { break };
                    let Some(version) = &want.version else {
                        continue;
                    };
                    let got = if unreachable.load(std::sync::atomic::Ordering::SeqCst) {
                        Err("not asked: the index could not be reached".to_string())
                    } else {
                        let got = self.metadata_of(want, &quiet);
                        if let Err(IndexError::Http(
                            HttpError::Connect { .. } | HttpError::Timeout { .. },
                        )) = &got
                        {
                            unreachable.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        got.map_err(|e| masked(&e.to_string()))
                    };
                    if let Ok(mut o) = out.lock() {
                        match got {
                            Ok(Some(lines)) => {
                                o.0.insert(want.name.clone(), (version.to_string(), lines));
                            }
                            Ok(None) => {}
                            Err(e) => o.1.push(format!("{}: {e}", want.requirement)),
                        }
                    }
                });
            }
        });
        out.into_inner().unwrap_or_default()
    }

    fn metadata_of(
        &self,
        want: &Want,
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<Option<Vec<String>>, IndexError> {
        let candidates = self.lookup(want, on_retry)?;
        let Some(c) = candidates.iter().find(|c| c.metadata) else {
            return Ok(None);
        };
        let cached = match &self.store {
            Store::Cache(cache) => Some(cache.path(&c.sha256, &format!("{}.metadata", c.filename))),
            Store::Scratch(_) => None,
        };
        let text = match cached
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            Some(t) => t,
            None => {
                let (_, t) = self
                    .client
                    .text(&format!("{}.metadata", c.url), "*/*", on_retry)?;
                if let (Some(p), Store::Cache(cache)) = (&cached, &self.store) {
                    if cache.prepare(&c.sha256).is_ok() {
                        let _ = crate::sys::fsutil::atomic_write(p, t.as_bytes(), 0o644);
                    }
                }
                t
            }
        };
        Ok(Some(crate::target::dists::requires_dist(&text)))
    }
}
