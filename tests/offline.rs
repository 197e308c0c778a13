//! Air-gapped and corporate builds: `fetch` on the build host for several
//! Pythons into one wheelhouse, `apply --wheelhouse` in trees with no network
//! at all (a network namespace with only loopback), and a private index that
//! requires basic auth, whose password never lands anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// `--cert` with the host's CA bundle: builds behind a TLS-inspecting proxy need it.
fn cert_args() -> Vec<String> {
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(ca).exists() {
        vec!["--cert".into(), ca.into()]
    } else {
        vec![]
    }
}

/// venvbake with no network at all: a new network namespace, loopback only.
fn apply_offline(tree: &Tree, profile: &Path, wheelhouse: &Path) -> Run {
    let out = Command::new("/usr/bin/unshare")
        .arg("--net")
        .arg(BIN)
        .args([
            "apply",
            profile.to_str().unwrap(),
            "--root",
            tree.root.to_str().unwrap(),
        ])
        .args([
            "--progress",
            "plain",
            "--wheelhouse",
            wheelhouse.to_str().unwrap(),
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn fetch_for_two_pythons_then_apply_with_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "small", "/opt/venvs/small", &small_lock(), "");
    let wh = dir.path().join("wheels");
    for py in ["3.11", "3.13"] {
        let mut args = vec![
            "fetch",
            profile.to_str().unwrap(),
            "--dest",
            wh.to_str().unwrap(),
            "--python",
            py,
        ];
        let cert = cert_args();
        args.extend(cert.iter().map(String::as_str));
        venvbake(&args, &[]).ok();
    }
    // The index of the wheelhouse: every file's hash, both targets.
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&wh)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(wh.join("venvbake-wheelhouse.json")).unwrap(),
    )
    .unwrap();
    let pythons: Vec<&str> = index["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["python"].as_str().unwrap())
        .collect();
    assert_eq!(pythons, ["3.11", "3.13"]);

    // A lock with no file for a target says which requirement and which tags.
    let run = venvbake(
        &[
            "fetch",
            profile.to_str().unwrap(),
            "--dest",
            dir.path().join("old").to_str().unwrap(),
            "--python",
            "3.7",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    run.expect_stderr("for Python 3.7 (abi cp37");

    let wh2 = wh.clone();
    let p2 = profile.clone();
    for (suite, venv_pkg) in [
        ("bookworm", "python3.11-venv"),
        ("trixie", "python3.13-venv"),
    ] {
        let (wh, profile) = (wh2.clone(), p2.clone());
        with_tree(suite, move |tree| {
            tree.apt_install(&[venv_pkg]);
            let run = apply_offline(tree, &profile, &wh);
            assert_eq!(run.code, 0, "offline apply in {suite}:\n{}", run.stderr);
            tree.run(&[
                "/opt/venvs/small/bin/python",
                "-c",
                "import six, jmespath, markupsafe",
            ])
            .ok();

            // A file missing from the wheelhouse is named, with the command that fetches it.
            let partial = tempfile::tempdir().unwrap();
            copy_wheels(&wh, partial.path(), |f| !f.starts_with("jmespath"));
            let other = write_profile(
                partial.path(),
                "other",
                "/opt/venvs/other",
                &small_lock(),
                "",
            );
            let run = apply_offline(tree, &other, partial.path());
            run.expect_code(6);
            run.expect_stderr("the wheelhouse has no file of `jmespath==1.1.0`");
            run.expect_stderr("venvbake fetch");
        });
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8], found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            if p.ends_with("proc") || p.ends_with("sys") || p.ends_with("dev") {
                continue;
            }
            files_containing(&p, needle, found);
        } else if t.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p);
                }
            }
        }
    }
}

