//! The tools venvbake is used from, run for real: Packer (1.6.6 from Debian)
//! provisioning a tree over SSH with the shipped template, Ansible through
//! its chroot connection with the variables `venvbake inventory` prints, and
//! cloud-init running the shipped `runcmd` inside a tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn host_tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("`{name}` is missing on this host: run `sudo scripts/test-deps` (the README's test command does)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An sshd inside the tree on a loopback port, root login by key only.
struct Sshd {
    child: std::process::Child,
    port: u16,
    key: std::path::PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(tree: &Tree, scratch: &Path) -> Sshd {
    tree.apt_install(&["openssh-server", "sudo"]);
    std::fs::create_dir_all(tree.path("/run/sshd")).unwrap();
    std::fs::create_dir_all(tree.path("/root/.ssh")).unwrap();
    tree.run(&["ssh-keygen", "-A"]).ok();
    tree.run(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        "/root/.ssh/id_packer",
    ])
    .ok();
    std::fs::copy(
        tree.path("/root/.ssh/id_packer.pub"),
        tree.path("/root/.ssh/authorized_keys"),
    )
    .unwrap();
    let key = scratch.join("id_packer");
    std::fs::copy(tree.path("/root/.ssh/id_packer"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port = free_port();
    let mut child = Command::new("/usr/sbin/chroot")
        .arg(&tree.root)
        .args(["/usr/sbin/sshd", "-D", "-e", "-p", &port.to_string()])
        .args([
            "-o",
            "ListenAddress=127.0.0.1",
            "-o",
            "UsePAM=no",
            "-o",
            "PermitRootLogin=prohibit-password",
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // sshd says "Server listening" on stderr once it accepts connections.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "sshd exited before listening"
        );
        if line.contains("Server listening") {
            break;
        }
    }
    std::thread::spawn(move || for _ in err.lines() {});
    Sshd { child, port, key }
}

#[test]
fn packer_template_provisions_a_tree_over_ssh() {
    let packer = host_tool("packer");
    // The shipped template validates with Packer 1.6.6 as it is (the file
    // provisioner checks that the binary it uploads exists).
    let validate = Command::new(&packer)
        .arg("validate")
        .arg(format!("-var=venvbake_binary={BIN}"))
        .arg("packer/golden.pkr.hcl")
        .current_dir(REPO)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "packer validate:\n{}",
        String::from_utf8_lossy(&validate.stdout)
    );

    with_tree("bookworm", move |tree| {
        let scratch = tempfile::tempdir().unwrap();
        let sshd = start_sshd(tree, scratch.path());
        let out = scratch.path().join("out");
        let home = scratch.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let build = Command::new(&packer)
            .args(["build", "-only=null.existing", "-color=false"])
            .arg(format!("-var=venvbake_binary={BIN}"))
            .arg(format!("-var=profile_dir={REPO}/profiles"))
            .arg("-var=profile_name=ansible")
            .arg(format!("-var=wheelhouse={}", wheelhouse().display()))
            .arg(format!("-var=output_dir={}", out.display()))
            .arg("-var=ssh_username=root")
            .arg(format!("-var=ssh_port={}", sshd.port))
            .arg(format!("-var=ssh_private_key_file={}", sshd.key.display()))
            .arg("packer/golden.pkr.hcl")
            .current_dir(REPO)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("CHECKPOINT_DISABLE", "1")
            .env("PACKER_CACHE_DIR", scratch.path().join("cache"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&build.stdout).into_owned()
            + &String::from_utf8_lossy(&build.stderr);
        assert!(build.status.success(), "packer build failed:\n{log}");
        // venvbake's plain step lines appear in Packer's log.
        assert!(
            log.contains("and install 19 pinned requirements offline from the wheelhouse"),
            "{log}"
        );

        // The venv works in the provisioned system, and the downloads describe it.
        tree.run(&[
            "/opt/venvs/ansible/bin/python",
            "-c",
            "import ansible, gitlab, lxml, jmespath, netaddr",
        ])
        .ok();
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("venvbake-manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["interpreter"], "/opt/venvs/ansible/bin/python");
        assert_eq!(manifest, tree.read_json("/var/lib/venvbake/ansible.json"));
        let inventory = std::fs::read_to_string(out.join("inventory.yml")).unwrap();
        assert!(
            inventory.contains("ansible_python_interpreter: \"/opt/venvs/ansible/bin/python\""),
            "{inventory}"
        );
        let pm: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("packer-manifest.json")).unwrap(),
        )
        .unwrap();
        let custom = &pm["builds"][0]["custom_data"];
        assert_eq!(
            custom["venvbake_interpreter"],
            "/opt/venvs/ansible/bin/python"
        );
        assert_eq!(custom["venvbake_profile"], "ansible");
        let sbom: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("sbom.cdx.json")).unwrap())
                .unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX");
        assert_eq!(
            custom["venvbake_sbom"],
            format!("{}/sbom.cdx.json", out.display())
        );
        // The uploads were cleaned out of the image.
        assert!(!tree.path("/tmp/venvbake").exists());
        drop(sshd);
    });
}

