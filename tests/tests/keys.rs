//! Private keys: the log and the witness refuse key files others can read,
//! and never write key material to their logs, even at `trace`.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use vouch_tests::{attestation, binary, builder, free_port, temp_dir, wait_port};

/// The secret part of a C2SP `PRIVATE+KEY+name+hash+secret` file.
fn secret_of(key_file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(key_file).unwrap();
    // (The base64 may itself contain '+'.)
    text.trim().splitn(5, '+').nth(4).unwrap().to_string()
}

/// Kills a server and checks what it logged: something (logging was on),
/// and never its key.
fn stop_and_check_log(mut child: std::process::Child, log_file: &std::path::Path, secret: &str) {
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(log_file).unwrap();
    assert!(logged.contains("INFO"), "{logged}");
    assert!(!logged.contains(secret), "the key was logged");
}

#[test]
fn the_witness_refuses_readable_keys_and_never_logs_them() {
    let dir = temp_dir("keys-witness");
    let key = dir.join("witness.key");
    let out = Command::new(binary("vouch-witness"))
        .args(["keygen", "--name", "w.vouch.test", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let secret = secret_of(&key);
    let port = free_port();
    std::fs::write(
        dir.join("w.toml"),
        format!(
            "key_file = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
            key.display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    let serve = || {
        let mut c = Command::new(binary("vouch-witness"));
        c.args(["serve", "--config"])
            .arg(dir.join("w.toml"))
            .env("VOUCH_LOG", "trace");
        c
    };
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = serve().output().unwrap();
        assert!(!out.status.success(), "served with a {mode:o} key");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains(&secret), "the key was printed: {err}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log_file = dir.join("stderr.log");
    let child = serve()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    wait_port(port);
    let _ = ureq::post(&format!("http://127.0.0.1:{port}/add-checkpoint"))
        .send_bytes(b"old 0\n\nnot a checkpoint\n");
    std::thread::sleep(Duration::from_millis(200));
    stop_and_check_log(child, &log_file, &secret);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_log_never_logs_its_key_while_signing() {
    let (dir, _vkey) = vouch_tests::log_keygen();
    let secret = secret_of(&dir.join("log.key"));
    let port = free_port();
    let log_file = dir.join("stderr.log");
    let child = Command::new(binary("vouch-log"))
        .args(["serve", "--origin", vouch_tests::ORIGIN, "--key"])
        .arg(dir.join("log.key"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("VOUCH_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    wait_port(port);
    let r = ureq::post(&format!("http://127.0.0.1:{port}/vouch/v1/submit?wait=1"))
        .set("Content-Type", "text/plain")
        .send_bytes(&attestation(&builder(1), 1, 0).encode())
        .unwrap();
    assert_eq!(r.status(), 200);
    stop_and_check_log(child, &log_file, &secret);
    let _ = std::fs::remove_dir_all(&dir);
}
