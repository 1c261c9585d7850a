#!/bin/bash
# Publishing rate next to ingest: a log publishing tiles and proofs to local
# directories while vouch-bench ingest fills it; then how long until each
# destination caught up.
set -e
B=${B:-target/release}
N=${N:-200000}
D=/tmp/pubbench; rm -rf $D; mkdir -p $D
$B/vouch-log keygen --origin bench.local/pub --out $D/log.key > $D/vkey
cat > $D/config.toml <<EOC
[publish]
tiles = "file://$D/tiles"
proofs = "file://$D/cache"
EOC
VOUCH_LOG=warn $B/vouch-log serve --config $D/config.toml --data-dir $D/data --key $D/log.key --listen 127.0.0.1:18090 > $D/log.out 2>&1 &
LP=$!
sleep 2
t0=$(date +%s.%N)
$B/vouch-bench ingest --log http://127.0.0.1:18090 --entries $N > $D/ingest.json
t1=$(date +%s.%N)
tiles_done=""; proofs_done=""
while true; do
  m=$(curl -s http://127.0.0.1:18090/metrics)
  ts=$(echo "$m" | grep '^vouch_log_published_size{destination="tiles"}' | awk '{print $2}')
  ps=$(echo "$m" | grep '^vouch_log_published_size{destination="proofs"}' | awk '{print $2}')
  now=$(date +%s.%N)
  [ -z "$tiles_done" ] && [ "$ts" = "$N" ] && tiles_done=$now
  [ -z "$proofs_done" ] && [ "$ps" = "$N" ] && proofs_done=$now
  [ -n "$tiles_done" ] && [ -n "$proofs_done" ] && break
  sleep 0.2
done
echo "$m" | grep -E '^vouch_log_published_(objects|size)'
python3 - <<EOP
import json
i=json.load(open("$D/ingest.json"))
t0,t1,td,pd=$t0,$t1,$tiles_done,$proofs_done
print(json.dumps({"entries":$N,"ingest_per_sec":i["acked_per_sec"],"ingest_wall":t1-t0,"tiles_caught_up_after":td-t0,"proofs_caught_up_after":pd-t0,"tiles_entries_per_sec":$N/(td-t0),"proofs_entries_per_sec":$N/(pd-t0)}))
EOP
du -s --apparent-size -B1 $D/tiles $D/cache
find $D/tiles -type f | wc -l; find $D/cache -type f | wc -l
kill $LP