const PLAYBOOK: &str = r#"
- name: Use the baked venv through the interpreter venvbake printed
  hosts: image
  gather_facts: false
  tasks:
    - name: The venv interpreter answers
      ansible.builtin.ping:

    - name: Facts include ansible_local.venvbake
      ansible.builtin.setup:
        filter: ansible_local

    - name: The fact names the same interpreter
      ansible.builtin.assert:
        that:
          - ansible_local.venvbake.profiles.ansible.interpreter == ansible_python_interpreter

    - name: community.general.xml needs lxml, which only the venv has
      community.general.xml:
        path: /etc/app/config.xml
        xpath: /config/debug
        value: "false"

    - name: python-gitlab imports from the venv
      ansible.builtin.command:
        argv: ["{{ ansible_python_interpreter }}", "-c", "import gitlab; print('gitlab', gitlab.__version__)"]
      register: gitlab
      changed_when: false

    - name: The same xml task with the system Python fails for want of lxml
      community.general.xml:
        path: /etc/app/config.xml
        xpath: /config/debug
        value: "true"
      vars:
        ansible_python_interpreter: /usr/bin/python3
      register: system_xml
      ignore_errors: true

    - name: Only the venv made it work
      ansible.builtin.assert:
        that:
          - system_xml is failed
          - "'lxml' in system_xml.msg"
          - "'gitlab' in gitlab.stdout"
"#;

