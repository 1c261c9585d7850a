# The Vouch binaries: vouch (CLI, substituter, post-build hook, sender,
# backfill), vouch-log and vouch-witness (witness and monitor).
{ lib, rustPlatform }:

rustPlatform.buildRustPackage {
  pname = "vouch";
  version = "0.1.0";

  src = lib.cleanSourceWith {
    src = ../..;
    filter = path: type:
      let base = baseNameOf path; in
      !(type == "directory" && (base == "target" || base == ".git"));
  };
  cargoLock.lockFile = ../../Cargo.lock;

  # RocksDB's bindings are generated with libclang at build time.
  nativeBuildInputs = [ rustPlatform.bindgenHook ];

  cargoBuildFlags = [ "-p" "vouch" "-p" "vouch-log" "-p" "vouch-witness" ];
  # The test suite runs real Nix, nginx, Chromium and an S3 server: it is
  # run by the repository's .ci/run, not inside the Nix sandbox.
  doCheck = false;

  meta = {
    description = "Transparency log for Nix build attestations: log, witness, monitor and verifying substituter";
    license = lib.licenses.asl20;
    mainProgram = "vouch";
    platforms = lib.platforms.linux;
  };
}
