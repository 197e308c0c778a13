//! venvbake's own index client against a real HTTP server on loopback that
//! misbehaves on purpose: a tampered file, a missing project, a 500, a
//! server that never answers, a download cut short, a redirect to another
//! host. Then the download cache: a second build downloads nothing, a
//! changed lock only what changed, a damaged cached file is fetched anew,
//! and two applies share the cache at once.
//!
//! Each case reads what a user would: the exit code, the log line and its
//! hint, the venv link (the old generation stays active), what the index's
//! request log says was downloaded.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A profile for `lock` at `venv` installing from `index` (plus `extra`
/// lines in `[index]`).
fn index_profile(
    dir: &Path,
    name: &str,
    venv: &str,
    lock: &Path,
    url: &str,
    extra: &str,
) -> PathBuf {
    write_profile(
        dir,
        name,
        venv,
        lock,
        &format!("\n[index]\nurl = \"{url}\"\n{extra}"),
    )
}

/// Every file under `dir` (names and contents) that holds `needle`.
fn holding(dir: &Path, needle: &[u8], found: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.to_string_lossy()
            .as_bytes()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(p.clone());
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            holding(&p, needle, found);
        } else if ft.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p);
                }
            }
        }
    }
}

/// The files under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_hostile_or_broken_index_gets_a_clear_error_and_loses_nothing() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        // The active generation: six and jmespath, from the wheelhouse.
        let two = small_two_lock(dir.path());
        let p = write_profile(dir.path(), "small", "/opt/venvs/small", &two, "");
        tree.apply(&p, &[]).ok();
        let g1 = tree.link("/opt/venvs/small").unwrap();
        // Each case: the whole small lock (a change: markupsafe is new), from
        // a misbehaving index, through a cache of its own.
        let case = |n: usize, faults: &[(&'static str, Misbehave)], extra: &str| {
            let index = TestIndex::start(faults, None);
            let cache = dir.path().join(format!("cache-{n}"));
            let p = index_profile(
                dir.path(),
                "small",
                "/opt/venvs/small",
                &small_lock(),
                &index.url(),
                extra,
            );
            let run = tree.apply_from(&p, &[], &[("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())]);
            (run, index, cache)
        };
        let unchanged = || {
            assert_eq!(tree.link("/opt/venvs/small"), Some(g1.clone()));
            assert_eq!(
                generation_dirs(tree, "/opt/venvs/small.generations").len(),
                1,
                "a refused build left a generation behind"
            );
            tree.run(&["/opt/venvs/small/bin/python", "-c", "import six, jmespath"])
                .ok();
        };

        // A file whose hash differs from the lock: refused, never retried,
        // and not kept in the cache.
        let (run, index, cache) = case(1, &[("six", Misbehave::Tamper)], "");
        run.expect_code(6);
        run.expect_stderr("DO NOT MATCH THE HASHES FROM THE LOCK");
        run.expect_stderr("hint: the index served a file that is not the one the lock pins");
        assert_eq!(
            index
                .file_requests()
                .iter()
                .filter(|l| l.contains("/six-"))
                .count(),
            1,
            "a hash mismatch was retried"
        );
        let mut kept = Vec::new();
        holding(&cache, b"six-1.17.0", &mut kept);
        assert!(
            kept.is_empty(),
            "the tampered file stayed in the cache: {kept:?}"
        );
        unchanged();

        // 404 for a project: the message names the requirement and the index.
        let (run, index, _) = case(2, &[("jmespath", Misbehave::Missing)], "");
        run.expect_code(6);
        run.expect_stderr("no index lists a file of `jmespath==1.1.0`");
        run.expect_stderr(&format!("{}/jmespath/", index.url()));
        unchanged();

        // Never answers: stops at the profile's timeout, retried, with a hint.
        let (run, _index, _) = case(3, &[("markupsafe", Misbehave::Hang)], "timeout_s = 1\n");
        run.expect_code(6);
        run.expect_stderr("did not answer in time");
        run.expect_stderr("retrying in");
        run.expect_stderr("hint: the index did not answer in time");
        unchanged();

        // Cut short every time: detected, retried, then refused.
        let (run, index, _) = case(
            4,
            &[("markupsafe", Misbehave::Cut { every_time: true })],
            "",
        );
        run.expect_code(6);
        run.expect_stderr("ended after");
        assert_eq!(
            index
                .file_requests()
                .iter()
                .filter(|l| l.contains("/markupsafe-") || l.contains("/MarkupSafe-"))
                .count(),
            3,
            "{:?}",
            index.file_requests()
        );
        unchanged();

        // A refused first build leaves nothing at all.
        let index = TestIndex::start(&[("six", Misbehave::Tamper)], None);
        let p = index_profile(
            dir.path(),
            "fresh",
            "/opt/venvs/fresh",
            &small_lock(),
            &index.url(),
            "",
        );
        let cache = dir.path().join("cache-fresh");
        tree.apply_from(&p, &[], &[("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())])
            .expect_code(6);
        assert!(!tree.path("/opt/venvs/fresh").exists());
        assert!(!tree.path("/opt/venvs/fresh.generations").exists());
        assert!(!tree.path("/var/lib/venvbake/fresh.json").exists());

        // A 500, then the file; a cut once, then the whole file: both are
        // retried, said in the log, and the build goes through.
        let (run, _index, _) = case(
            5,
            &[
                ("six", Misbehave::FailOnce),
                ("markupsafe", Misbehave::Cut { every_time: false }),
            ],
            "",
        );
        let run = run.ok();
        run.expect_stderr("answered 500; retrying in 0.5s (attempt 2 of 3)");
        run.expect_stderr("ended after");
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        assert_ne!(tree.link("/opt/venvs/small"), Some(g1.clone()));
        assert_eq!(verify(tree, "small").0, 0);
    });
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host_nor_reach_anything() {
    const SECRET: &str = "r3direct-S3cret-41bd";
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        // The files live on another host (`localhost`, not `127.0.0.1`).
        let files = TestIndex::start(&[], None);
        let index = TestIndex::start(
            &[
                ("six", Misbehave::Redirect(files.port)),
                ("jmespath", Misbehave::Redirect(files.port)),
            ],
            Some(("builder", SECRET)),
        );
        let p = index_profile(
            dir.path(),
            "corp",
            "/opt/venvs/corp",
            &small_lock(),
            &index.url(),
            "username_env = \"VB_USER\"\npassword_env = \"VB_TOKEN\"\n",
        );
        let cache = dir.path().join("cache");
        let run = tree
            .apply_from(
                &p,
                &[],
                &[
                    ("VENVBAKE_CACHE_DIR", cache.to_str().unwrap()),
                    ("VB_USER", "builder"),
                    ("VB_TOKEN", SECRET),
                ],
            )
            .ok();
        tree.run(&[
            "/opt/venvs/corp/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        // The index saw the credentials; the other host never did.
        let asked = index.log.lock().unwrap().clone();
        assert!(
            asked.iter().all(|l| l.ends_with("[authorization]")),
            "{asked:?}"
        );
        let other = files.log.lock().unwrap().clone();
        assert_eq!(other.len(), 2, "{other:?}");
        assert!(
            other.iter().all(|l| !l.contains("[authorization]")),
            "{other:?}"
        );
        // Not in the log, the image, the manifest, nor the cache's names or files.
        assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
        let mut found = Vec::new();
        holding(&tree.root, SECRET.as_bytes(), &mut found);
        holding(&cache, SECRET.as_bytes(), &mut found);
        assert!(found.is_empty(), "the secret landed in {found:?}");
        let names = files_under(&cache);
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names
                .iter()
                .all(|p| !p.to_string_lossy().contains("builder")),
            "{names:?}"
        );
    });
}

#[test]
fn the_download_cache_downloads_each_file_once_and_heals() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let index = TestIndex::start(&[], None);
        let cache = dir.path().join("cache");
        let env = [("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())];
        let two = small_two_lock(dir.path());
        let apply = |name: &str, lock: &Path| {
            let p = index_profile(
                dir.path(),
                name,
                &format!("/opt/venvs/{name}"),
                lock,
                &index.url(),
                "",
            );
            let run = tree.apply_from(&p, &[], &env).ok();
            tree.run(&[
                &format!("/opt/venvs/{name}/bin/python"),
                "-c",
                "import six, jmespath",
            ])
            .ok();
            run
        };
        let downloaded = || {
            let files = index.downloaded_projects();
            index.clear_log();
            files
        };

        // Cold: both files come from the index.
        apply("one", &two);
        assert_eq!(downloaded(), ["jmespath", "six"]);
        // The same lock for another image: nothing is downloaded.
        let run = apply("two", &two);
        run.expect_stderr("2 from the cache, 0 downloaded");
        assert_eq!(downloaded(), Vec::<String>::new());
        // A changed lock (markupsafe added): only markupsafe is downloaded.
        apply("three", &small_lock());
        assert_eq!(downloaded(), ["markupsafe"]);

        // A damaged cached file is found, removed and downloaded again.
        let six = files_under(&cache)
            .into_iter()
            .find(|p| p.ends_with("six-1.17.0-py2.py3-none-any.whl"))
            .expect("six in the cache");
        let mut bytes = std::fs::read(&six).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0xff;
        std::fs::write(&six, bytes).unwrap();
        apply("four", &two);
        assert_eq!(downloaded(), ["six"]);

        // `--no-cache`: the files are downloaded again, kept nowhere (not
        // in the cache, not in the generation), and the venv verifies.
        let p = index_profile(
            dir.path(),
            "nocache",
            "/opt/venvs/nocache",
            &two,
            &index.url(),
            "",
        );
        let before = files_under(&cache).len();
        let run = tree.apply_from(&p, &["--no-cache"], &env).ok();
        run.expect_stderr("(no cache)");
        assert_eq!(downloaded(), ["jmespath", "six"]);
        assert_eq!(files_under(&cache).len(), before);
        let generation = tree.link("/opt/venvs/nocache").unwrap();
        let gen_dir = tree
            .path("/opt/venvs/nocache.generations")
            .join(generation.file_name().unwrap());
        assert!(!gen_dir.join(".venvbake/download").exists());
        assert_eq!(verify(tree, "nocache").0, 0);

        // Two applies at once into one fresh cache both succeed, and the
        // cache holds each file once, with no partial file left.
        let cache2 = dir.path().join("cache2");
        let runs: Vec<Run> = std::thread::scope(|s| {
            let jobs: Vec<_> = ["five", "six"]
                .into_iter()
                .map(|name| {
                    let p = index_profile(
                        dir.path(),
                        name,
                        &format!("/opt/venvs/{name}"),
                        &small_lock(),
                        &index.url(),
                        "",
                    );
                    let cache2 = cache2.clone();
                    s.spawn(move || {
                        tree.apply_from(
                            &p,
                            &[],
                            &[("VENVBAKE_CACHE_DIR", cache2.to_str().unwrap())],
                        )
                    })
                })
                .collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        });
        for run in runs {
            run.ok();
        }
        let names: Vec<String> = files_under(&cache2)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".whl")), "{names:?}");
        assert_eq!(verify(tree, "five").0, 0);
        assert_eq!(verify(tree, "six").0, 0);
    });
}