#[test]
fn ansible_uses_the_venv_through_the_chroot_connection() {
    let playbook_bin = host_tool("ansible-playbook");
    with_tree("bookworm", move |tree| {
        tree.apply(&Path::new(REPO).join("profiles/ansible.toml"), &[])
            .ok();
        tree.mount_proc();
        std::fs::create_dir_all(tree.path("/etc/app")).unwrap();
        std::fs::write(
            tree.path("/etc/app/config.xml"),
            "<config><debug>true</debug></config>\n",
        )
        .unwrap();

        // The inventory: venvbake's variables plus one host, the tree, through chroot.
        let vars = venvbake(
            &[
                "inventory",
                "--root",
                tree.root.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[],
        )
        .ok();
        let mut inv: serde_json::Value = serde_json::from_str(&vars.stdout).unwrap();
        inv["all"]["hosts"] = serde_json::json!({
            "image": {
                "ansible_host": tree.root.to_str().unwrap(),
                "ansible_connection": "community.general.chroot"
            }
        });
        let scratch = tempfile::tempdir().unwrap();
        let inv_path = scratch.path().join("inventory.json");
        std::fs::write(&inv_path, inv.to_string()).unwrap();
        let play = scratch.path().join("play.yml");
        std::fs::write(&play, PLAYBOOK).unwrap();
        let out = Command::new(&playbook_bin)
            .arg("-i")
            .arg(&inv_path)
            .arg(&play)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", scratch.path())
            .env("LC_ALL", "C.UTF-8")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", scratch.path().join("tmp"))
            .env("ANSIBLE_REMOTE_TMP", "/tmp")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ansible-playbook failed:\n{log}");
        assert!(log.contains("failed=0"), "{log}");
        assert!(
            log.contains("...ignoring"),
            "the system-Python xml task failed as it must:\n{log}"
        );
        let xml = std::fs::read_to_string(tree.path("/etc/app/config.xml")).unwrap();
        assert!(xml.contains("<debug>false</debug>"), "{xml}");
    });
}

#[test]
fn shipped_cloud_config_is_current() {
    let out = venvbake(
        &["cloud-config", &format!("{REPO}/profiles/ansible.toml")],
        &[],
    )
    .ok();
    let shipped =
        std::fs::read_to_string(Path::new(REPO).join("cloud-init/user-data.yaml")).unwrap();
    assert_eq!(
        out.stdout, shipped,
        "regenerate: venvbake cloud-config profiles/ansible.toml > cloud-init/user-data.yaml"
    );
}

/// cloud-init itself, installed in a tree, runs the shipped user-data's
/// `runcmd` from a NoCloud seed. Its stages run chrooted in new UTS, network,
/// PID and mount namespaces, so the host is untouched and there is no network:
/// the build is offline from the wheelhouse the image carries.
#[test]
fn cloud_init_runcmd_bakes_the_venv_at_first_boot() {
    with_tree("bookworm", |tree| {
        tree.apt_install(&["cloud-init", "python3.11-venv"]);
        std::fs::copy(BIN, tree.path("/usr/local/bin/venvbake")).unwrap();
        let wheels = tree.path("/var/cache/venvbake/wheels");
        copy_wheels(&wheelhouse(), &wheels, |_| true);
        let seed = tree.path("/var/lib/cloud/seed/nocloud");
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::copy(
            Path::new(REPO).join("cloud-init/user-data.yaml"),
            seed.join("user-data"),
        )
        .unwrap();
        std::fs::write(
            seed.join("meta-data"),
            "instance-id: venvbake-e2e\nlocal-hostname: golden\n",
        )
        .unwrap();
        // Modules that need a real VM (locale generation, SSH host keys, disk
        // resizing) are left out; what the shipped user-data uses stays in.
        std::fs::write(
            tree.path("/etc/cloud/cloud.cfg.d/99-venvbake-e2e.cfg"),
            "datasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\ncloud_init_modules: [write_files]\ncloud_config_modules: [runcmd]\ncloud_final_modules: [scripts_user, final_message]\n",
        )
        .unwrap();

        // cloud-init's own schema check accepts the shipped user-data.
        let schema = tree.run(&[
            "cloud-init",
            "schema",
            "--config-file",
            "/var/lib/cloud/seed/nocloud/user-data",
        ]);
        assert_eq!(
            schema.code, 0,
            "cloud-init schema:\n{}\n{}",
            schema.stdout, schema.stderr
        );

        let proc_dir = tree.path("/proc");
        let _ = nix::mount::umount2(&proc_dir, nix::mount::MntFlags::MNT_DETACH);
        let stages = "cloud-init init --local && cloud-init init && cloud-init modules --mode=config && cloud-init modules --mode=final";
        let out = Command::new("/usr/bin/unshare")
            .args(["--uts", "--net", "--pid", "--mount", "--fork"])
            .arg(format!("--mount-proc={}", proc_dir.display()))
            .arg("/usr/sbin/chroot")
            .arg(&tree.root)
            .args(["/bin/sh", "-c", stages])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = std::fs::read_to_string(tree.path("/var/log/cloud-init-output.log"))
            .unwrap_or_default();
        assert!(
            out.status.success(),
            "cloud-init stages failed:\n{}\n{}\n--- cloud-init-output.log ---\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            log.contains("not waiting for cloud-init: venvbake runs under cloud-init"),
            "{log}"
        );
        assert!(log.contains("profile `ansible` applied"), "{log}");
        tree.run(&[
            "/opt/venvs/ansible/bin/python",
            "-c",
            "import ansible, gitlab, lxml, jmespath, netaddr",
        ])
        .ok();
        let m = tree.read_json("/var/lib/venvbake/ansible.json");
        assert_eq!(m["interpreter"], "/opt/venvs/ansible/bin/python");
        // (instance/ is an absolute symlink: ask inside the tree.)
        tree.run(&["test", "-e", "/var/lib/cloud/instance/boot-finished"])
            .ok();
    });
}

/// `ansible/bootstrap.yml` with the role's variables for the shipped
/// profile and the test wheelhouse, by `ansible_playbook` (its folder first
/// on PATH), in check mode or not; its output (it must succeed).
fn bootstrap_play(ansible_playbook: &str, inv: &Path, scratch: &Path, check: bool) -> String {
    let (ok, log) = bootstrap_play_with(
        ansible_playbook,
        inv,
        scratch,
        check,
        &Path::new(REPO).join("profiles/ansible.toml"),
    );
    assert!(ok, "ansible-playbook failed:\n{log}");
    log
}

/// [`bootstrap_play`] with another profile: whether it succeeded, and its output.
fn bootstrap_play_with(
    ansible_playbook: &str,
    inv: &Path,
    scratch: &Path,
    check: bool,
    profile: &Path,
) -> (bool, String) {
    let bin_dir = Path::new(ansible_playbook).parent().unwrap();
    let mut cmd = Command::new(ansible_playbook);
    cmd.arg("-i")
        .arg(inv)
        .arg(Path::new(REPO).join("ansible/bootstrap.yml"))
        .args(["--forks", "3"])
        .arg("-e")
        .arg(format!("venvbake_binary={BIN}"))
        .arg("-e")
        .arg(format!("venvbake_profile={}", profile.display()))
        .arg("-e")
        .arg(format!("venvbake_wheelhouse={}", wheelhouse().display()));
    if check {
        cmd.arg("--check");
    }
    let out = cmd
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()),
        )
        .env("HOME", scratch)
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_LOCAL_TEMP", scratch.join("tmp"))
        .env("ANSIBLE_REMOTE_TMP", "/tmp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), log)
}

