//! `vouch`: check Nix substitutes against a Vouch transparency log, and
//! put your own builds (or a whole binary cache's signatures) into one.
#![forbid(unsafe_code)]

mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use vouch::http::HttpClient;
use vouch::log_client::LogClient;
use vouch::verifier::{ClientConfig, Verdict, Verifier};
use vouch_spec::attestation::Attestation;
use vouch_spec::nix::{NarInfo, NixSecretKey};
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::transition::Transition;

/// Exit status of `vouch verify` when the path is rejected.
const EXIT_REJECTED: i32 = 2;
/// Exit status when the log (or its proofs) could not be reached.
const EXIT_UNREACHABLE: i32 = 3;

/// Install Nix substitutes only when a transparency log proves that enough
/// independent builders got the same bytes; attest your own builds.
///
/// `vouch substituter` sits between Nix and a binary cache and serves a
/// path only when the Vouch log shows it was attested by the builders you
/// trust, under a checkpoint your witnesses cosigned. The other commands
/// make attestations (`attest`, `post-build-hook`, `sender`, `backfill`),
/// check one narinfo (`verify`), and get proofs to publish (`proof`).
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Exit status: 0 success (for verify: accepted); 1 usage, configuration or local error; \
2 verify rejected the path (a verdict on the path); 3 the log or a cache could not be reached (no verdict).\n\
Configuration: see README.md, section \"Client configuration\". Logs: VOUCH_LOG=debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a builder signing key in Nix's format (the same as `nix key
    /// generate-secret`) and print its public key. Existing Nix key files work as they are.
    Keygen {
        /// Key name, e.g. builder.example.org-1.
        #[arg(long)]
        name: String,
        /// Where to write the secret key; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a signed attestation for a store path (from `nix path-info
    /// --json`) or a narinfo file (its Sig: line by --key's name is reused if present).
    Attest {
        /// Nix secret key file of the builder.
        #[arg(long)]
        key: PathBuf,
        /// A narinfo file to attest instead of a store path.
        #[arg(long, conflicts_with = "path")]
        narinfo: Option<PathBuf>,
        /// The store path (needs `nix` on PATH).
        path: Option<String>,
        /// Store to query (passed to `nix path-info --store`).
        #[arg(long)]
        store: Option<String>,
        /// Serialise the NAR from the filesystem instead of asking `nix`
        /// (references found by scanning the contents, deriver unknown).
        #[arg(long, conflicts_with = "narinfo")]
        from_fs: bool,
    },
    /// Submit attestation files to a log. Prints one line per attestation:
    /// `<index> <store path> new|duplicate`; with --wait, then
    /// `covered by checkpoint <size>` (or `not covered yet`); with --json,
    /// the log's JSON answer instead (spec/PROTOCOL.md §5.2).
    Submit {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// Wait until a checkpoint served by the log covers them.
        #[arg(long)]
        wait: bool,
        /// With --wait: write each attestation's tlog-proof into this
        /// directory as <hash part>.vouch/<n>.tlog-proof (the layout a cache
        /// publishes beside its narinfos), and print the file names.
        #[arg(long, requires = "wait")]
        proofs: Option<PathBuf>,
        /// Print the log's JSON answer as it is.
        #[arg(long)]
        json: bool,
        /// Attestation files (concatenated into one request).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Apply the acceptance rule to a narinfo and print the decision with
    /// every reason (exit 0 accepted, 2 rejected, 3 log unreachable). With
    /// --bundle, offline: only the given tlog-proof files are used. The
    /// narinfo is the file a binary cache serves as <hash part>.narinfo
    /// (e.g. `curl https://cache.nixos.org/<hash part>.narinfo`, or the
    /// file `nix copy --to file://DIR` wrote into DIR).
    Verify {
        /// Client configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The narinfo file.
        narinfo: PathBuf,
        /// tlog-proof files to verify offline instead of asking the log; repeatable.
        #[arg(long)]
        bundle: Vec<PathBuf>,
    },
    /// Write tlog-proof bundles for every attestation of a store path, as
    /// <out>/<hash part>.vouch/<n>.tlog-proof (the layout a cache can publish
    /// beside its narinfo files).
    Proof {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Wait up to this many seconds for the log to serve an attestation
        /// of the path (one just sent may not be covered by a served
        /// checkpoint yet).
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// The store path (or its hash part).
        path: String,
    },
    /// Print a C2SP tlog-policy file for a log and its witnesses: the
    /// client configuration's policy_file, or (with --witness-url) a log's
    /// witness_policy. Witnesses are named by their keys' names.
    Policy {
        /// The log's verifier key (as `vouch-log keygen` prints it).
        #[arg(long)]
        log_vkey: String,
        /// A witness's cosigner vkey (as `vouch-witness keygen` prints it);
        /// repeatable.
        #[arg(long = "witness-vkey", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// The submission URL of the witness given in the same position
        /// (for a log's witness_policy); repeatable.
        #[arg(long = "witness-url", value_name = "URL")]
        witness_urls: Vec<String>,
        /// How many of the witnesses must cosign (default: all of them;
        /// none without witnesses).
        #[arg(long)]
        quorum: Option<usize>,
    },
    /// Run an HTTP binary cache for Nix that serves a narinfo only when the
    /// acceptance rule holds; use it as Nix's substituter. Nix still checks
    /// each narinfo's signatures against its trusted-public-keys after Vouch
    /// accepts it. Settings also come from the configuration's
    /// [substituter] table; flags override it.
    Substituter {
        /// Client configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Upstream binary cache URL (https://, http:// or file://);
        /// repeatable. Upstreams are tried by the Priority their
        /// nix-cache-info states, then in the order given.
        #[arg(long)]
        upstream: Vec<String>,
        /// Address to listen on (default 127.0.0.1:8082).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Verify with tlog-proof bundles published beside the narinfo
        /// (<hash>.vouch/<n>.tlog-proof) instead of asking the log.
        #[arg(long)]
        bundles: bool,
        /// enforce: serve only what the rule accepts. report: serve
        /// everything the upstream has, and log and count what enforcing
        /// would have refused (to try Vouch before relying on it).
        #[arg(long, value_enum)]
        mode: Option<cli::substituter::Mode>,
        /// Seconds a decision is reused for the same narinfo (default 30;
        /// 0: decide every request anew).
        #[arg(long)]
        decision_cache_secs: Option<u64>,
    },
    /// Nix post-build-hook: attest the outputs of the build (OUT_PATHS, or
    /// derived from DRV_PATH when Nix leaves it empty) and drop the
    /// attestations into a spool directory. Never fails or blocks a build:
    /// problems are printed and it exits 0. Nix runs hooks without
    /// arguments, so point `post-build-hook` at a script that calls this.
    PostBuildHook {
        /// Nix secret key file of this builder.
        #[arg(long, env = "VOUCH_KEY")]
        key: PathBuf,
        /// Spool directory (delivered by `vouch sender`).
        #[arg(long, env = "VOUCH_SPOOL")]
        spool: PathBuf,
    },
    /// Deliver spooled attestations to a log, with retries and backoff.
    Sender {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// Spool directory.
        #[arg(long)]
        spool: PathBuf,
        /// Attestations per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// One pass, then exit (status 3 if anything is left to send).
        #[arg(long)]
        once: bool,
    },
    /// Log an existing binary cache's Sig: lines as they are: for each store
    /// path (or hash part) listed in --paths, fetch the narinfo and submit
    /// an attestation for each Sig: by a --key. Resumable (--state): only
    /// paths whose attestations the log acknowledged (or that the cache
    /// does not have) are recorded as done; a fetch that keeps failing
    /// stops the run with exit status 3 and the count of paths left.
    Backfill {
        /// The binary cache URL: https://…, http://… or file:///… (a
        /// directory written by `nix copy --to file://…`).
        #[arg(long)]
        cache: String,
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// A cache public key (Nix name:base64) whose signatures to log; repeatable.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// File with one store path or hash part per line.
        #[arg(long)]
        paths: PathBuf,
        /// Progress file (lines done); reruns resume from it.
        #[arg(long)]
        state: PathBuf,
        /// Narinfo fetches per second over all jobs (0: unlimited). Default:
        /// 50 for an http(s) cache, polite to a public one; unlimited for a
        /// file:// copy.
        #[arg(long)]
        rate: Option<f64>,
        /// Narinfo fetches in flight (keep-alive connections to the cache).
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Submissions to the log in flight.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Attempts per narinfo before the run stops.
        #[arg(long, default_value_t = 5)]
        attempts: u32,
        /// Attestations per submission.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Rebuild here what other builders attested, and attest what this
    /// machine got, agreeing or not, so that k-of-n agreement exists for
    /// real paths. Work comes from the log (paths --watch keys attested
    /// that no other key confirmed yet) or from --paths (store paths and
    /// .drv files). A derivation is the entry's deriver when it is in the
    /// store and builds the path, or one of --expr's (say, the release file
    /// the paths came from). Outputs are built here, never substituted.
    /// Resumable (--state): a finished derivation is never rebuilt. Prints
    /// a summary at the end (rebuilt, agreed, disagreed, skipped with
    /// reasons).
    Rebuild {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// The log's vkey, to check the checkpoints work is read under.
        #[arg(long)]
        log_vkey: Option<String>,
        /// This rebuilder's Nix secret key file.
        #[arg(long)]
        key: PathBuf,
        /// A builder key (Nix name:base64) whose unconfirmed attestations
        /// are work; repeatable.
        #[arg(long)]
        watch: Vec<String>,
        /// Rebuild the store paths and .drv files listed in this file
        /// instead of reading work from the log.
        #[arg(long)]
        paths: Option<PathBuf>,
        /// A Nix expression file whose derivations map outputs to
        /// derivations (for entries whose deriver is not in the store).
        #[arg(long)]
        expr: Option<PathBuf>,
        /// The Nix store to build in (a store URI; an absolute path is a
        /// chroot store). Default: Nix's.
        #[arg(long)]
        store: Option<String>,
        /// Where the rebuilder keeps its state.
        #[arg(long, default_value = "vouch-rebuild-state")]
        state: PathBuf,
        /// Builds at once.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Time budget per build, seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Disk budget per build, bytes of the store's filesystem.
        #[arg(long)]
        max_build_disk: Option<u64>,
        /// Keep following the log, reading new work every this many seconds.
        #[arg(long)]
        follow: Option<u64>,
        /// Serve Prometheus metrics at this address (/metrics).
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Key transitions (spec/PROTOCOL.md §3.6): retire a builder signing
    /// key, or hand it over to a new one, at a point in the log everyone
    /// can check. After the statement is logged at index I, the log refuses
    /// every new attestation by the old key and clients count its
    /// attestations only below I. See README.md, "Rotating a cache's key".
    #[command(subcommand)]
    Key(KeyCommand),
    /// Clear the fork record of the configured log after investigating its evidence.
    ClearFork {
        /// Client configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// "This key signs nothing more": sign a retirement with the key and
    /// log it. Prints the logged entry and the client configuration lines
    /// that pin it.
    Retire {
        /// The log's URL (without it, print the signed statement only).
        #[arg(long)]
        log: Option<String>,
        /// Nix secret key file of the key to retire.
        #[arg(long)]
        key: PathBuf,
    },
    /// "This key hands over to that one": sign a handover with both keys
    /// and log it. Clients that trust the old key and follow handovers
    /// (the default) then accept the new key in its place.
    Handover {
        /// The log's URL (without it, print the signed statement only).
        #[arg(long)]
        log: Option<String>,
        /// Nix secret key file of the key that stops signing.
        #[arg(long)]
        old: PathBuf,
        /// Nix secret key file of the key that continues.
        #[arg(long)]
        new: PathBuf,
    },
}

/// Logs a transition statement (or prints it without a log) and prints
/// its index and the configuration lines that pin it.
fn log_transition(t: &Transition, log: Option<String>) -> anyhow::Result<i32> {
    let bytes = t.encode();
    let Some(log) = log else {
        print!("{}", String::from_utf8_lossy(&bytes));
        return Ok(0);
    };
    let client = LogClient::new(http()?, &log);
    let r = client.submit_transition(&bytes, true).map_err(|e| {
        let code = if e.is_transient() {
            EXIT_UNREACHABLE
        } else {
            1
        };
        Exit(code, format!("the log did not take the transition: {e}"))
    })?;
    let res = r
        .entries
        .first()
        .context("the log answered without a result")?;
    println!(
        "{} ({})",
        t.describe(res.index),
        if res.duplicate {
            "logged before"
        } else {
            "logged now"
        }
    );
    if r.covered != Some(true) {
        println!("not covered by a served checkpoint yet; it is logged all the same");
    }
    let mut pin = toml::Table::new();
    pin.insert("index".into(), toml::Value::Integer(res.index as i64));
    pin.insert(
        "entry".into(),
        toml::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    );
    let mut table = toml::Table::new();
    table.insert(
        "pinned_transitions".into(),
        toml::Value::Array(vec![toml::Value::Table(pin)]),
    );
    println!("# To pin it in a client configuration (so no log can hide it):");
    print!("{}", toml::to_string(&table)?);
    Ok(0)
}

fn load_config(path: &Path) -> anyhow::Result<ClientConfig> {
    Ok(load_config_with_substituter(path)?.0)
}

/// The client configuration and its optional `[substituter]` table.
fn load_config_with_substituter(
    path: &Path,
) -> anyhow::Result<(ClientConfig, cli::substituter::Settings)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading client config {}", path.display()))?;
    let context = || {
        format!(
            "client config {} (see README.md, section \"Client configuration\")",
            path.display()
        )
    };
    let mut table: toml::Table = toml::from_str(&text).with_context(context)?;
    let sub = match table.remove("substituter") {
        Some(v) => v
            .try_into::<cli::substituter::Settings>()
            .with_context(|| format!("{}: [substituter]", context()))?,
        None => cli::substituter::Settings::default(),
    };
    let cfg: ClientConfig = toml::Value::Table(table).try_into().with_context(context)?;
    Ok((cfg, sub))
}

fn load_key(key: &Path) -> anyhow::Result<NixSecretKey> {
    let text = std::fs::read_to_string(key)
        .with_context(|| format!("reading builder key {}", key.display()))?;
    NixSecretKey::parse(text.trim()).with_context(|| {
        format!("{} is not a Nix secret key (make one with `vouch keygen` or `nix key generate-secret`)", key.display())
    })
}

/// Output paths of a derivation.
fn drv_outputs(drv: &str) -> anyhow::Result<Vec<String>> {
    Ok(cli::nixcmd::Nix::default()
        .derivations(&[drv])?
        .into_values()
        .flat_map(|d| d.outputs.into_values())
        .collect())
}

fn attest_from_fs(p: &str, sk: &NixSecretKey) -> anyhow::Result<Attestation> {
    let path =
        vouch_spec::nix::StorePath::parse(p).with_context(|| format!("{p} is not a store path"))?;
    let nar = cli::nar::summarize(Path::new(p), path.store_dir())
        .with_context(|| format!("reading {p} to serialise its NAR"))?;
    let mut references = Vec::new();
    if !nar.hash_parts.is_empty() {
        let dir = path.store_dir();
        for e in std::fs::read_dir(dir)
            .with_context(|| format!("listing {dir} to resolve references"))?
        {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() > 33
                && nar.hash_parts.contains(&name[..32])
                && !name.ends_with(".drv")
                && !name.ends_with(".lock")
            {
                references.push(vouch_spec::nix::StorePath::from_base(dir, name)?);
            }
        }
    }
    Ok(Attestation::sign(
        path, nar.hash, nar.size, references, None, sk,
    ))
}

fn post_build_hook(key: &Path, spool: &Path) -> anyhow::Result<()> {
    let sk = load_key(key)?;
    let mut paths: Vec<String> = std::env::var("OUT_PATHS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if paths.is_empty() {
        let drv = std::env::var("DRV_PATH")
            .context("neither OUT_PATHS nor DRV_PATH is set (run this as Nix's post-build-hook)")?;
        paths = drv_outputs(&drv)?;
    }
    for p in paths {
        let i = cli::nixcmd::Nix::default().path_info(&p)?;
        let a = Attestation::sign(i.path, i.nar_hash, i.nar_size, i.references, i.deriver, &sk);
        let f = cli::spool::put(spool, &a)
            .with_context(|| format!("writing to spool {}", spool.display()))?;
        eprintln!("vouch: attested {p} into {}", f.display());
    }
    Ok(())
}

/// A failure that ends the command with a given exit status.
#[derive(Debug)]
struct Exit(i32, String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

fn main() {
    vouch::init_logging();
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vouch: {e:#}");
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.0);
            std::process::exit(code);
        }
    }
}

fn http() -> anyhow::Result<HttpClient> {
    Ok(HttpClient::from_env()?)
}

/// The first free `<dir>/<hash>.vouch/<n>.tlog-proof`.
fn next_proof_file(dir: &Path, hash: &str) -> PathBuf {
    let d = dir.join(format!("{hash}.vouch"));
    (0..)
        .map(|n| d.join(format!("{n}.tlog-proof")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| d.join("0.tlog-proof"))
}

fn print_verdict(store_path: &str, v: &Verdict) -> i32 {
    let code = match &v.outcome {
        Ok(a) => {
            println!(
                "ACCEPT {store_path}: attested by {} under checkpoint size {}",
                a.builders
                    .iter()
                    .map(|k| k.split(':').next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.tree_size
            );
            0
        }
        Err(e) => {
            println!("REJECT {store_path}: {e}");
            if e.is_unreachable() {
                EXIT_UNREACHABLE
            } else if e.is_local() {
                1
            } else {
                EXIT_REJECTED
            }
        }
    };
    for r in &v.reasons {
        println!(
            "  step {} {}: {}",
            r.step,
            if r.holds { "ok" } else { "FAILS" },
            r.text
        );
    }
    code
}

fn run() -> anyhow::Result<i32> {
    match Cli::parse().command {
        Command::Key(KeyCommand::Retire { log, key }) => {
            log_transition(&Transition::retire(&load_key(&key)?), log)
        }
        Command::Key(KeyCommand::Handover { log, old, new }) => {
            let (o, n) = (load_key(&old)?, load_key(&new)?);
            if o.public().key() == n.public().key() {
                anyhow::bail!("--old and --new are the same key");
            }
            log_transition(&Transition::handover(&o, &n), log)
        }
        Command::Keygen { name, out } => {
            let sk = NixSecretKey::from_seed(&name, &vouch::keyfile::random_seed()?)
                .with_context(|| format!("key name {name:?}"))?;
            vouch::keyfile::create(&out, &sk.encode())
                .context("the key file must not exist yet")?;
            println!("{}", sk.public());
            Ok(0)
        }
        Command::Attest {
            key,
            narinfo,
            path,
            store,
            from_fs,
        } => {
            let sk = load_key(&key)?;
            let a = match (narinfo, path) {
                (Some(n), _) => {
                    let data =
                        std::fs::read(&n).with_context(|| format!("reading {}", n.display()))?;
                    let ni = NarInfo::parse(&data)
                        .with_context(|| format!("{} is not a valid narinfo", n.display()))?;
                    Attestation::sign(
                        ni.store_path,
                        ni.nar_hash,
                        ni.nar_size,
                        ni.references,
                        ni.deriver,
                        &sk,
                    )
                }
                (None, Some(p)) if from_fs => attest_from_fs(&p, &sk)?,
                (None, Some(p)) => {
                    let i = cli::nixcmd::Nix {
                        store: store.clone(),
                    }
                    .path_info(&p)?;
                    Attestation::sign(i.path, i.nar_hash, i.nar_size, i.references, i.deriver, &sk)
                }
                (None, None) => bail!("give a store path or --narinfo FILE"),
            };
            std::io::Write::write_all(&mut std::io::stdout(), &a.encode())?;
            Ok(0)
        }
        Command::Submit {
            log,
            wait,
            proofs,
            json,
            files,
        } => {
            let mut body = Vec::new();
            let mut paths = Vec::new();
            for f in &files {
                let data = std::fs::read(f)
                    .with_context(|| format!("reading attestation {}", f.display()))?;
                let a = Attestation::parse(&data)
                    .with_context(|| format!("{} is not one attestation", f.display()))?;
                paths.push(a.path.full());
                body.extend(data);
            }
            let client = LogClient::new(http()?, &log);
            let r = client.submit(&body, wait).map_err(|e| {
                let code = if e.is_transient() {
                    EXIT_UNREACHABLE
                } else {
                    1
                };
                Exit(
                    code,
                    format!("the log refused or did not take the submission: {e}"),
                )
            })?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(0);
            }
            for (res, p) in r.entries.iter().zip(&paths) {
                println!(
                    "{} {p} {}",
                    res.index,
                    if res.duplicate { "duplicate" } else { "new" }
                );
            }
            if wait {
                match r.covered {
                    Some(true) => {
                        let size = r
                            .entries
                            .iter()
                            .find_map(|e| e.proof.as_deref())
                            .and_then(|p| TlogProof::parse(p.as_bytes()).ok())
                            .and_then(|p| checkpoint_size(&p.checkpoint))
                            .unwrap_or(0);
                        println!("covered by checkpoint {size}");
                    }
                    _ => println!("not covered yet (the entries are logged; `vouch proof` fetches proofs later)"),
                }
                if let Some(dir) = proofs {
                    for (res, p) in r.entries.iter().zip(&paths) {
                        let Some(text) = &res.proof else { continue };
                        let hash = &p.rsplit('/').next().unwrap_or(p)[..32];
                        let f = next_proof_file(&dir, hash);
                        vouch::atomic::write(&f, text.as_bytes())
                            .with_context(|| format!("writing {}", f.display()))?;
                        println!("{}", f.display());
                    }
                }
            }
            Ok(0)
        }
        Command::Verify {
            config,
            narinfo,
            bundle,
        } => {
            let v = Verifier::new(load_config(&config)?)?;
            let data = std::fs::read(&narinfo)
                .with_context(|| format!("reading {}", narinfo.display()))?;
            let n = NarInfo::parse(&data)
                .with_context(|| format!("{} is not a valid narinfo", narinfo.display()))?;
            let verdict = if bundle.is_empty() {
                v.verdict(&n)
            } else {
                let mut proofs = Vec::new();
                for b in &bundle {
                    let d = std::fs::read(b).with_context(|| format!("reading {}", b.display()))?;
                    proofs.push(
                        TlogProof::parse(&d)
                            .with_context(|| format!("{} is not a tlog-proof", b.display()))?,
                    );
                }
                v.verdict_offline(&n, &proofs)
            };
            Ok(print_verdict(&n.store_path.full(), &verdict))
        }
        Command::Proof {
            log,
            out,
            wait,
            path,
        } => {
            let hash = path
                .rsplit('/')
                .next()
                .unwrap_or(&path)
                .chars()
                .take(32)
                .collect::<String>();
            anyhow::ensure!(
                vouch_spec::nix::store_path::valid_hash_part(&hash),
                "{path} is not a store path or hash part"
            );
            let client = LogClient::new(http()?, &log);
            let unreachable = |e: vouch::log_client::FetchError| {
                let code = if e.is_transient() {
                    EXIT_UNREACHABLE
                } else {
                    1
                };
                Exit(code, e.to_string())
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
            let lookup = loop {
                let l = client.lookup(&hash, false).map_err(unreachable)?;
                if !l.entries.is_empty() || std::time::Instant::now() >= deadline {
                    break l;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            };
            anyhow::ensure!(
                !lookup.entries.is_empty(),
                "log {log} has no attestation for {hash}"
            );
            let dir = out.join(format!("{hash}.vouch"));
            for (n, e) in lookup.entries.iter().enumerate() {
                let proof = client.bundle(e.index).map_err(unreachable)?;
                let f = dir.join(format!("{n}.tlog-proof"));
                vouch::atomic::write(&f, &proof)
                    .with_context(|| format!("writing {}", f.display()))?;
                println!("{}", f.display());
            }
            Ok(0)
        }
        Command::Policy {
            log_vkey,
            witnesses,
            witness_urls,
            quorum,
        } => {
            print!(
                "{}",
                policy_text(&log_vkey, &witnesses, &witness_urls, quorum)?
            );
            Ok(0)
        }
        Command::Substituter {
            config,
            upstream,
            listen,
            bundles,
            mode,
            decision_cache_secs,
        } => {
            let http = http()?;
            let (cfg, mut settings) = load_config_with_substituter(&config)?;
            settings.upstreams.extend(upstream);
            anyhow::ensure!(
                !settings.upstreams.is_empty(),
                "no upstream cache: give --upstream URL or upstreams = [...] in [substituter]"
            );
            if let Some(l) = listen {
                settings.listen = l;
            }
            settings.bundles |= bundles;
            if let Some(m) = mode {
                settings.mode = m;
            }
            if let Some(d) = decision_cache_secs {
                settings.decision_cache_secs = d;
            }
            let listen = settings.listen;
            let upstreams = settings.upstreams.clone();
            tracing::info!(mode = ?settings.mode, ?upstreams, "substituter settings");
            let v = Verifier::with_http(cfg, http.clone())?;
            let s = Arc::new(cli::substituter::Substituter::new(
                v, upstreams, http, settings,
            ));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                tracing::info!(addr = %l.local_addr()?, "substituter serving");
                vouch::serve::notify_ready();
                vouch::serve::serve(
                    l,
                    cli::substituter::router(s),
                    vouch::serve::Limits::default().fit_to_fd_limit(),
                    vouch::serve::shutdown_signal(),
                )
                .await;
                anyhow::Ok(0)
            })
        }
        Command::Backfill {
            cache,
            log,
            keys,
            paths,
            state,
            rate,
            jobs,
            connections,
            attempts,
            batch,
        } => {
            let rate = rate.unwrap_or(if cache.starts_with("file://") {
                0.0
            } else {
                50.0
            });
            let keys = keys
                .iter()
                .map(|k| {
                    vouch_spec::nix::NixPublicKey::parse(k).with_context(|| {
                        format!("--key {k:?} is not a Nix public key (name:base64)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let http = http()?;
            let client = LogClient::new(http.clone(), &log);
            let s = cli::backfill::Settings {
                cache: &cache,
                log: &client,
                http: &http,
                keys: &keys,
                rate,
                batch,
                jobs,
                connections,
                attempts,
            };
            let started = std::time::Instant::now();
            let r = cli::backfill::run(&s, &paths, &state)?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "backfilled {} paths: {} attestations submitted, {} missing from {cache}, {} bad signatures, {} by retired keys ({secs:.1} s, {:.0} paths/s)",
                r.paths,
                r.attestations,
                r.missing,
                r.bad_signatures,
                r.retired,
                r.paths as f64 / secs.max(1e-9)
            );
            if r.left > 0 {
                return Err(Exit(
                    EXIT_UNREACHABLE,
                    format!(
                        "{} paths left undone ({}); rerun to continue from there",
                        r.left,
                        r.stopped_by.unwrap_or_default()
                    ),
                )
                .into());
            }
            Ok(0)
        }
        Command::PostBuildHook { key, spool } => {
            if let Err(e) = post_build_hook(&key, &spool) {
                // Never fail the build.
                eprintln!("vouch post-build-hook: {e:#} (the build is unaffected)");
            }
            Ok(0)
        }
        Command::Sender {
            log,
            spool,
            batch,
            once,
        } => {
            let client = LogClient::new(http()?, &log);
            let left = cli::spool::run(&client, &spool, batch, once)
                .with_context(|| format!("spool {}", spool.display()))?;
            if left > 0 {
                return Err(Exit(
                    EXIT_UNREACHABLE,
                    format!(
                        "{left} attestation(s) still in {} (log {log} unreachable or busy); run again later",
                        spool.display()
                    ),
                )
                .into());
            }
            Ok(0)
        }
        Command::Rebuild {
            log,
            log_vkey,
            key,
            watch,
            paths,
            expr,
            store,
            state,
            jobs,
            timeout,
            max_build_disk,
            follow,
            metrics_listen,
        } => {
            let watch = watch
                .iter()
                .map(|k| {
                    vouch_spec::nix::NixPublicKey::parse(k)
                        .with_context(|| format!("--watch {k:?} is not a Nix public key"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(
                paths.is_some() || !watch.is_empty(),
                "give --watch KEY (work from the log) or --paths FILE"
            );
            let log_vkey = log_vkey
                .map(|v| {
                    vouch_spec::note::Ed25519Verifier::from_vkey(&v)
                        .with_context(|| format!("--log-vkey {v:?}"))
                })
                .transpose()?;
            let r = cli::rebuild::Rebuilder::new(cli::rebuild::Settings {
                log: LogClient::new(http()?, &log),
                log_vkey,
                key: load_key(&key)?,
                watch,
                nix: cli::nixcmd::Nix { store },
                expr,
                state,
                jobs,
                timeout: Some(std::time::Duration::from_secs(timeout.max(1))),
                disk: max_build_disk,
            })?;
            if let Some(addr) = metrics_listen {
                let mut registry = vouch::metrics::Registry::default();
                r.metrics.register(&mut registry);
                vouch::metrics::serve_in_background(addr, registry)
                    .with_context(|| format!("listening on {addr}"))?;
            }
            loop {
                let work = match &paths {
                    Some(f) => cli::rebuild::work_from_list(f)?,
                    None => r.scan()?,
                };
                let summary = r.run(work)?;
                println!("{summary}");
                match follow {
                    Some(secs) if paths.is_none() => {
                        std::thread::sleep(std::time::Duration::from_secs(secs.max(1)))
                    }
                    _ => return Ok(0),
                }
            }
        }
        Command::ClearFork { config } => {
            let v = Verifier::new(load_config(&config)?)?;
            let cleared = v.clear_forks()?;
            for origin in v.origins() {
                if cleared.contains(&origin) {
                    println!("cleared the fork record of {origin}: the log is trusted again");
                } else {
                    println!("no fork is recorded for {origin}: nothing to clear");
                }
            }
            Ok(0)
        }
    }
}

/// The size a signed checkpoint states.
fn checkpoint_size(note: &[u8]) -> Option<u64> {
    let n = vouch_spec::note::Note::parse(note).ok()?;
    vouch_spec::checkpoint::Checkpoint::parse(&n.text)
        .ok()
        .map(|c| c.size)
}

/// A tlog-policy for `log_vkey` and the witnesses `vkeys` (named by their
/// keys' names, with the URLs in `urls` by position), requiring `quorum`
/// of them (all by default).
fn policy_text(
    log_vkey: &str,
    vkeys: &[String],
    urls: &[String],
    quorum: Option<usize>,
) -> anyhow::Result<String> {
    vouch_spec::note::Ed25519Verifier::from_vkey(log_vkey)
        .with_context(|| format!("--log-vkey {log_vkey:?} is not a log verifier key"))?;
    anyhow::ensure!(
        urls.len() <= vkeys.len(),
        "{} --witness-url for {} --witness-vkey",
        urls.len(),
        vkeys.len()
    );
    let mut text = format!("log {log_vkey}\n");
    let mut names = Vec::new();
    for (i, vkey) in vkeys.iter().enumerate() {
        let v = vouch_spec::cosignature::CosignatureVerifier::from_vkey(vkey)
            .with_context(|| format!("--witness-vkey {vkey:?} is not a cosigner vkey"))?;
        let name = vouch_spec::note::NoteVerifier::name(&v).to_string();
        anyhow::ensure!(!names.contains(&name), "two witnesses named {name}");
        match urls.get(i) {
            Some(url) => text.push_str(&format!("witness {name} {vkey} {url}\n")),
            None => text.push_str(&format!("witness {name} {vkey}\n")),
        }
        names.push(name);
    }
    match (names.len(), quorum) {
        (0, None | Some(0)) => text.push_str("quorum none\n"),
        (0, Some(k)) => bail!("--quorum {k} needs at least {k} --witness"),
        (n, q) => {
            let k = q.unwrap_or(n);
            anyhow::ensure!(
                (1..=n).contains(&k),
                "--quorum {k}: want 1 to {n} (the number of witnesses)"
            );
            text.push_str(&format!(
                "group witnesses {k} {}\nquorum witnesses\n",
                names.join(" ")
            ));
        }
    }
    // What we print must be what clients accept.
    vouch_spec::policy::Policy::parse(text.as_bytes()).context("the policy does not parse")?;
    Ok(text)
}