#[test]
fn private_index_with_basic_auth_keeps_the_secret_out_of_everything() {
    const SECRET: &str = "pl4nted-S3cret-7d1f";
    with_tree("bookworm", |tree| {
        let (port, stop) = serve_index("-no-file-is-cut-", Some(("builder", SECRET)));
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/simple");
        let profile = write_profile(
            dir.path(),
            "corp",
            "/opt/venvs/corp",
            &small_lock(),
            &format!("pip = true\n\n[index]\nurl = \"{url}\"\nusername_env = \"VB_INDEX_USER\"\npassword_env = \"VB_INDEX_TOKEN\"\n"),
        );
        let root = tree.root.to_str().unwrap();
        let args = [
            "apply",
            profile.to_str().unwrap(),
            "--root",
            root,
            "--progress",
            "plain",
        ];

        // The variable must be set; the message names it, never a value.
        let run = venvbake(&args, &[("VB_INDEX_USER", "builder")]);
        run.expect_code(2);
        run.expect_stderr("`VB_INDEX_TOKEN` is not set");
        // The server really checks: a wrong password is refused.
        let run = venvbake(
            &args,
            &[
                ("VB_INDEX_USER", "builder"),
                ("VB_INDEX_TOKEN", "wrong-one"),
            ],
        );
        run.expect_code(6);
        assert!(!tree.path("/opt/venvs/corp").exists());

        let run = venvbake(
            &args,
            &[("VB_INDEX_USER", "builder"), ("VB_INDEX_TOKEN", SECRET)],
        )
        .ok();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        tree.run(&[
            "/opt/venvs/corp/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        assert!(
            !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
            "the secret was printed"
        );

        // The venv's pip.conf points at the index, without credentials.
        let conf = std::fs::read_to_string(tree.path("/opt/venvs/corp/pip.conf")).unwrap();
        assert!(conf.contains(&format!("index-url = {url}")), "{conf}");
        let cfg = tree
            .run(&["/opt/venvs/corp/bin/python", "-m", "pip", "config", "list"])
            .ok();
        assert!(cfg.stdout.contains(&url), "{}", cfg.stdout);

        // Not one file of the whole tree holds the secret.
        let mut found = Vec::new();
        files_containing(&tree.root, SECRET.as_bytes(), &mut found);
        assert!(found.is_empty(), "the secret landed in {found:?}");
        let m = std::fs::read_to_string(tree.path("/var/lib/venvbake/corp.json")).unwrap();
        assert!(!m.contains("builder:"), "{m}");
    });
}

/// An HTTPS index on loopback with a certificate from a CA the test makes.
struct HttpsIndex {
    child: std::process::Child,
    port: u16,
    ca: PathBuf,
}

impl Drop for HttpsIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https_index(dir: &Path) -> HttpsIndex {
    let sh = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/test-deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=venvbake test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // A PEP 503 tree: simple/<name>/index.html linking to files/<wheel>#sha256=...
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("files")).unwrap();
    for e in std::fs::read_dir(wheelhouse()).unwrap().flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if !f.ends_with(".whl") {
            continue;
        }
        std::fs::copy(e.path(), root.join("files").join(&f)).unwrap();
        let name = f
            .split('-')
            .next()
            .unwrap()
            .to_lowercase()
            .replace('_', "-");
        let page = root.join("simple").join(&name);
        std::fs::create_dir_all(&page).unwrap();
        let sha = venvbake::codec::hex_sha256(&std::fs::read(e.path()).unwrap());
        let mut html = std::fs::read_to_string(page.join("index.html")).unwrap_or_default();
        html.push_str(&format!(
            "<a href=\"../../files/{f}#sha256={sha}\">{f}</a>\n"
        ));
        std::fs::write(page.join("index.html"), html).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = "import http.server, ssl, sys, functools\n\
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])\n\
s = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), h)\n\
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[3], sys.argv[4])\n\
s.socket = c.wrap_socket(s.socket, server_side=True)\n\
print('ready', flush=True); s.serve_forever()\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", server, &port.to_string()])
        .arg(&root)
        .arg(dir.join("srv.pem"))
        .arg(dir.join("srv.key"))
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    HttpsIndex {
        child,
        port,
        ca: dir.join("ca.pem"),
    }
}