/// The PLAY RECAP line of `host`.
fn recap(log: &str, host: &str) -> String {
    log.lines()
        .find(|l| l.starts_with(host) && l.contains("ok="))
        .unwrap_or_else(|| panic!("no recap for {host}:\n{log}"))
        .to_string()
}

/// dpkg's status and whether anything is at the venv path: what check mode
/// must leave as it found it.
fn host_state(root: &Path) -> (Vec<u8>, bool) {
    (
        std::fs::read(root.join("var/lib/dpkg/status")).unwrap(),
        root.join("opt/venvs/ansible").exists()
            || root.join("opt/venvs/ansible.generations").exists(),
    )
}

/// The shipped role and example playbook, with Debian's ansible-playbook,
/// against three hosts of two releases at once (`forks` 3) through the
/// chroot connection: check mode on fresh hosts changes nothing; the first
/// run builds and the next play runs on the venv (lxml) and from it with
/// apt (respawned under the system Python); the second run reports
/// changed=0; a host venvbake cannot serve fails with venvbake's message.
#[test]
fn the_ansible_role_bootstraps_three_hosts_of_two_releases() {
    let playbook_bin = host_tool("ansible-playbook");
    with_tree("bookworm", move |first| {
        first.apt_install(&["python3-apt"]);
        let first_root = first.root.clone();
        with_tree("bookworm", move |second| {
            second.apt_install(&["python3-apt"]);
            let second_root = second.root.clone();
            with_tree("trixie", move |third| {
                third.apt_install(&["python3-apt"]);
                let roots = [first_root.clone(), second_root.clone(), third.root.clone()];
                let hosts = ["bookworm-a", "bookworm-b", "trixie"];
                let scratch = tempfile::tempdir().unwrap();
                // The inventory already names the venv's interpreter (as
                // `venvbake inventory` prints it): the role runs on the system's
                // Python all the same, before the venv exists.
                let inventory = serde_json::json!({ "all": {
                    "vars": { "ansible_python_interpreter": "/opt/venvs/ansible/bin/python" },
                    "hosts": {
                        "bookworm-a": { "ansible_host": roots[0], "ansible_connection": "community.general.chroot" },
                        "bookworm-b": { "ansible_host": roots[1], "ansible_connection": "community.general.chroot" },
                        "trixie": { "ansible_host": roots[2], "ansible_connection": "community.general.chroot" },
                }}});
                let inv = scratch.path().join("inventory.json");
                std::fs::write(&inv, inventory.to_string()).unwrap();
                let play = |check: bool| bootstrap_play(&playbook_bin, &inv, scratch.path(), check);

                // Check mode on fresh hosts: it would change, and changes nothing.
                let before: Vec<_> = roots.iter().map(|r| host_state(r)).collect();
                let log = play(true);
                for (host, (root, before)) in hosts.iter().zip(roots.iter().zip(&before)) {
                    assert!(recap(&log, host).contains("changed=1"), "{log}");
                    assert_eq!(&host_state(root), before, "check mode changed {host}");
                    assert!(!root.join("etc/app/config.xml").exists());
                }

                // The first run builds, then the next play runs on the venv.
                let log = play(false);
                for (host, root) in hosts.iter().zip(&roots) {
                    assert!(recap(&log, host).contains("failed=0"), "{log}");
                    let xml = std::fs::read_to_string(root.join("etc/app/config.xml")).unwrap();
                    assert!(xml.contains("<debug>false</debug>"), "{xml}");
                    let manifest: serde_json::Value = serde_json::from_str(
                        &std::fs::read_to_string(root.join("var/lib/venvbake/ansible.json"))
                            .unwrap(),
                    )
                    .unwrap();
                    assert_eq!(manifest["interpreter"], "/opt/venvs/ansible/bin/python");
                    // No staging folder is left on the host.
                    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
                        .unwrap()
                        .flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("venvbake-"))
                        .collect();
                    assert!(left.is_empty(), "{left:?}");
                }
                // Idempotent: the second run changes nothing anywhere.
                let log = play(false);
                for host in hosts {
                    assert!(recap(&log, host).contains("changed=0"), "{log}");
                }
                // Check mode on built hosts: nothing would change.
                let log = play(true);
                for host in hosts {
                    assert!(recap(&log, host).contains("changed=0"), "{log}");
                }
                // A host venvbake cannot serve (here: the profile's interpreter
                // is missing) fails with venvbake's own message and exit code,
                // and the staging folder is still removed.
                let broken = scratch.path().join("broken");
                std::fs::create_dir_all(&broken).unwrap();
                std::fs::copy(
                    Path::new(REPO).join("profiles/ansible.requirements.txt"),
                    broken.join("ansible.requirements.txt"),
                )
                .unwrap();
                std::fs::write(
                broken.join("broken.toml"),
                "schema_version = 1\nname = \"broken\"\n\n[venv]\npath = \"/opt/venvs/broken\"\npython = \"/usr/bin/python9\"\nrequirements = \"ansible.requirements.txt\"\n",
            )
            .unwrap();
                let (ok, log) = bootstrap_play_with(
                    &playbook_bin,
                    &inv,
                    scratch.path(),
                    false,
                    &broken.join("broken.toml"),
                );
                assert!(!ok, "{log}");
                assert!(
                    log.contains("venvbake apply failed with exit code 3"),
                    "{log}"
                );
                assert!(log.contains("/usr/bin/python9"), "{log}");
                assert!(log.contains("hint: "), "{log}");
                for root in &roots {
                    assert!(!root.join("opt/venvs/broken").exists());
                    let left = std::fs::read_dir(root.join("tmp"))
                        .unwrap()
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("venvbake-"));
                    assert!(!left, "a staging folder was left behind");
                }
            });
        });
    });
}

