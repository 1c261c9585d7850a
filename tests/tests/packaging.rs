//! Deployment files: every systemd unit in `dist/systemd/` and every unit
//! the NixOS modules generate passes `systemd-analyze verify` (pointed at
//! the real binaries), every Nix file parses with the real `nix`, and the
//! modules and the flake evaluate against the stand-in of
//! `tests/nix/standin.nix` (nixpkgs is not reachable from here, so nothing
//! here builds the package with Nix).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vouch_tests::{bin_dir, temp_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") {
                nix_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

fn nix_env(c: &mut Command) -> &mut Command {
    c.env(
        "NIX_CONFIG",
        "experimental-features = nix-command\nbuild-users-group =",
    )
}

/// `systemd-analyze verify` on `unit` (a file name in `dir`): it must pass
/// without a single complaint.
fn verify_unit(dir: &Path, unit: &str) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join(unit))
        .output()
        .expect("systemd-analyze (Debian's systemd package) must be installed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{unit}: {err}\n{}",
        std::fs::read_to_string(dir.join(unit)).unwrap()
    );
}

#[test]
fn every_systemd_unit_verifies_against_the_real_binaries() {
    let dir = temp_dir("units");
    let bins = bin_dir();
    let units: Vec<PathBuf> = std::fs::read_dir(repo().join("dist/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(units.len() >= 5, "{units:?}");
    for u in &units {
        let text = std::fs::read_to_string(u).unwrap();
        // Each unit runs one of our binaries, hardened.
        assert!(text.contains("ExecStart=/usr/bin/vouch"), "{}", u.display());
        for must in ["NoNewPrivileges=yes", "ProtectSystem=strict", "Restart="] {
            assert!(text.contains(must), "{}: {must}", u.display());
        }
        let name = u.file_name().unwrap().to_str().unwrap();
        std::fs::write(
            dir.join(name),
            text.replace("/usr/bin/", &format!("{}/", bins.display())),
        )
        .unwrap();
        verify_unit(&dir, name);
    }
    // The check can fail: a bad value is a complaint.
    let bad = std::fs::read_to_string(dir.join("vouch-log.service"))
        .unwrap()
        .replace("ProtectSystem=strict", "ProtectSystem=bogus");
    std::fs::write(dir.join("bad.service"), bad).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("bad.service"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    for must in ["flake.nix", "default.nix", "dist/nix/package.nix"] {
        assert!(files.contains(&repo().join(must)), "{must} exists");
    }
    for f in &files {
        let out = nix_env(&mut Command::new("nix-instantiate"))
            .arg("--parse")
            .arg(f)
            .output()
            .expect("nix-instantiate");
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A systemd unit from a module's `systemd.services.<name>` (the parts
/// the modules set), with the stand-in store path replaced by the real
/// binaries' directory.
fn unit_from_module(svc: &Value) -> String {
    let list = |v: &Value| -> String {
        match v {
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Value::Bool(b) => (if *b { "yes" } else { "no" }).into(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("unexpected {other}"),
        }
    };
    let mut u = String::from("[Unit]\n");
    u += &format!("Description={}\n", svc["description"].as_str().unwrap());
    for (k, key) in [("after", "After"), ("wants", "Wants"), ("before", "Before")] {
        if let Some(v) = svc.get(k) {
            u += &format!("{key}={}\n", list(v));
        }
    }
    u += "\n[Service]\n";
    for (k, v) in svc["serviceConfig"].as_object().unwrap() {
        match (k.as_str(), v) {
            ("LoadCredential", Value::Array(a)) => {
                for x in a {
                    u += &format!("LoadCredential={}\n", x.as_str().unwrap());
                }
            }
            _ => u += &format!("{k}={}\n", list(v)),
        }
    }
    for (k, v) in svc["environment"].as_object().unwrap() {
        u += &format!("Environment={k}={}\n", v.as_str().unwrap());
    }
    u += &format!("\n[Install]\nWantedBy={}\n", list(&svc["wantedBy"]));
    u.replace(
        "/nix/store/00000000000000000000000000000000-vouch-0.1.0/bin/",
        &format!("{}/", bin_dir().display()),
    )
}

#[test]
fn the_nixos_modules_and_flake_evaluate_against_the_stand_in() {
    let out = nix_env(&mut Command::new("nix-instantiate"))
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/nix/eval.nix"))
        .output()
        .expect("nix-instantiate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = |m: &str, s: &str| v[m]["config"]["systemd"]["services"][s].clone();

    let log = svc("log", "vouch-log");
    assert!(log["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap()
        .contains("/bin/vouch-log serve --config /nix/store/"));
    assert_eq!(log["serviceConfig"]["Type"], "notify");
    assert_eq!(log["serviceConfig"]["DynamicUser"], true);
    assert_eq!(
        v["log"]["config"]["networking"]["firewall"]["allowedTCPPorts"],
        serde_json::json!([8443]),
        "the firewall port follows `listen`"
    );
    assert_eq!(
        v["logDisabled"]["config"],
        serde_json::json!({}),
        "a disabled module adds nothing"
    );

    let w = svc("witness", "vouch-witness");
    assert_eq!(
        w["serviceConfig"]["LoadCredential"],
        serde_json::json!(["witness.key:/etc/vouch/witness.key"])
    );

    let sub = &v["substituter"]["config"];
    assert_eq!(
        sub["nix"]["settings"]["substituters"],
        serde_json::json!(["http://127.0.0.1:8082"]),
        "Nix substitutes through Vouch only"
    );
    assert!(
        sub["systemd"]["services"]["vouch-substituter"]["serviceConfig"]["ExecStart"]
            .as_str()
            .unwrap()
            .contains("/bin/vouch substituter --config")
    );

    let b = &v["builder"]["config"];
    assert!(b["nix"]["settings"]["post-build-hook"]
        .as_str()
        .unwrap()
        .contains("vouch-post-build-hook"));
    assert!(svc("builder", "vouch-sender")["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap()
        .contains("/bin/vouch sender --log 'https://log.example.org/vouch'"));

    let f = &v["flake"];
    assert_eq!(f["package"]["pname"], "vouch");
    assert!(Path::new(f["package"]["lockFile"].as_str().unwrap()).exists());
    for m in [
        "vouch-log",
        "vouch-witness",
        "vouch-substituter",
        "vouch-builder",
        "default",
    ] {
        assert!(
            f["modules"].as_array().unwrap().iter().any(|x| x == m),
            "{m}"
        );
    }
    assert!(f["apps"]["vouch-log"]
        .as_str()
        .unwrap()
        .ends_with("/bin/vouch-log"));
    assert_eq!(v["nonFlake"]["package"], "vouch");

    // The units the modules generate verify too.
    let dir = temp_dir("module-units");
    for (m, s) in [
        ("log", "vouch-log"),
        ("witness", "vouch-witness"),
        ("substituter", "vouch-substituter"),
        ("builder", "vouch-sender"),
    ] {
        let name = format!("{s}.service");
        std::fs::write(dir.join(&name), unit_from_module(&svc(m, s))).unwrap();
        verify_unit(&dir, &name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
