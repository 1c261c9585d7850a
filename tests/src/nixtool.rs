//! Running the real `nix` (Debian's nix-bin) in tests: builds, signing,
//! publishing a binary cache with `nix copy --to file://`, substituting
//! with `nix copy --from`, and `vouch verify` of a published narinfo.

use std::path::{Path, PathBuf};
use std::process::Command;

use vouch_spec::nix::{NarInfo, NixSecretKey};

use crate::binary;

/// Nix's settings for the tests: no daemon, no sandbox, no default
/// substituters, no narinfo caching (every ask reaches the substituter).
pub const NIX_CONFIG: &str = "experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters =\nnarinfo-cache-negative-ttl = 0\nnarinfo-cache-positive-ttl = 0";

/// Runs a Nix command (`args[0]` is the program) with [`NIX_CONFIG`] and
/// `home`: whether it succeeded, and its stderr then stdout.
pub fn nix(home: &Path, args: &[&str]) -> (bool, String) {
    nix_with(home, args, &[])
}

/// [`nix`] with extra environment variables (say, `NIX_SSL_CERT_FILE`).
pub fn nix_with(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .envs(env.iter().copied())
        .env("NIX_CONFIG", NIX_CONFIG)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .unwrap_or_else(|e| panic!("running {args:?} (install nix-bin, as .ci/run does): {e}"));
    // stderr first, stdout last, so callers find printed paths at the end.
    let text = format!(
        "{}\n--- stdout ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

/// [`nix`], which must succeed.
pub fn must(home: &Path, args: &[&str]) -> String {
    let (ok, out) = nix(home, args);
    assert!(ok, "{args:?} failed:\n{out}");
    out
}

/// Runs `nix-build <args> --no-out-link` and returns the store path it printed.
pub fn nix_build(home: &Path, args: &[&str]) -> String {
    let mut a = vec!["nix-build"];
    a.extend_from_slice(args);
    a.push("--no-out-link");
    let out = must(home, &a);
    out.lines()
        .rev()
        .find(|l| l.starts_with("/nix/store/"))
        .unwrap_or_else(|| panic!("no store path in:\n{out}"))
        .trim()
        .to_string()
}

/// Writes `k` as a Nix secret key file in `dir`.
pub fn key_file(dir: &Path, k: &NixSecretKey) -> PathBuf {
    let p = dir.join(format!("{}.sec", k.name()));
    std::fs::write(&p, k.encode()).unwrap();
    p
}

/// `vouch verify --config <config>` of the cached narinfo of `store_path`,
/// with these tlog-proof files (by number, from `<hash>.vouch/`): its exit
/// code and what it printed.
pub fn vouch_verify(
    config: &Path,
    cache: &Path,
    store_path: &str,
    bundles: &[u32],
) -> (Option<i32>, String) {
    let hash = &Path::new(store_path).file_name().unwrap().to_str().unwrap()[..32];
    let mut c = Command::new(binary("vouch"));
    c.args(["verify", "--config"])
        .arg(config)
        .arg(cache.join(format!("{hash}.narinfo")));
    for b in bundles {
        c.arg("--bundle")
            .arg(cache.join(format!("{hash}.vouch/{b}.tlog-proof")));
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `nix copy --to file://<cache>` the paths: publish them as a binary cache.
pub fn publish(home: &Path, cache: &Path, paths: &[&str]) {
    let to = format!("file://{}", cache.display());
    let mut args = vec!["nix", "copy", "--to", &to];
    args.extend_from_slice(paths);
    must(home, &args);
}

/// `nix copy --from <substituter> --to <dest> <path>`, trusting the keys
/// `tpk` (space-separated): whether Nix took it, and what it printed.
pub fn copy_from(home: &Path, sub: &str, dest: &Path, path: &str, tpk: &str) -> (bool, String) {
    nix(
        home,
        &[
            "nix",
            "copy",
            "--from",
            sub,
            "--to",
            dest.to_str().unwrap(),
            path,
            "--option",
            "trusted-public-keys",
            tpk,
        ],
    )
}

/// `nix store sign` the paths with `k` (its key file written into `dir`).
pub fn sign(home: &Path, dir: &Path, k: &NixSecretKey, paths: &[&str]) {
    let f = key_file(dir, k);
    let mut args = vec!["nix", "store", "sign", "--key-file", f.to_str().unwrap()];
    args.extend_from_slice(paths);
    must(home, &args);
}

/// The narinfo a `file://` cache in `cache` holds for `store_path`.
pub fn narinfo(cache: &Path, store_path: &str) -> NarInfo {
    let hash = &Path::new(store_path).file_name().unwrap().to_str().unwrap()[..32];
    NarInfo::parse(&std::fs::read(cache.join(format!("{hash}.narinfo"))).unwrap()).unwrap()
}

/// A derivation named `name` that runs `script` with `/bin/sh -c`, as a
/// Nix expression: the tests' packages (`$out` and `${...}` in `script`
/// are Nix's).
pub fn sh_derivation(name: &str, script: &str) -> String {
    format!(
        r#"derivation {{ name = "{name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "{script}" ]; }}"#
    )
}

/// Builds a one-line derivation `vouch-<tag>-hello` (its output unique to
/// this process), signs it with each of `keys` and `nix copy`s it to the
/// `file://` cache `cache`. Returns the Nix home (under `dir`) and the
/// store path.
pub fn signed_hello(
    dir: &Path,
    tag: &str,
    keys: &[NixSecretKey],
    cache: &Path,
) -> (PathBuf, String) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nonce = std::process::id();
    std::fs::write(
        dir.join("default.nix"),
        format!(
            "{{ hello = {}; }}",
            sh_derivation(
                &format!("vouch-{tag}-hello"),
                &format!("echo {tag} {nonce} > $out")
            )
        ),
    )
    .unwrap();
    let hello = nix_build(
        &home,
        &[dir.join("default.nix").to_str().unwrap(), "-A", "hello"],
    );
    for k in keys {
        sign(&home, dir, k, &[&hello]);
    }
    publish(&home, cache, &[&hello]);
    (home, hello)
}
