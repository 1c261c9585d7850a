//! The `vouch-log` command line: key files and refusals.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vouch-log"))
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vouch-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    let d = temp("keygen");
    let key = d.join("log.key");
    let out = bin()
        .args(["keygen", "--origin", "log.example/x", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let vkey = String::from_utf8(out.stdout).unwrap();
    assert!(vkey.starts_with("log.example/x+"), "{vkey}");
    vouch_spec::note::Ed25519Verifier::from_vkey(vkey.trim()).unwrap();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+log.example/x+"));
    // Never overwrites.
    let again = bin()
        .args(["keygen", "--origin", "log.example/x", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn serve_refuses_keys_others_can_read_and_wrong_origins() {
    let d = temp("serve");
    let key = d.join("log.key");
    assert!(bin()
        .args(["keygen", "--origin", "log.example/x", "--out"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin()
        .args([
            "serve",
            "--origin",
            "log.example/x",
            "--listen",
            "127.0.0.1:0",
            "--key",
        ])
        .arg(&key)
        .arg("--data-dir")
        .arg(d.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !err.contains("PRIVATE+KEY"),
        "the key must never be printed"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = bin()
        .args([
            "serve",
            "--origin",
            "log.example/other",
            "--listen",
            "127.0.0.1:0",
            "--key",
        ])
        .arg(&key)
        .arg("--data-dir")
        .arg(d.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("origin"));
    let help = bin().args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--data-dir"));
    let _ = std::fs::remove_dir_all(&d);
}