/// Behind a proxy: venvbake's client goes through `http_proxy` (here a real
/// tunnelling proxy on loopback, which logs each CONNECT), and past it for
/// the hosts `no_proxy` names.
#[test]
fn downloads_go_through_the_proxy_unless_no_proxy_names_the_host() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let index = TestIndex::start(&[], None);
        let proxy = TestProxy::start();
        let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
        let two = small_two_lock(dir.path());
        let apply = |name: &str, extra: &[(&str, &str)]| {
            let p = index_profile(
                dir.path(),
                name,
                &format!("/opt/venvs/{name}"),
                &two,
                &index.url(),
                "",
            );
            let cache = dir.path().join(format!("cache-{name}"));
            let mut env = vec![("VENVBAKE_CACHE_DIR", cache.to_str().unwrap().to_string())];
            env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            tree.apply_from(&p, &[], &env).ok();
            tree.run(&[
                &format!("/opt/venvs/{name}/bin/python"),
                "-c",
                "import six, jmespath",
            ])
            .ok();
        };
        apply("proxied", &[("http_proxy", &proxy_url)]);
        let tunnels = proxy.log.lock().unwrap().clone();
        let target = format!("CONNECT 127.0.0.1:{} ", index.port);
        assert!(!tunnels.is_empty(), "nothing went through the proxy");
        assert!(
            tunnels.iter().all(|l| l.starts_with(&target)),
            "{tunnels:?}"
        );
        assert_eq!(index.file_requests().len(), 2);

        proxy.log.lock().unwrap().clear();
        apply(
            "direct",
            &[("http_proxy", &proxy_url), ("no_proxy", "127.0.0.1")],
        );
        assert!(proxy.log.lock().unwrap().is_empty(), "no_proxy was ignored");
        assert_eq!(index.file_requests().len(), 4);
    });
}

