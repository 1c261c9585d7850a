//! `vouch`: attest, submit and verify Nix store paths against a Vouch log,
//! and run a verifying substituter for Nix.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use vouch::verifier::{ClientConfig, Verifier};
use vouch_spec::attestation::Attestation;
use vouch_spec::nix::{NarInfo, NixSecretKey};
use vouch_spec::tlog_proof::TlogProof;

/// Verify Nix substitutes against a Vouch transparency log.
#[derive(Parser)]
#[command(version, about, long_about = None)]
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
    /// Submit attestation files to a log.
    Submit {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// Wait until a checkpoint covers them and print tlog-proofs.
        #[arg(long)]
        wait: bool,
        /// Attestation files (concatenated into one request).
        files: Vec<PathBuf>,
    },
    /// Apply the acceptance rule to a narinfo and print the decision with its
    /// reasons (exit 2 on rejection). With --bundle, offline: only the given
    /// tlog-proof files are used, no network.
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
        /// The store path (or its hash part).
        path: String,
    },
    /// Run an HTTP binary cache for Nix that serves a narinfo only when the
    /// acceptance rule holds; use it as Nix's substituter.
    Substituter {
        /// Client configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Upstream binary cache URL; repeatable, tried in order.
        #[arg(long, required = true)]
        upstream: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        /// Verify with tlog-proof bundles published beside the narinfo
        /// (<hash>.vouch/<n>.tlog-proof) instead of asking the log.
        #[arg(long)]
        bundles: bool,
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
        /// One pass, then exit (status 1 if anything is left to send).
        #[arg(long)]
        once: bool,
    },
    /// Log an existing binary cache's Sig: lines as they are: for each store
    /// path (or hash part) listed in --paths, fetch the narinfo and submit
    /// an attestation for each Sig: by a --key. Resumable (--state), rate-limited.
    Backfill {
        /// The binary cache URL, e.g. https://cache.nixos.org.
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
        /// Narinfo fetches per second (0: unlimited).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Attestations per submission.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Clear the fork flag of the configured log after investigating its evidence.
    ClearFork {
        /// Client configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

fn load_config(path: &PathBuf) -> anyhow::Result<ClientConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading client config {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "client config {} (see README, \"Client configuration\")",
            path.display()
        )
    })
}

fn load_key(key: &PathBuf) -> anyhow::Result<NixSecretKey> {
    let text = std::fs::read_to_string(key)
        .with_context(|| format!("reading builder key {}", key.display()))?;
    NixSecretKey::parse(text.trim()).with_context(|| {
        format!("{} is not a Nix secret key (make one with `vouch keygen` or `nix key generate-secret`)", key.display())
    })
}

