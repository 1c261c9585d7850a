//! The README's quick start, run exactly as written: the `sh` code blocks
//! between `<!-- walkthrough -->` and `<!-- /walkthrough -->` become one
//! script (`set -eu`), run in an empty directory with the built binaries on
//! `PATH` and the real Nix, inside a private network namespace (so its fixed
//! ports 8080–8082 are its own). A documented command that stops working
//! fails this test.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use vouch_tests::nixtool::NIX_CONFIG;
use vouch_tests::{bin_dir, temp_dir};

/// The walkthrough's shell commands, in order.
fn walkthrough(readme: &str) -> String {
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("README marks the start of the walkthrough");
    let end = readme[start..]
        .find("<!-- /walkthrough -->")
        .expect("README marks the end of the walkthrough")
        + start;
    let mut script = String::new();
    let mut in_sh = false;
    for line in readme[start..end].lines() {
        if in_sh {
            if line.trim_end() == "```" {
                in_sh = false;
                script.push('\n');
            } else {
                script.push_str(line);
                script.push('\n');
            }
        } else if line.trim_end() == "```sh" {
            in_sh = true;
        }
    }
    assert!(!in_sh, "an unclosed code block in the walkthrough");
    script
}

#[test]
fn the_readme_walkthrough_runs_verbatim() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let script = walkthrough(&readme);
    for step in [
        "vouch-log serve",
        "vouch-witness serve",
        "vouch keygen",
        "vouch attest",
        "vouch submit",
        "vouch verify",
        "vouch proof",
        "vouch substituter",
        "nix copy --from http://127.0.0.1:8082",
        "post-build-hook",
        "vouch sender",
    ] {
        assert!(script.contains(step), "the walkthrough shows {step}");
    }
    let dir = temp_dir("walkthrough");
    let work = dir.join("work");
    std::fs::create_dir_all(dir.join("home")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(dir.join("walkthrough.sh"), format!("set -eu\n{script}")).unwrap();
    // A private network namespace: as root directly, otherwise mapped to
    // root in a user namespace.
    let root = rustix::process::geteuid().is_root();
    let ns: &[&str] = if root { &["--net"] } else { &["-r", "--net"] };
    // Output into files: the servers it starts in the background keep
    // their copies open after the script ends.
    let (out_file, err_file) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new("unshare")
        .args(ns)
        .args(["sh", "-c", "ip link set lo up && exec bash \"$0\""])
        .arg(dir.join("walkthrough.sh"))
        .current_dir(&work)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("NIX_CONFIG", NIX_CONFIG)
        .env("HOME", dir.join("home"))
        .env("XDG_CACHE_HOME", dir.join("home/cache"))
        .env("VOUCH_LOG", "warn")
        .process_group(0)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .expect("unshare (util-linux) and bash");
    let status = child.wait().unwrap();
    // The servers it started in the background go with its process group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(
        status.success(),
        "the walkthrough failed:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    // What it printed and left behind is what the README says it does.
    assert_eq!(
        stdout.matches("ACCEPT /nix/store/").count(),
        2,
        "online and offline verify accept:\n{stdout}"
    );
    assert!(stdout.contains("covered by checkpoint"), "{stdout}");
    let copied: Vec<_> = std::fs::read_dir(work.join("other-store/nix/store"))
        .expect("nix copied into the second store")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-hello-vouch"))
        .collect();
    assert_eq!(copied.len(), 1, "Nix substituted hello through vouch");
    let proofs = std::fs::read_dir(work.join("cache"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".vouch"))
        .count();
    assert_eq!(proofs, 2, "proofs for hello and the hooked build");
    let _ = std::fs::remove_dir_all(&dir);
}
