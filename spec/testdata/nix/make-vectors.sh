#!/usr/bin/env bash
# Regenerates the Nix test vectors in this directory with the real `nix`
# (Debian's nix-bin, Nix 2.8), as root, without a daemon. It builds into the
# local /nix/store (a chroot store would hide /bin/sh from the builder); the
# derivations are tiny and nothing else in the store is touched.
#
#   bash spec/testdata/nix/make-vectors.sh
#
# Outputs: builder-1.sec/.pub (nix key generate-secret), builder-2.sec/.pub
# (nix-store --generate-binary-cache-key), hello.narinfo and dep.narinfo as
# written by `nix copy --to file://`, both signed by both keys, and
# path-info.json from `nix path-info --json`.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NIX_CONFIG=$'experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters ='
export NIX_STORE_DIR=/nix/store
nix key generate-secret --key-name builder-1.example.org-1 > "$out/builder-1.sec"
nix key convert-secret-to-public < "$out/builder-1.sec" > "$out/builder-1.pub"
nix-store --generate-binary-cache-key builder-2.example.org-1 "$out/builder-2.sec" "$out/builder-2.pub"
cat > "$work/default.nix" <<'NIX'
rec {
  dep = derivation {
    name = "vouch-dep";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo dependency > $out" ];
  };
  hello = derivation {
    name = "vouch-hello";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo hello from vouch > $out; echo ${dep} >> $out" ];
  };
}
NIX
hello=$(nix-build "$work/default.nix" -A hello --no-out-link)
dep=$(nix-build "$work/default.nix" -A dep --no-out-link)
nix store sign --key-file "$out/builder-1.sec" "$hello" "$dep"
nix store sign --key-file "$out/builder-2.sec" "$hello" "$dep"
nix copy --to "file://$work/cache" "$hello"
cp "$work/cache/$(basename "$hello" | cut -c1-32).narinfo" "$out/hello.narinfo"
cp "$work/cache/$(basename "$dep" | cut -c1-32).narinfo" "$out/dep.narinfo"
nix path-info --json "$hello" > "$out/path-info.json"
echo "$hello" > "$out/hello.path"
