//! The binary's behaviour on bad input and unsupported targets: clear errors
//! that name the file, line and key, a hint, and the documented exit code,
//! before anything touches a target. No tree is needed for these.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{venvbake, write_profile, REPO};

const HASH: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

fn good_lock(dir: &Path) -> PathBuf {
    let p = dir.join("lock.txt");
    std::fs::write(&p, format!("six==1.16.0 --hash=sha256:{HASH}\n")).unwrap();
    p
}

/// An empty directory as the target: no apt, no python.
fn empty_root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let run = venvbake(&["--help"], &[]).ok();
    for word in ["apply", "plan", "inventory", "Exit codes", "4 apt failed"] {
        assert!(
            run.stdout.contains(word),
            "{word} missing from --help:\n{}",
            run.stdout
        );
    }
    let run = venvbake(&["apply", "--help"], &[]).ok();
    for word in ["--root", "--wheelhouse", "--progress"] {
        assert!(run.stdout.contains(word), "{word}:\n{}", run.stdout);
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_profile(
        dir.path(),
        "t",
        "/opt/venvs/t",
        &good_lock(dir.path()),
        "pyhton = \"/usr/bin/python3\"\n",
    );
    let root = empty_root();
    let run = venvbake(
        &[
            "apply",
            p.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ],
        &[],
    );
    run.expect_code(2);
    run.expect_stderr("t.toml:8:1:");
    run.expect_stderr("unknown field `pyhton`");
    run.expect_stderr("(in `[venv]`)");
    run.expect_stderr("\nhint: ");
    assert_eq!(run.stdout, "");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "the target was touched"
    );
}

#[test]
fn unpinned_and_unhashed_requirements_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("l.txt");
    std::fs::write(
        &lock,
        format!("six==1.16.0 --hash=sha256:{HASH}\n# comment\nidna>=3 --hash=sha256:{HASH}\n"),
    )
    .unwrap();
    let p = write_profile(dir.path(), "t", "/opt/venvs/t", &lock, "");
    let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
    assert_eq!(run.code, 2);
    run.expect_stderr("t.requirements.txt:3: `idna` is not pinned");

    std::fs::write(&lock, "six==1.16.0\n").unwrap();
    let p = write_profile(dir.path(), "t", "/opt/venvs/t", &lock, "");
    let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
    assert_eq!(run.code, 2);
    run.expect_stderr(":1: `six==1.16.0` has no `--hash=sha256:` option");
    run.expect_stderr("hint: ");
}

#[test]
fn missing_requirements_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "schema_version = 1\nname = \"t\"\n[venv]\npath = \"/opt/v/t\"\nrequirements = \"nope.txt\"\n").unwrap();
    let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
    assert_eq!(run.code, 2);
    run.expect_stderr("nope.txt");
    // The profile's line that names it, and the key.
    run.expect_stderr("p.toml:5:16: `venv.requirements`: could not read");
    run.expect_stderr("\nhint: ");
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (
            "[apt]\nlock_timeout_s = \"2\"\n",
            "t.toml:9:18: `apt.lock_timeout_s`: expected an integer, found a string (\"2\")",
        ),
        (
            "[apt]\npackages = \"git\"\n",
            "`apt.packages`: expected an array, found a string (\"git\")",
        ),
        (
            "allow_sdist = 1\n",
            "`venv.allow_sdist`: expected true or false, found an integer (1)",
        ),
    ] {
        let p = write_profile(
            dir.path(),
            "t",
            "/opt/venvs/t",
            &good_lock(dir.path()),
            extra,
        );
        let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
        run.expect_code(2);
        assert!(run.stderr.contains(want), "{extra}: {}", run.stderr);
        assert!(!run.stderr.contains("i64"), "{}", run.stderr);
        run.expect_stderr("hint: see the profile reference");
    }
}

#[test]
fn non_utf8_and_huge_profiles_are_refused_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, b"schema_version = 1\nname = \"\xff\xfe\"\n").unwrap();
    let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
    run.expect_code(2);
    run.expect_stderr("p.toml:2:");
    run.expect_stderr("UTF-8");

    std::fs::write(&p, "#".repeat(2 * 1024 * 1024)).unwrap();
    let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
    run.expect_code(2);
    assert!(!run.stderr.contains("panicked"));
}