/// ansible-core from PyPI (the `ansible` 12 package, in a venv on the host)
/// runs the role against three hosts of three releases, one of them over
/// SSH (sshd inside its tree on a loopback port): the first run builds and
/// the next play uses the venv, the second reports changed=0 everywhere.
#[test]
fn the_role_with_ansible_core_from_pypi_over_chroot_and_ssh() {
    let ansible = pypi_ansible();
    let playbook_bin = ansible.join("bin/ansible-playbook").display().to_string();
    with_tree("bookworm", move |a| {
        a.apt_install(&["python3-apt"]);
        let a_root = a.root.clone();
        with_tree("trixie", move |b| {
            b.apt_install(&["python3-apt"]);
            let scratch = tempfile::tempdir().unwrap();
            let sshd = start_sshd(b, scratch.path());
            let b_root = b.root.clone();
            with_tree("forky", move |c| {
                c.apt_install(&["python3-apt"]);
                let roots = [a_root.clone(), b_root.clone(), c.root.clone()];
                let inventory = serde_json::json!({ "all": { "hosts": {
                    "bookworm": { "ansible_host": roots[0], "ansible_connection": "community.general.chroot" },
                    "trixie": { "ansible_host": "127.0.0.1", "ansible_port": sshd.port,
                                "ansible_user": "root", "ansible_connection": "ssh",
                                "ansible_ssh_private_key_file": sshd.key },
                    "forky": { "ansible_host": roots[2], "ansible_connection": "community.general.chroot" },
                }}});
                let inv = scratch.path().join("inventory.json");
                std::fs::write(&inv, inventory.to_string()).unwrap();
                let hosts = ["bookworm", "trixie", "forky"];
                let log = bootstrap_play(&playbook_bin, &inv, scratch.path(), false);
                for (host, root) in hosts.iter().zip(&roots) {
                    assert!(recap(&log, host).contains("failed=0"), "{log}");
                    let xml = std::fs::read_to_string(root.join("etc/app/config.xml")).unwrap();
                    assert!(xml.contains("<debug>false</debug>"), "{host}: {xml}");
                }
                let log = bootstrap_play(&playbook_bin, &inv, scratch.path(), false);
                for host in hosts {
                    assert!(recap(&log, host).contains("changed=0"), "{log}");
                }
            });
        });
    });
}

/// ansible-lint (from PyPI) passes on the role and the example playbook.
#[test]
fn the_role_and_the_example_playbook_pass_ansible_lint() {
    let ansible = pypi_ansible();
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(ansible.join("bin/ansible-lint"))
        .arg("ansible/")
        .current_dir(REPO)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", ansible.join("bin").display()),
        )
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env("ANSIBLE_LINT_SKIP_VERSION_CHECK", "1")
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ansible-lint:\n{log}");
    assert!(log.contains("0 failure(s), 0 warning(s)"), "{log}");
}