/// Wheels are installed as they arrive: while one download is held back
/// halfway through its file, the wheels already downloaded are unpacked in
/// the new generation (before, every download had to finish first); the
/// build completes once the last file arrives, and the venv imports all.
#[test]
fn wheels_are_installed_while_another_still_downloads() {
    with_tree("bookworm", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let index = TestIndex::start(&[("markupsafe", Misbehave::Hold)], None);
        let p = index_profile(
            dir.path(),
            "small",
            "/opt/venvs/small",
            &small_lock(),
            &index.url(),
            "",
        );
        let cache = dir.path().join("cache");
        let generations = tree.path("/opt/venvs/small.generations");
        let unpacked = |name: &str| {
            files_under(&generations)
                .iter()
                .any(|f| f.ends_with(name) && f.to_string_lossy().contains("site-packages"))
        };
        let (seen, run) = std::thread::scope(|s| {
            let apply = s.spawn(|| {
                tree.apply_from(&p, &[], &[("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())])
            });
            // Until six and jmespath are unpacked, markupsafe's file still
            // held (or the apply ended without them, or a minute passed).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let seen = loop {
                if unpacked("six.py") && unpacked("jmespath/__init__.py") {
                    break true;
                }
                if apply.is_finished() || std::time::Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let markupsafe_complete = unpacked("markupsafe/__init__.py");
            index.release();
            (seen && !markupsafe_complete, apply.join().unwrap())
        });
        assert!(
            seen,
            "six and jmespath were not unpacked while markupsafe's download was held:\n{}",
            run.stderr
        );
        run.expect_code(0);
        run.expect_stderr("each wheel is installed as it arrives");
        run.expect_stderr("venv: 3 wheel(s): 0 from the cache, 3 downloaded");
        tree.run(&[
            "/opt/venvs/small/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        assert_eq!(
            index.downloaded_projects(),
            ["jmespath", "markupsafe", "six"],
            "{:?}",
            index.file_requests()
        );
        // Each page once: looked up ahead (while the interpreter was
        // probed), then taken by the download, not asked for again.
        assert_eq!(
            index.page_requests().len(),
            3,
            "{:?}",
            index.page_requests()
        );
    });
}
