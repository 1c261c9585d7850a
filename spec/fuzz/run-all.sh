#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 180), JOBS at a time
# (default 2), seeding each corpus from spec/testdata, and prints the
# executions libFuzzer reports for each target.
#
#   RUSTC_BOOTSTRAP=1 bash spec/fuzz/run-all.sh 600
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-180}
jobs=${JOBS:-2}
export RUSTC_BOOTSTRAP=1
cargo fuzz build >/dev/null
td=../testdata
seed() { mkdir -p "corpus/$1"; shift; for f in "$@"; do [ -f "$f" ] && cp "$f" "corpus/$(basename "$(dirname "$f")")-$(basename "$f")" 2>/dev/null || true; done; }
mkdir -p corpus/{note,checkpoint,bundle,narinfo,attestation,transition,tlog_proof,witness_request,vkey,tile_path,nix32,policy} logs
cp $td/tessera-log/checkpoint* corpus/note/; cp $td/tessera-log/checkpoint* corpus/checkpoint/
cp $td/tessera-log/tile/entries/000.p/* corpus/bundle/ 2>/dev/null || true
for f in $td/tessera-log/tile/entries/000.p/*; do cp "$f" "corpus/bundle/e$(basename "$f")"; done
cp $td/nix/*.narinfo corpus/narinfo/
printf 'tile/0/x001/234.p/5' > corpus/tile_path/a; printf 'tile/entries/000' > corpus/tile_path/b
printf '\x20%s' "1yhwyc0l5x5imibnlnzgscrwjsqmkgyxbq3hi9v2y0icby7036hs" > corpus/nix32/a
cp $td/nix/*.pub corpus/nix32/ 2>/dev/null || true
printf 'example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx' > corpus/vkey/a
# Entries, proofs, policies and witness requests from the worked examples.
awk '/^```$/{f=!f; if(!f){n++}; next} f{print > ("corpus/attestation/doc" n)}' ../PROTOCOL.md
cp corpus/attestation/doc* corpus/tlog_proof/; cp corpus/attestation/doc* corpus/transition/; cp corpus/attestation/doc* corpus/policy/; cp corpus/attestation/doc* corpus/witness_request/
targets=${TARGETS:-$(cargo fuzz list)}
run() {
  t=$1
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"logs/$t.log" 2>&1 || { echo "$t: FAILED (see spec/fuzz/logs/$t.log)"; return 1; }
  printf '%-16s %s execs in %ss\n' "$t" "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')" "$secs"
}
export -f run; export secs
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run {}'