#[test]
fn https_index_with_a_private_ca() {
    with_tree("trixie", |tree| {
        let dir = tempfile::tempdir().unwrap();
        let index = https_index(dir.path());
        let url = format!("https://localhost:{}/simple", index.port);
        let root = tree.root.to_str().unwrap().to_string();
        let profile = |extra: &str| {
            write_profile(
                dir.path(),
                "tls",
                "/opt/venvs/tls",
                &small_lock(),
                &format!("\n[index]\nurl = \"{url}\"\n{extra}"),
            )
        };
        // No source option: files come from the profile's index, through a
        // download cache of this test's own (it counts downloads).
        let cache = dir.path().join("cache");
        let cache_env = [("VENVBAKE_CACHE_DIR", cache.to_str().unwrap())];
        let apply = |p: &Path| tree.apply_from(p, &[], &cache_env);
        // Every one of `lines` is in the log.
        let said_all = |stderr: &str, lines: &[&str]| {
            for l in lines {
                assert!(stderr.contains(l), "no `{l}` in:\n{stderr}");
            }
        };
        // Without the CA, TLS verification fails and the hint says what to do.
        let p = profile("");
        let run = apply(&p);
        run.expect_code(6);
        run.expect_stderr("hint: TLS verification failed");
        // With `[index] cert` (read on the build host, bind-mounted for pip only).
        let p = profile(&format!("cert = \"{}\"\n", index.ca.display()));
        let run = apply(&p).ok();
        // venvbake's own client fetches the locked wheels (checked against
        // the lock's hashes) and its installer puts them in the venv.
        said_all(
            &run.stderr,
            &[
                "venv: fetch 3 wheel(s) from https://localhost:",
                "venv: 3 wheel(s): 0 from the cache, 3 downloaded",
                "pinned requirements from the downloaded wheels (native installer",
            ],
        );
        tree.run(&[
            "/opt/venvs/tls/bin/python",
            "-c",
            "import six, jmespath, markupsafe",
        ])
        .ok();
        // The downloaded wheels are not left in the image, and the venv is
        // what its manifest and RECORDs say.
        assert!(!tree.path("/opt/venvs/tls/.venvbake/download").exists());
        assert!(!tree.path("/opt/venvs/tls/.venvbake/pip-run").exists());
        let v = venvbake(&["verify", p.to_str().unwrap(), "--root", &root], &[]);
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
        // With an index but nothing for the venv to take from it (apt serves
        // the whole lock), there is nothing to download.
        let six = dir.path().join("six.txt");
        std::fs::write(&six, "six\n").unwrap();
        let p = write_profile(
            dir.path(),
            "aptonly",
            "/opt/venvs/aptonly",
            &six,
            &format!(
                "system_site_packages = \"auto\"\n\n[python]\nprefer = \"os\"\n\n[index]\nurl = \"{url}\"\ncert = \"{}\"\n",
                index.ca.display()
            ),
        );
        let run = apply(&p).ok();
        run.expect_stderr("requirement six: apt");
        assert!(!run.stderr.contains("venv: fetch"), "{}", run.stderr);
        tree.run(&["/opt/venvs/aptonly/bin/python", "-c", "import six"])
            .ok();

        // A second venv from the same lock takes every wheel from the host's
        // cache: nothing is downloaded again.
        let p = write_profile(
            dir.path(),
            "again",
            "/opt/venvs/again",
            &small_lock(),
            &format!(
                "\n[index]\nurl = \"{url}\"\ncert = \"{}\"\n",
                index.ca.display()
            ),
        );
        let run = apply(&p).ok();
        said_all(
            &run.stderr,
            &["venv: 3 wheel(s): 3 from the cache, 0 downloaded"],
        );
        tree.run(&["/opt/venvs/again/bin/python", "-c", "import six"])
            .ok();

        // The CA was never copied into the image.
        let ca = std::fs::read(&index.ca).unwrap();
        let mut found = Vec::new();
        files_containing(&tree.path("/opt/venvs"), &ca[30..90], &mut found);
        assert!(found.is_empty(), "{found:?}");
    });
}
