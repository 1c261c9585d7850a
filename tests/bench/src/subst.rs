//! The latency `vouch substituter` adds per narinfo: the same random
//! narinfos fetched from a binary cache directly and through the
//! substituter (which looks each up in the log and checks its inclusion
//! proof against its warm tile cache), one request at a time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use vouch_spec::nix::NixSecretKey;

use crate::gen;
use crate::sys::{self, Rng};

/// Latency figures, milliseconds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct SubstReport {
    /// Narinfos fetched per pass.
    pub narinfos: usize,
    /// Straight from the cache: median.
    pub direct_p50_ms: f64,
    /// Straight from the cache: 99th percentile.
    pub direct_p99_ms: f64,
    /// Through the substituter, tiles warm: median.
    pub proxied_p50_ms: f64,
    /// Through the substituter, tiles warm: 99th percentile.
    pub proxied_p99_ms: f64,
    /// Added at the median.
    pub added_p50_ms: f64,
    /// Added at the 99th percentile.
    pub added_p99_ms: f64,
}

/// A tiny binary cache serving the narinfos of the chosen entries.
fn upstream(narinfos: HashMap<String, String>) -> anyhow::Result<String> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", l.local_addr()?);
    let narinfos = Arc::new(narinfos);
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let narinfos = narinfos.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut w = match conn.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" || h == "\n" {
                            break;
                        }
                    }
                    let body = if path == "/nix-cache-info" {
                        Some("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n".to_string())
                    } else {
                        narinfos.get(path.trim_start_matches('/')).cloned()
                    };
                    let resp = match body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/x-nix-narinfo\r\nContent-Length: {}\r\n\r\n{b}",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
                    };
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pass(agent: &ureq::Agent, base: &str, names: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(names.len());
    for n in names {
        let t = Instant::now();
        let r = agent.get(&format!("{base}/{n}")).call();
        let body = match r {
            Ok(r) => r.into_string()?,
            Err(e) => bail!("GET {base}/{n}: {e}"),
        };
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if !body.starts_with("StorePath: ") {
            bail!("GET {base}/{n}: not a narinfo");
        }
    }
    Ok(lat)
}

/// Measures `n` random narinfos among entries `0..size` of the log at
/// `log` (whose vkey is `log_vkey`), with `vouch` the client binary.
pub fn measure(
    vouch: &Path,
    work: &Path,
    log: &str,
    log_vkey: &str,
    keys: &[NixSecretKey],
    size: u64,
    n: usize,
) -> anyhow::Result<SubstReport> {
    let mut rng = Rng::new(7);
    let picks: Vec<u64> = (0..n).map(|_| rng.below(size)).collect();
    let narinfos: HashMap<String, String> = picks
        .iter()
        .map(|&i| {
            (
                format!("{}.narinfo", gen::store_path(i).hash_part()),
                gen::narinfo(keys, i),
            )
        })
        .collect();
    let names: Vec<String> = picks
        .iter()
        .map(|&i| format!("{}.narinfo", gen::store_path(i).hash_part()))
        .collect();
    let up = upstream(narinfos)?;
    std::fs::create_dir_all(work)?;
    let policy = work.join("policy");
    std::fs::write(&policy, format!("log {log_vkey}\nquorum none\n"))?;
    let trusted: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.public().to_string()))
        .collect();
    let config = work.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "log_url = {log:?}\npolicy_file = {:?}\ntrusted_builders = [{}]\nrequired_builders = 1\nstate_dir = {:?}\n",
            policy.display().to_string(),
            trusted.join(", "),
            work.join("state").display().to_string()
        ),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _proc = Kill(
        Command::new(vouch)
            .args(["substituter", "--config"])
            .arg(&config)
            .args(["--upstream", &up, "--listen", &format!("127.0.0.1:{port}")])
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", vouch.display()))?,
    );
    let proxy = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let t = Instant::now();
    while agent
        .get(&format!("{proxy}/nix-cache-info"))
        .call()
        .is_err()
    {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("substituter did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Warm: the substituter caches the tiles it verified.
    pass(&agent, &proxy, &names)?;
    let mut direct = pass(&agent, &up, &names)?;
    let mut proxied = pass(&agent, &proxy, &names)?;
    let (d50, d99) = (
        sys::quantile(&mut direct, 0.5),
        sys::quantile(&mut direct, 0.99),
    );
    let (p50, p99) = (
        sys::quantile(&mut proxied, 0.5),
        sys::quantile(&mut proxied, 0.99),
    );
    Ok(SubstReport {
        narinfos: n,
        direct_p50_ms: d50,
        direct_p99_ms: d99,
        proxied_p50_ms: p50,
        proxied_p99_ms: p99,
        added_p50_ms: p50 - d50,
        added_p99_ms: p99 - d99,
    })
}
