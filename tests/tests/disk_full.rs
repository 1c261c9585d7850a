//! A full disk: the log's data directory on a small tmpfs (mounted here, as
//! root or through passwordless sudo). Writes that do not fit are refused with
//! 503 and a reason, nothing acknowledged is lost or half-written, reads keep
//! working, and the log takes submissions again once space returns.

use std::process::Command;

use vouch_spec::checkpoint::open_checkpoint;
use vouch_spec::note::Ed25519Verifier;
use vouch_tests::{attestation, builder, log_keygen, Log};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = privileged("umount").arg("-l").arg(&self.0).status();
    }
}

/// `cmd` as root: directly when we are root (as CI runs), else through
/// passwordless sudo (as `scripts/install-deps` uses).
fn privileged(cmd: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        Command::new(cmd)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", cmd]);
        c
    }
}

fn size(log: &Log) -> u64 {
    let v = Ed25519Verifier::from_vkey(&log.vkey).unwrap();
    let (status, cp) = log.get("/checkpoint");
    assert_eq!(status, 200, "reads keep working");
    open_checkpoint(&cp, &[&v]).unwrap().checkpoint.size
}

fn batch(from: u64) -> Vec<u8> {
    (from..from + 200)
        .flat_map(|i| attestation(&builder(1), i, 0).encode())
        .collect()
}

/// A log whose data directory is a fresh 24 MiB tmpfs, most of it taken
/// by a ballast file (returned, to free later).
fn log_on_small_disk(ballast_mib: usize, config: &str) -> (Log, Mount, std::path::PathBuf) {
    let (dir, vkey) = log_keygen();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ok = privileged("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&data)
        .status()
        .expect("running mount");
    assert!(
        ok.success(),
        "mounting a tmpfs needs root or passwordless sudo"
    );
    let mount = Mount(data.clone());
    let ballast = data.join("ballast");
    std::fs::write(&ballast, vec![0u8; ballast_mib << 20]).unwrap();
    (Log::start_in(dir, vkey, config, true), mount, ballast)
}

/// Submits batches of 200 until one is refused; returns the entries
/// acknowledged and the refusal's status and reason.
fn fill(log: &Log) -> (u64, u16, String) {
    let mut acked = 0u64;
    for round in 0..400u64 {
        let (status, body) = log.submit(&batch(round * 200), false);
        if status != 200 {
            assert!(acked > 0, "some batches fitted");
            return (acked, status, String::from_utf8_lossy(&body).into_owned());
        }
        acked = (round + 1) * 200;
    }
    panic!("the disk never filled up");
}

/// Frees the ballast; the log must take a batch again (without a restart)
/// and keep it across SIGKILL and a restart.
fn resumes_after_freeing(log: &mut Log, ballast: &std::path::Path, acked: u64) {
    std::fs::remove_file(ballast).unwrap();
    let resumed = (0..50).any(|_| {
        let ok = log.submit(&batch(acked), false).0 == 200;
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    });
    assert!(
        resumed,
        "the log resumes once space returns, without a restart"
    );
    assert_eq!(size(log), acked + 200);
    log.restart();
    assert_eq!(size(log), acked + 200);
}

#[test]
fn a_full_disk_refuses_writes_with_503_loses_nothing_and_recovers() {
    let (mut log, _m, ballast) = log_on_small_disk(14, "min_free_disk_bytes = 4194304");
    let (acked, status, reason) = fill(&log);
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("not logged") && reason.contains("disk nearly full"),
        "{reason}"
    );
    // Nothing half-written: the served size is exactly what was acknowledged,
    // and it stays so while the disk is full.
    assert_eq!(size(&log), acked);
    assert_eq!(log.submit(&batch(acked), false).0, 503);
    assert_eq!(size(&log), acked);
    let (s, _) = log.get(&format!("/vouch/v1/bundle/{}", acked - 1));
    assert_eq!(s, 200);
    resumes_after_freeing(&mut log, &ballast, acked);
}

/// The same with the free-space check off, so the database itself meets
/// ENOSPC mid-write (as it would when the check is fooled, say by another
/// writer on the filesystem): the write fails, nothing acknowledged is lost
/// or half-written, reads keep working, and once space returns the log
/// takes writes again without a restart.
#[test]
fn a_write_failing_under_the_database_loses_nothing_and_recovers() {
    let (mut log, _m, ballast) = log_on_small_disk(12, "min_free_disk_bytes = 0");
    let (acked, status, reason) = fill(&log);
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("not logged") && reason.contains("No space left"),
        "{reason}"
    );
    assert_eq!(size(&log), acked);
    let (s, _) = log.get(&format!("/vouch/v1/bundle/{}", acked - 1));
    assert_eq!(s, 200);
    let hp = vouch_tests::store_path(acked - 1).hash_part().to_string();
    assert_eq!(log.get(&format!("/vouch/v1/lookup/{hp}")).0, 200);
    resumes_after_freeing(&mut log, &ballast, acked);
}