fn nix_json(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = std::process::Command::new("nix")
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .output()
        .with_context(|| format!("running `nix {}` (is nix on PATH?)", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`nix {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn path_info(path: &str, store: Option<&str>) -> anyhow::Result<vouch::pathinfo::PathInfo> {
    let mut args = vec!["path-info", "--json"];
    if let Some(s) = store {
        args.extend(["--store", s]);
    }
    args.push(path);
    let infos = vouch::pathinfo::parse(&nix_json(&args)?)?;
    infos
        .into_iter()
        .next()
        .with_context(|| format!("nix path-info printed nothing for {path}"))
}

/// Output paths of a derivation, from `nix show-derivation` (Nix 2.8) or
/// `nix derivation show` (newer Nix).
fn drv_outputs(drv: &str) -> anyhow::Result<Vec<String>> {
    let json =
        nix_json(&["show-derivation", drv]).or_else(|_| nix_json(&["derivation", "show", drv]))?;
    let v: serde_json::Value = serde_json::from_slice(&json).context("parsing derivation JSON")?;
    let mut out = Vec::new();
    for d in v.as_object().into_iter().flat_map(|m| m.values()) {
        for o in d["outputs"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if let Some(p) = o["path"].as_str() {
                out.push(p.to_string());
            }
        }
    }
    Ok(out)
}

fn attest_from_fs(p: &str, sk: &NixSecretKey) -> anyhow::Result<Attestation> {
    let path =
        vouch_spec::nix::StorePath::parse(p).with_context(|| format!("{p} is not a store path"))?;
    let nar = vouch::nar::summarize(std::path::Path::new(p), path.store_dir())
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

fn post_build_hook(key: &PathBuf, spool: &std::path::Path) -> anyhow::Result<()> {
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
        let i = path_info(&p, None)?;
        let a = Attestation::sign(i.path, i.nar_hash, i.nar_size, i.references, i.deriver, &sk);
        let f = vouch::spool::put(spool, &a)
            .with_context(|| format!("writing to spool {}", spool.display()))?;
        eprintln!("vouch: attested {p} into {}", f.display());
    }
    Ok(())
}

fn main() {
    vouch::init_logging();
    if let Err(e) = run() {
        eprintln!("vouch: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keygen { name, out } => {
            let sk = NixSecretKey::from_seed(&name, &vouch::keyfile::random_seed()?)
                .with_context(|| format!("key name {name:?}"))?;
            vouch::keyfile::create(&out, &sk.encode())
                .context("the key file must not exist yet")?;
            println!("{}", sk.public());
            Ok(())
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
                    let i = path_info(&p, store.as_deref())?;
                    Attestation::sign(i.path, i.nar_hash, i.nar_size, i.references, i.deriver, &sk)
                }
                (None, None) => bail!("give a store path or --narinfo FILE"),
            };
            std::io::Write::write_all(&mut std::io::stdout(), &a.encode())?;
            Ok(())
        }
        Command::Submit { log, wait, files } => {
            let mut body = Vec::new();
            for f in &files {
                body.extend(
                    std::fs::read(f)
                        .with_context(|| format!("reading attestation {}", f.display()))?,
                );
            }
            let url = format!(
                "{}/vouch/v1/submit{}",
                log.trim_end_matches('/'),
                if wait { "?wait=1" } else { "" }
            );
            match ureq::post(&url)
                .set("Content-Type", "text/plain")
                .send_bytes(&body)
            {
                Ok(r) => {
                    println!("{}", r.into_string()?);
                    Ok(())
                }
                Err(ureq::Error::Status(code, r)) => bail!(
                    "log {log} refused the submission ({code}): {}",
                    r.into_string().unwrap_or_default().trim()
                ),
                Err(e) => bail!("cannot reach log {log}: {e}"),
            }
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
            let result = if bundle.is_empty() {
                v.check_narinfo(&n)
            } else {
                let mut proofs = Vec::new();
                for b in &bundle {
                    let d = std::fs::read(b).with_context(|| format!("reading {}", b.display()))?;
                    proofs.push(
                        TlogProof::parse(&d)
                            .with_context(|| format!("{} is not a tlog-proof", b.display()))?,
                    );
                }
                v.check_narinfo_offline(&n, &proofs)
            };
            match result {
                Ok(a) => {
                    println!(
                        "ACCEPT {}: attested by {} under checkpoint size {}",
                        n.store_path,
                        a.builders.join(", "),
                        a.tree_size
                    );
                    Ok(())
                }
                Err(e) => {
                    println!("REJECT {}: {e}", n.store_path);
                    std::process::exit(2);
                }
            }
        }
        Command::Proof { log, out, path } => {
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
            let base = log.trim_end_matches('/');
            let body = ureq::get(&format!("{base}/vouch/v1/lookup/{hash}"))
                .call()
                .with_context(|| format!("looking up {hash} in log {log}"))?
                .into_string()?;
            let v: serde_json::Value = serde_json::from_str(&body)
                .with_context(|| format!("log {log} answered a lookup with bad JSON"))?;
            let dir = out.join(format!("{hash}.vouch"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(
                !entries.is_empty(),
                "log {log} has no attestation for {hash}"
            );
            for (n, e) in entries.iter().enumerate() {
                let i = e["index"].as_u64().context("lookup entry without index")?;
                let proof = ureq::get(&format!("{base}/vouch/v1/bundle/{i}"))
                    .call()
                    .with_context(|| format!("fetching the proof of entry {i} from {log}"))?
                    .into_string()?;
                let f = dir.join(format!("{n}.tlog-proof"));
                std::fs::write(&f, proof).with_context(|| format!("writing {}", f.display()))?;
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Substituter {
            config,
            upstream,
            listen,
            bundles,
        } => {
            let v = Verifier::new(load_config(&config)?)?;
            let mut s = vouch::substituter::Substituter::new(v, upstream);
            s.bundles = bundles;
            let s = Arc::new(s);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                tracing::info!(addr = %l.local_addr()?, "substituter serving");
                vouch::serve::serve(
                    l,
                    vouch::substituter::router(s),
                    vouch::serve::Limits::default().fit_to_fd_limit(),
                    async {
                        let _ = tokio::signal::ctrl_c().await;
                    },
                )
                .await;
                anyhow::Ok(())
            })
        }
        Command::Backfill {
            cache,
            log,
            keys,
            paths,
            state,
            rate,
            batch,
        } => {
            let keys = keys
                .iter()
                .map(|k| {
                    vouch_spec::nix::NixPublicKey::parse(k).with_context(|| {
                        format!("--key {k:?} is not a Nix public key (name:base64)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let s = vouch::backfill::Settings {
                cache: &cache,
                log: &log,
                keys: &keys,
                rate,
                batch,
            };
            let r = vouch::backfill::run(&s, &paths, &state)?;
            println!(
                "backfilled {} paths: {} attestations submitted, {} missing from {cache}, {} bad signatures",
                r.paths, r.attestations, r.missing, r.bad_signatures
            );
            Ok(())
        }
        Command::PostBuildHook { key, spool } => {
            if let Err(e) = post_build_hook(&key, &spool) {
                // Never fail the build.
                eprintln!("vouch post-build-hook: {e:#} (the build is unaffected)");
            }
            Ok(())
        }
        Command::Sender {
            log,
            spool,
            batch,
            once,
        } => {
            let left = vouch::spool::run(&log, &spool, batch, once)
                .with_context(|| format!("spool {}", spool.display()))?;
            if left > 0 {
                bail!("{left} attestation(s) still in {} (log {log} unreachable or busy); run again later", spool.display());
            }
            Ok(())
        }
        Command::ClearFork { config } => {
            let cfg = load_config(&config)?;
            let text = std::fs::read(&cfg.policy_file)
                .with_context(|| format!("reading {}", cfg.policy_file.display()))?;
            let policy = vouch_spec::policy::Policy::parse(&text)?;
            let st = vouch::state::StateDir::open(&cfg.state_dir)?;
            for l in &policy.logs {
                let origin = vouch_spec::note::NoteVerifier::name(&l.verifier).to_string();
                st.clear_fork(&origin)?;
                println!("cleared fork flag for {origin}");
            }
            Ok(())
        }
    }
}