#[test]
fn dangerous_venv_path_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["/usr/lib/venv", "/", "/opt/../etc/x", "relative/v"] {
        let p = write_profile(dir.path(), "t", bad, &good_lock(dir.path()), "");
        let run = venvbake(&["plan", p.to_str().unwrap()], &[]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("t.toml:6:"), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("venv.path"), "{bad}: {}", run.stderr);
    }
}

#[test]
fn target_without_apt_is_a_target_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_profile(dir.path(), "t", "/opt/venvs/t", &good_lock(dir.path()), "");
    let root = empty_root();
    for cmd in ["plan", "apply"] {
        let run = venvbake(
            &[
                cmd,
                p.to_str().unwrap(),
                "--root",
                root.path().to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.code, 3, "{cmd}: {}", run.stderr);
        run.expect_stderr("has no apt/dpkg");
        run.expect_stderr("hint: ");
    }
    let run = venvbake(
        &["plan", p.to_str().unwrap(), "--root", "/nonexistent/tree"],
        &[],
    );
    // A root that is not there is a typo on the command line: bad input.
    run.expect_code(2);
}

#[test]
fn inventory_without_manifest_says_what_to_do() {
    let root = empty_root();
    let run = venvbake(&["inventory", "--root", root.path().to_str().unwrap()], &[]);
    run.expect_code(2);
    run.expect_stderr("venvbake apply");
}

#[test]
fn shipped_profile_plans_against_the_example_lock() {
    // The shipped profile and its lock parse; the plan fails only on the empty target.
    let root = empty_root();
    let profile = Path::new(REPO).join("profiles/ansible.toml");
    let run = venvbake(
        &[
            "plan",
            profile.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ],
        &[],
    );
    run.expect_code(3);
}

/// What `--help` says, for the commands people read it for (snapshots).
#[test]
fn help_snapshots() {
    for args in [
        &["--help"][..],
        &["apply", "--help"],
        &["plan", "--help"],
        &["verify", "--help"],
    ] {
        let run = venvbake(args, &[("COLUMNS", "100")]).ok();
        insta::assert_snapshot!(
            format!("help_{}", args[0].trim_start_matches('-')),
            run.stdout
        );
    }
}

#[test]
fn bash_completes_commands_and_options_from_the_generated_script() {
    let script = venvbake(&["completions", "bash"], &[]).ok().stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venvbake.bash");
    std::fs::write(&file, script).unwrap();
    // Real bash runs the completion function as it would on a Tab press.
    let complete = |words: &[&str]| -> String {
        let line = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; _venvbake venvbake \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; echo \"${{COMPREPLY[@]}}\"",
            file.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &line])
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = complete(&["venvbake", "ap"]);
    assert!(first.split_whitespace().any(|w| w == "apply"), "{first}");
    let opts = complete(&["venvbake", "apply", "--whe"]);
    assert!(
        opts.split_whitespace().any(|w| w == "--wheelhouse"),
        "{opts}"
    );
    for shell in ["zsh", "fish"] {
        let run = venvbake(&["completions", shell], &[]).ok();
        assert!(run.stdout.contains("--wheelhouse"), "{shell}");
    }
    venvbake(&["completions", "tcsh"], &[]).expect_code(2);
}

#[test]
fn man_pages_come_from_the_same_definitions_as_help() {
    let page = venvbake(&["man"], &[]).ok().stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH venvbake 1"),
        "{page}"
    );
    assert!(page.contains("venvbake\\-apply(1)"), "{page}");
    assert!(page.contains("Full documentation"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    venvbake(&["man", "--dir", dir.path().to_str().unwrap()], &[]).ok();
    let apply = std::fs::read_to_string(dir.path().join("venvbake-apply.1")).unwrap();
    for option in ["\\-\\-wheelhouse", "\\-\\-format", "\\-\\-cache\\-dir"] {
        assert!(
            apply.contains(option),
            "{option} missing from venvbake-apply.1"
        );
    }
    // One page per command, none missing.
    let help = venvbake(&["--help"], &[]).ok().stdout;
    for line in help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
    {
        let Some(cmd) = line.split_whitespace().next() else {
            break;
        };
        if cmd == "help" {
            continue;
        }
        assert!(
            dir.path().join(format!("venvbake-{cmd}.1")).is_file(),
            "no page for {cmd}"
        );
    }
}
