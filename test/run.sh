#!/usr/bin/env bash
# `npm test`: the whole suite. Installs what it needs from apt (PostgreSQL,
# Redis, SIPp, espeak-ng, sox, Kamailio with its TLS module, Prometheus), builds the addon and TypeScript if needed,
# starts a throw-away PostgreSQL and Redis on random loopback ports, runs
# vitest (JSON report in .vitest-report.json for .ci/run), and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
missing=()
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v sipp >/dev/null || missing+=(sip-tester)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
# The cluster test (test/cluster) runs Kamailio in front of two nodes and Prometheus scraping them.
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
# test/sip/kamailio-tls.test.ts: Kamailio as the TLS peer (the SIPp here has no TLS).
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || missing+=(kamailio-tls-modules)
command -v prometheus >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test/run.sh: installing ${missing[*]} from apt" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

for addon in aybiza_media aybiza_reuseport aybiza_thread_exit; do
  [ -f build/Release/$addon.node ] || { npx --no-install node-gyp rebuild >/dev/null; break; }
done
npx --no-install tsc -p tsconfig.json

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

TMP=$(mktemp -d /tmp/aybiza-test.XXXXXX)
chmod 755 "$TMP"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
cleanup() {
  set +e
  if [ -f "$TMP/pg/postmaster.pid" ]; then run_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1; fi
  [ -f "$TMP/redis.pid" ] && kill "$(cat "$TMP/redis.pid")" 2>/dev/null
  rm -rf "$TMP"
}
# PostgreSQL refuses to run as root: use the postgres account when we are root.
run_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
trap cleanup EXIT

mkdir -p "$TMP/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$TMP/pg"
run_pg "$PG_BIN/initdb" -D "$TMP/pg" -U postgres --auth=trust -E UTF8 >/dev/null
run_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w -o "-p $PG_PORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log"

export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export AYBIZA_TEST_TMP="$TMP"
# As `aybiza` does (src/cli.ts): the AWS SDK's Node 22 notice, once per thread, is not a test result.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED="${AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED:-true}"
echo "test/run.sh: PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT" >&2

rm -f "$ROOT/.vitest-report.json"
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$ROOT/.vitest-report.json" "$@"
