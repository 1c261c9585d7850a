//! Helpers for end-to-end tests: start the real binaries on loopback with
//! their own data directories, talk to them over HTTP, kill them.
#![forbid(unsafe_code)]

pub mod garage;
pub mod lying;
pub mod nixtool;
pub mod static_log;
pub mod tls;
pub mod webdriver;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vouch_spec::attestation::Attestation;
use vouch_spec::nix::{NixSecretKey, StorePath};

/// The directory holding the workspace's built binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

/// Path of a workspace binary, which must have been built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --all-targets` (the README's test command does)",
        p.display()
    );
    p
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vouch-e2e-{tag}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&d).expect("creating temp dir");
    d
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Polls `f` every 100 ms until it holds; panics after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `vouch-log`.
pub struct Log {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// Its vkey.
    pub vkey: String,
    /// Extra config lines.
    pub config: String,
    /// Extra environment variables (say, `SSL_CERT_FILE`).
    pub env: Vec<(String, String)>,
}

/// The origin used by test logs.
pub const ORIGIN: &str = "log.vouch.test/e2e";

/// Creates a log key in a new directory; returns (directory, vkey).
pub fn log_keygen() -> (PathBuf, String) {
    let dir = temp_dir("log");
    let out = Command::new(binary("vouch-log"))
        .args(["keygen", "--origin", ORIGIN, "--out"])
        .arg(dir.join("log.key"))
        .output()
        .expect("running vouch-log keygen");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        dir,
        String::from_utf8(out.stdout)
            .expect("utf-8 vkey")
            .trim()
            .to_string(),
    )
}

impl Log {
    /// Creates a key and starts a log in a new directory with extra TOML `config`.
    pub fn start(config: &str) -> Log {
        let (dir, vkey) = log_keygen();
        Log::start_in(dir, vkey, config, true)
    }

    /// Starts a log in `dir` (holding `log.key`), waiting until it listens
    /// (and, if `serving`, until `/checkpoint` answers 200).
    pub fn start_in(dir: PathBuf, vkey: String, config: &str, serving: bool) -> Log {
        Log::start_with_env(dir, vkey, config, serving, &[], free_port())
    }

    /// [`Log::start_in`] on `port`, with extra environment variables.
    pub fn start_with_env(
        dir: PathBuf,
        vkey: String,
        config: &str,
        serving: bool,
        env: &[(&str, &str)],
        port: u16,
    ) -> Log {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut log = Log {
            child: spawn_log(&dir, port, config, &env),
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            vkey,
            config: config.to_string(),
            env,
        };
        log.wait_ready(serving);
        log
    }

    fn wait_ready(&mut self, serving: bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().expect("polling vouch-log") {
                panic!("vouch-log exited early with {status}");
            }
            match ureq::get(&format!("{}/checkpoint", self.url)).call() {
                Ok(_) => return,
                Err(ureq::Error::Status(_, _)) if !serving => return,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vouch-log did not come up on {}", self.url);
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops with SIGTERM (graceful) and waits; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the same log again on the same port and directory (killing
    /// it first with SIGKILL if it is still running, so that the answers
    /// after a restart never come from the old process).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_log(&self.dir, self.port, &self.config, &self.env);
        self.wait_ready(true);
    }

    /// GET a path, returning (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        response(ureq::get(&format!("{}{path}", self.url)).call())
    }

    /// POST attestations (concatenated) to the submit endpoint.
    pub fn submit(&self, body: &[u8], wait: bool) -> (u16, Vec<u8>) {
        let q = if wait { "?wait=1" } else { "" };
        response(
            ureq::post(&format!("{}/vouch/v1/submit{q}", self.url))
                .set("Content-Type", "text/plain")
                .send_bytes(body),
        )
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_log(dir: &Path, port: u16, config: &str, env: &[(String, String)]) -> Child {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, format!("origin = \"{ORIGIN}\"\n{config}\n")).expect("writing config");
    Command::new(binary("vouch-log"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--key")
        .arg(dir.join("log.key"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("VOUCH_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting vouch-log")
}

/// (status, body) of a ureq call, whatever the status.
pub fn response(r: Result<ureq::Response, ureq::Error>) -> (u16, Vec<u8>) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut body)
        .expect("reading body");
    (status, body)
}

/// A builder key derived from a small number.
pub fn builder(n: u8) -> NixSecretKey {
    NixSecretKey::from_seed(&format!("builder-{n}.vouch.test-1"), &[n; 32]).expect("builder key")
}

/// A store path for the i-th test package.
pub fn store_path(i: u64) -> StorePath {
    let h = vouch_spec::nix::nix32::encode(&vouch_spec::hash::sha256(&i.to_be_bytes())[..20]);
    StorePath::from_base("/nix/store", &format!("{h}-pkg-{i}")).expect("store path")
}

/// An attestation by `key` that path i has a NAR hash derived from (i, variant).
pub fn attestation(key: &NixSecretKey, i: u64, variant: u8) -> Attestation {
    let mut nar = vouch_spec::hash::sha256(&i.to_le_bytes());
    nar[0] ^= variant;
    let refs = if i > 0 {
        vec![store_path(i - 1)]
    } else {
        vec![]
    };
    Attestation::sign(store_path(i), nar, 1000 + i, refs, None, key)
}

/// Builders 1 and 2 both attest paths `0..n` with NAR variant `variant`,
/// as one submission body.
pub fn both_builders(n: u64, variant: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            [
                attestation(&builder(1), i, variant).encode(),
                attestation(&builder(2), i, variant).encode(),
            ]
        })
        .flatten()
        .collect()
}

/// The tree size a checkpoint note states (its second line).
pub fn checkpoint_size(checkpoint: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(checkpoint)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
}

/// A running `vouch-witness serve` (or `vouch-witness mirror`).
pub struct Witness {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its directory (key, config, state).
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// Its cosigner vkey.
    pub vkey: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The subcommand: `serve` or `mirror`.
    pub mode: &'static str,
}

impl Witness {
    /// Creates a key named `name` and starts a mirror (C2SP tlog-mirror)
    /// for the given `[[log]]` TOML; it serves each log under
    /// `<url>/<origin hash>/`.
    pub fn start_mirror(name: &str, logs_toml: &str) -> Witness {
        Witness::start_mode("mirror", name, logs_toml, &[])
    }

    /// Creates a key named `name` and starts a witness for the given `[[log]]` TOML.
    pub fn start(name: &str, logs_toml: &str) -> Witness {
        Witness::start_env(name, logs_toml, &[])
    }

    /// [`Witness::start`] with extra environment variables.
    pub fn start_env(name: &str, logs_toml: &str, env: &[(&str, &str)]) -> Witness {
        Witness::start_mode("serve", name, logs_toml, env)
    }

    fn start_mode(
        mode: &'static str,
        name: &str,
        logs_toml: &str,
        env: &[(&str, &str)],
    ) -> Witness {
        let dir = temp_dir(mode);
        let out = Command::new(binary("vouch-witness"))
            .args(["keygen", "--name", name, "--out"])
            .arg(dir.join("witness.key"))
            .output()
            .expect("running vouch-witness keygen");
        assert!(
            out.status.success(),
            "keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vkey = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        let port = free_port();
        std::fs::write(
            dir.join("witness.toml"),
            format!(
                "key_file = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\npoll_interval_secs = 1\n{logs_toml}\n",
                dir.join("witness.key").display(),
                dir.join("state").display()
            ),
        )
        .expect("writing witness config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut w = Witness {
            child: spawn_witness(mode, &dir, &env),
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            vkey,
            env,
            mode,
        };
        w.wait_ready();
        w
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().expect("polling vouch-witness") {
                panic!("vouch-witness exited early with {status}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vouch-witness did not come up");
    }

    /// What it has logged (warnings and errors) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The checkpoint it last cosigned for `origin` (its monitoring endpoint).
    pub fn cosigned(&self, origin: &str) -> Option<Vec<u8>> {
        let hash = vouch_spec::hex::encode(&vouch_spec::hash::sha256(origin.as_bytes()));
        let (s, b) = response(ureq::get(&format!("{}/{hash}/checkpoint", self.url)).call());
        (s == 200).then_some(b)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same key, config and state (after SIGKILL
    /// if it is still running).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_witness(self.mode, &self.dir, &self.env);
        self.wait_ready();
    }

    /// POST add-checkpoint; returns (status, content type, body).
    pub fn add_checkpoint(&self, body: &[u8]) -> (u16, String, Vec<u8>) {
        self.try_add_checkpoint(body)
            .unwrap_or_else(|e| panic!("add-checkpoint: {e}"))
    }

    /// POST add-checkpoint; a transport error (the witness died) is `Err`.
    pub fn try_add_checkpoint(&self, body: &[u8]) -> Result<(u16, String, Vec<u8>), String> {
        // One connection per request: a pooled connection may belong to a
        // witness process that was killed (here or in a parallel test that
        // had this port before), and a POST over it is not retried.
        let r = ureq::post(&format!("{}/add-checkpoint", self.url))
            .set("Connection", "close")
            .send_bytes(body);
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let ct = resp.content_type().to_string();
        let ct = resp
            .header("Content-Type")
            .map(str::to_string)
            .unwrap_or(ct);
        let status = resp.status();
        let mut b = Vec::new();
        resp.into_reader()
            .read_to_end(&mut b)
            .map_err(|e| e.to_string())?;
        Ok((status, ct, b))
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_witness(mode: &str, dir: &Path, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .expect("opening the witness's log file");
    Command::new(binary("vouch-witness"))
        .arg(mode)
        .arg("--config")
        .arg(dir.join("witness.toml"))
        .env("VOUCH_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting vouch-witness")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on the loopback `port`.
pub fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serves `dir` over HTTP on loopback (`python3 -m http.server`), like a
/// static binary cache or a static tlog-tiles log; returns it and its URL.
pub fn static_server(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let p = Proc(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    wait_port(port);
    (p, format!("http://127.0.0.1:{port}"))
}

/// Starts `vouch substituter` with a client config, an upstream and extra
/// flags; returns it and its URL once it answers.
///
/// Decisions are not cached unless `extra` sets `--decision-cache-secs`:
/// these tests change what the log serves between requests.
pub fn substituter(config: &Path, upstream: &str, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let cache: &[&str] = if extra.contains(&"--decision-cache-secs") {
        &[]
    } else {
        &["--decision-cache-secs", "0"]
    };
    let p = Proc(
        Command::new(binary("vouch"))
            .arg("substituter")
            .args(extra)
            .args(cache)
            .arg("--config")
            .arg(config)
            .args([
                "--upstream",
                upstream,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("VOUCH_LOG", "warn")
            .spawn()
            .expect("starting vouch substituter"),
    );
    wait_port(port);
    (p, format!("http://127.0.0.1:{port}"))
}

/// The `proof` array of a proof API response, as hashes.
pub fn proof_hashes(json: &[u8]) -> Vec<vouch_spec::Hash> {
    let v: serde_json::Value = serde_json::from_slice(json).expect("proof JSON");
    v["proof"]
        .as_array()
        .expect("proof array")
        .iter()
        .map(|h| vouch_spec::Hash::from_base64(h.as_str().expect("string")).expect("hash"))
        .collect()
}

/// A narinfo describing exactly what `attestation(&builder(1), i, 0)` attests.
pub fn narinfo_for(i: u64) -> vouch_spec::nix::NarInfo {
    narinfo_of(&attestation(&builder(1), i, 0))
}

/// A narinfo describing exactly what `a` attests.
pub fn narinfo_of(a: &Attestation) -> vouch_spec::nix::NarInfo {
    let refs: Vec<String> = a.references.iter().map(|r| r.base().to_string()).collect();
    let text = format!(
        "StorePath: {}\nURL: nar/x.nar\nNarHash: {}\nNarSize: {}\nReferences: {}\n",
        a.path,
        vouch_spec::nix::narinfo::format_sha256(&a.nar_hash),
        a.nar_size,
        refs.join(" ")
    );
    vouch_spec::nix::NarInfo::parse(text.as_bytes()).expect("narinfo")
}

/// The client configuration the library tests use: the log at `url` under
/// the tlog-policy file `policy`, builders 1 and 2 trusted and both
/// required, disagreement refused, cosignatures fresh within an hour,
/// inclusion proved from lookup tlog-proofs.
pub fn client_config(url: &str, policy: &Path, state: &Path) -> vouch::verifier::ClientConfig {
    vouch::verifier::ClientConfig {
        log_url: url.to_string(),
        policy_file: policy.to_path_buf(),
        trusted_builders: vec![
            builder(1).public().to_string(),
            builder(2).public().to_string(),
        ],
        required_builders: 2,
        reject_disagreement: true,
        max_checkpoint_age_secs: 3600,
        state_dir: state.to_path_buf(),
        lookup_proofs: true,
        follow_handovers: true,
        pinned_transitions: Vec::new(),
    }
}

/// Copies the checkpoint and every tile and entry bundle of the tree of
/// `size`, each fetched by `get(path)` as (status, body), into a new
/// directory: what [`go_verify_log`] reads. Fetches on eight threads (an
/// S3 website endpoint answers one GET in tens of milliseconds).
pub fn mirror_tiles(
    get: impl Fn(&str) -> (u16, Vec<u8>) + Sync,
    size: u64,
    checkpoint: &[u8],
) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use vouch_spec::tile::{Tile, TileKind};
    let dir = temp_dir("tiles-mirror");
    std::fs::write(dir.join("checkpoint"), checkpoint).expect("writing the checkpoint");
    let mut paths = Vec::new();
    for t in Tile::all_for_size(size) {
        paths.push(t.path());
        if t.kind == (TileKind::Hash { level: 0 }) {
            paths.push(
                Tile {
                    kind: TileKind::Entries,
                    ..t
                }
                .path(),
            );
        }
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while let Some(p) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (status, data) = get(p);
                    assert_eq!(status, 200, "{p} is not served");
                    let f = dir.join(p);
                    std::fs::create_dir_all(f.parent().expect("tile paths have a parent")).unwrap();
                    std::fs::write(f, data).unwrap();
                }
            });
        }
    });
    dir
}

/// Go's reference `sumdb/note` and `sumdb/tlog` (`spec/testdata/go/interop.go`)
/// authenticate every tile and entry in `dir` against its checkpoint, which
/// must be of `size` (needs `go` and golang-golang-x-mod-dev, as
/// `.ci/install-deps` installs).
pub fn go_verify_log(dir: &Path, vkey: &str, size: u64) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/testdata/go/interop.go");
    let out = Command::new("go")
        .arg("run")
        .arg(&src)
        .args(["verify-log", &dir.display().to_string(), vkey])
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .output()
        .expect("running `go` (install golang-go and golang-golang-x-mod-dev, as .ci/run does)");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).starts_with(&format!("ok {size}\n")),
        "Go rejected the log in {} (want ok {size}): {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
