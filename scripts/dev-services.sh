#!/usr/bin/env bash
# Local test infrastructure for CalHub: a private PostgreSQL cluster and a
# single-node Apache Kafka (KRaft, broker+controller in one JVM).
#
#   scripts/dev-services.sh up       install what is missing, start both, wait until they answer
#   scripts/dev-services.sh down     stop both
#   scripts/dev-services.sh status   show what runs (exit 0 only if both run)
#   scripts/dev-services.sh env      print the export lines the tests read:
#                                      eval "$(scripts/dev-services.sh env)"
#   scripts/dev-services.sh kafka-stop   stop only the broker, keeping its data (broker-outage tests)
#   scripts/dev-services.sh kafka-start  start only the broker again
#   scripts/dev-services.sh pg-restart   restart only PostgreSQL (fast shutdown: every connection is cut)
#
# Every command is idempotent. State (data, logs, pid files, the Kafka jars)
# lives in ${CALHUB_DEV_DIR:-<repo>/.dev}; `down` keeps it, `rm -rf .dev` resets.
#
# Knobs (environment):
#   CALHUB_DEV_DIR                 state dir                  (default <repo>/.dev)
#   CALHUB_PG_PORT                 PostgreSQL TCP port        (default 55432)
#   CALHUB_KAFKA_PORT              Kafka client port          (default 59092)
#   CALHUB_KAFKA_CONTROLLER_PORT   KRaft controller port      (default 59093)
#   CALHUB_SERVICES_TIMEOUT        seconds to wait for each   (default 120)
#   CALHUB_KAFKA_HEAP              JVM heap options           (default "-Xmx512m -Xms256m")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${CALHUB_DEV_DIR:-$REPO/.dev}"
PG_PORT="${CALHUB_PG_PORT:-55432}"
KAFKA_PORT="${CALHUB_KAFKA_PORT:-59092}"
KAFKA_CTRL_PORT="${CALHUB_KAFKA_CONTROLLER_PORT:-59093}"
TIMEOUT="${CALHUB_SERVICES_TIMEOUT:-120}"
KAFKA_HEAP="${CALHUB_KAFKA_HEAP:--Xmx512m -Xms256m}"
PYTHON="${PYTHON:-python3}"

PG_DB=calhub
PG_USER=calhub
PG_PASSWORD=calhub

KAFKA_POM="$REPO/scripts/kafka/pom.xml"
KAFKA_DIR="$DEV/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_DIR/log4j2.properties"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_PID="$KAFKA_DIR/kafka.pid"

log() { printf '[dev-services %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[dev-services] ERROR: %s\n' "$*" >&2; exit 1; }

# Is something listening on 127.0.0.1:$1 ?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------- PostgreSQL

PGBIN=""
find_pg_bin() {
    local d
    # Debian layout first, newest major version first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then PGBIN="$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PGBIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
        return 0
    fi
    return 1
}

ensure_pg_installed() {
    find_pg_bin && return 0
    apt_install postgresql
    find_pg_bin || die "PostgreSQL binaries still not found after apt-get install postgresql"
}

# PostgreSQL refuses to run as root: when we are root, run it as a system user.
PG_OS_USER=""
pg_pick_user() {
    [ "$(id -u)" -eq 0 ] || { PG_OS_USER=""; return; }
    if id postgres >/dev/null 2>&1; then
        PG_OS_USER=postgres
    else
        id calhub >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin calhub
        PG_OS_USER=calhub
    fi
}

pg_run() {  # run a command as the cluster owner
    if [ -n "$PG_OS_USER" ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# Where the cluster lives. Normally $DEV/pg; if the postgres OS user cannot
# reach that path (e.g. the checkout is under /root), use a directory under
# /var/tmp keyed by the state dir, and leave a symlink in $DEV for humans.
PG_ROOT=""
pg_resolve_root() {
    if [ -L "$DEV/pg" ]; then PG_ROOT="$(readlink "$DEV/pg")"; return; fi
    PG_ROOT="$DEV/pg"
    [ -n "$PG_OS_USER" ] || return 0
    mkdir -p "$PG_ROOT"
    if ! runuser -u "$PG_OS_USER" -- test -x "$PG_ROOT"; then
        local alt
        alt="/var/tmp/calhub-dev-pg-$(printf '%s' "$DEV" | sha1sum | cut -c1-12)"
        log "$PG_OS_USER cannot reach $PG_ROOT; keeping the cluster in $alt"
        rmdir "$PG_ROOT" 2>/dev/null || true
        mkdir -p "$alt"
        ln -sfn "$alt" "$DEV/pg"
        PG_ROOT="$alt"
    fi
}

pg_paths() {
    PGDATA_DIR="$PG_ROOT/data"
    PG_LOG="$PG_ROOT/postgres.log"
    # An existing cluster needs the major version that created it.
    local v
    v="$(cat "$PGDATA_DIR/PG_VERSION" 2>/dev/null || true)"
    if [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then PGBIN="/usr/lib/postgresql/$v/bin"; fi
}

pg_setup() {
    ensure_pg_installed
    pg_pick_user
    mkdir -p "$DEV"
    pg_resolve_root
    pg_paths
    mkdir -p "$PG_ROOT"
    if [ -n "$PG_OS_USER" ]; then chown "$PG_OS_USER:" "$PG_ROOT"; fi
    chmod 700 "$PG_ROOT"

    if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
        rm -rf "$PGDATA_DIR"
        log "initdb ($PGBIN) -> $PGDATA_DIR"
        pg_run "$PGBIN/initdb" -D "$PGDATA_DIR" -U "$PG_USER" --auth=trust \
            -E UTF8 --locale=C --no-sync >"$PG_ROOT/initdb.log" 2>&1 \
            || { cat "$PG_ROOT/initdb.log" >&2; die "initdb failed (log: $PG_ROOT/initdb.log)"; }
        echo "include_if_exists = 'calhub.conf'" | pg_run tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
    # (Re)written on every `up` so port changes take effect on the next start.
    pg_run tee "$PGDATA_DIR/calhub.conf" >/dev/null <<EOF
# written by scripts/dev-services.sh -- throwaway test cluster, NOT crash safe
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
dynamic_shared_memory_type = mmap
max_parallel_workers_per_gather = 0
shared_buffers = 128MB
log_min_messages = warning
log_min_error_statement = error
EOF
}

pg_running() {
    [ -n "$PGBIN" ] && [ -f "${PGDATA_DIR:-/nonexistent}/postmaster.pid" ] \
        && pg_run "$PGBIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

pg_ready() {
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d "$PG_DB" -U "$PG_USER" 2>/dev/null
}

pg_up() {
    reserve_ports
    pg_setup
    if pg_running; then
        log "postgres already running (port $PG_PORT)"
    else
        if port_open "$PG_PORT"; then
            die "port $PG_PORT is taken by another process; set CALHUB_PG_PORT"
        fi
        log "starting postgres on 127.0.0.1:$PG_PORT"
        # 9>&-: the daemon must not inherit (and so hold forever) our lock fd.
        pg_run "$PGBIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$TIMEOUT" -s 9>&- \
            || { tail -n 30 "$PG_LOG" >&2 || true; die "postgres failed to start (log: $PG_LOG)"; }
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until pg_ready; do
        [ $SECONDS -lt $deadline ] || die "postgres not ready after ${TIMEOUT}s (log: $PG_LOG)"
        sleep 0.2
    done
    local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER")
    "${psql[@]}" -d postgres -c "ALTER ROLE $PG_USER WITH SUPERUSER LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null
    if [ "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
    fi
    [ "$("${psql[@]}" -d "$PG_DB" -tAc 'select 1')" = 1 ] || die "postgres: select 1 failed (log: $PG_LOG)"
    log "postgres ready: postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
}

pg_down() {
    find_pg_bin || return 0
    pg_pick_user
    [ -e "$DEV/pg" ] || return 0
    pg_resolve_root
    pg_paths
    if pg_running; then
        log "stopping postgres"
        pg_run "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 -s
    fi
}

pg_status() {
    if ! find_pg_bin || [ ! -e "$DEV/pg" ]; then echo "postgres: not set up"; return 1; fi
    pg_pick_user
    pg_resolve_root
    pg_paths
    if pg_running; then
        echo "postgres: running  pid=$(head -n1 "$PGDATA_DIR/postmaster.pid")  127.0.0.1:$PG_PORT  data=$PGDATA_DIR  bin=$PGBIN  log=$PG_LOG"
    else
        echo "postgres: stopped  data=$PGDATA_DIR"
        return 1
    fi
}

# --------------------------------------------------------------------- Kafka

ensure_java_maven() {
    local pkgs=()
    command -v java >/dev/null 2>&1 || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
    [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
}

kafka_fetch_libs() {
    local stamp want
    want="$(sha1sum "$KAFKA_POM" | cut -c1-40)"
    stamp="$KAFKA_LIBS/.pom.sha1"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    ensure_java_maven
    log "fetching Kafka jars from Maven Central (scripts/kafka/pom.xml)"
    rm -rf "$KAFKA_LIBS.tmp"
    mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DoutputDirectory="$KAFKA_LIBS.tmp" -DincludeScope=runtime >"$KAFKA_DIR/mvn.log" 2>&1 \
        || { tail -n 40 "$KAFKA_DIR/mvn.log" >&2; die "mvn dependency:copy-dependencies failed (log: $KAFKA_DIR/mvn.log)"; }
    ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after mvn"
    echo "$want" >"$KAFKA_LIBS.tmp/.pom.sha1"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
}

kafka_write_config() {
    mkdir -p "$KAFKA_DATA"
    cat >"$KAFKA_PROPS" <<EOF
# written by scripts/dev-services.sh -- single-node KRaft broker for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
log.retention.hours=24
log.segment.bytes=67108864
EOF
    cat >"$KAFKA_LOG4J" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# config dumps and per-request chatter
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
# one line per partition per topic otherwise: tests create many topics
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.partition.name = kafka.cluster
logger.partition.level = WARN
logger.kafkalog.name = kafka.log
logger.kafkalog.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
logger.coordinator.name = org.apache.kafka.coordinator
logger.coordinator.level = WARN
logger.kcoordinator.name = kafka.coordinator
logger.kcoordinator.level = WARN
logger.replica.name = kafka.server.ReplicaFetcherManager
logger.replica.level = WARN
EOF
}

kafka_java() {  # java with the fetched classpath and our log4j config
    java -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
        -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_format() {
    # Formatted once; the stamp records the Kafka version that formatted it.
    local version
    version="$(basename "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar)" .jar)"
    if [ -f "$KAFKA_DATA/meta.properties" ] && [ "$(cat "$KAFKA_DIR/formatted" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    rm -rf "$KAFKA_DATA"
    mkdir -p "$KAFKA_DATA"
    local cid
    cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [ -n "$cid" ] || die "kafka StorageTool random-uuid failed"
    log "formatting Kafka storage ($version, cluster id $cid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
        >"$KAFKA_DIR/format.log" 2>&1 \
        || { tail -n 30 "$KAFKA_DIR/format.log" >&2; die "kafka storage format failed (log: $KAFKA_DIR/format.log)"; }
    echo "$version" >"$KAFKA_DIR/formatted"
}

kafka_pid() {  # prints the pid if our broker is alive
    local pid
    [ -f "$KAFKA_PID" ] || return 1
    pid="$(cat "$KAFKA_PID")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "kafka.Kafka $KAFKA_PROPS" || return 1
    echo "$pid"
}

kafka_probe() {  # a real metadata request, when aiokafka is importable
    "$PYTHON" - "127.0.0.1:$KAFKA_PORT" <<'EOF'
import asyncio, sys
from aiokafka import AIOKafkaProducer

async def main(bs):
    p = AIOKafkaProducer(bootstrap_servers=bs, request_timeout_ms=5000)
    await p.start()  # bootstrap: ApiVersions + Metadata
    try:
        md = await p.client.fetch_all_metadata()
        assert md.brokers(), "no brokers in metadata"
    finally:
        await p.stop()

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
EOF
}

# Our ports lie in Linux's ephemeral range (32768-60999): an outgoing connection may take one as its source
# port -- a client retrying against a stopped broker can even connect to itself on 59092 -- and then the
# broker cannot bind it on restart ("Address already in use"). Reserve them where we may (root, writable
# /proc/sys); elsewhere this is a no-op.
reserve_ports() {
    local f=/proc/sys/net/ipv4/ip_local_reserved_ports cur
    [ -w "$f" ] || return 0
    cur="$(cat "$f" 2>/dev/null || true)"
    echo "${cur:+$cur,}$PG_PORT,$KAFKA_PORT,$KAFKA_CTRL_PORT" >"$f" 2>/dev/null || true
}

kafka_up() {
    reserve_ports
    mkdir -p "$KAFKA_DIR"
    kafka_fetch_libs
    kafka_write_config
    local pid
    if pid="$(kafka_pid)"; then
        log "kafka already running (pid $pid, port $KAFKA_PORT)"
    else
        local p
        for p in "$KAFKA_PORT" "$KAFKA_CTRL_PORT"; do
            port_open "$p" && die "port $p is taken by another process; set CALHUB_KAFKA_PORT / CALHUB_KAFKA_CONTROLLER_PORT"
        done
        command -v java >/dev/null 2>&1 || ensure_java_maven
        kafka_format
        if [ -f "$KAFKA_LOG" ]; then mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"; fi
        log "starting kafka on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CTRL_PORT)"
        # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM options
        nohup setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
            -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_DIR" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
            </dev/null >"$KAFKA_LOG" 2>&1 9>&- &
        echo $! >"$KAFKA_PID"
    fi
    pid="$(cat "$KAFKA_PID")"

    local deadline=$((SECONDS + TIMEOUT))
    local fail="kafka not ready after ${TIMEOUT}s (log: $KAFKA_LOG)"
    until port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$KAFKA_LOG" >&2 || true
            rm -f "$KAFKA_PID"
            die "kafka exited during startup (log: $KAFKA_LOG)"
        fi
        [ $SECONDS -lt $deadline ] || { tail -n 40 "$KAFKA_LOG" >&2 || true; die "$fail"; }
        sleep 0.3
    done
    if "$PYTHON" -c 'import aiokafka' >/dev/null 2>&1; then
        until kafka_probe 2>"$KAFKA_DIR/probe.err"; do
            [ $SECONDS -lt $deadline ] || { cat "$KAFKA_DIR/probe.err" >&2; die "$fail; metadata request failing"; }
            sleep 0.5
        done
        log "kafka ready: 127.0.0.1:$KAFKA_PORT (metadata request ok)"
    else
        log "kafka ready: 127.0.0.1:$KAFKA_PORT (port open + 'Kafka Server started'; aiokafka not importable for a metadata check)"
    fi
}

kafka_down() {
    local pid
    if pid="$(kafka_pid)"; then
        log "stopping kafka (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 60))
        while kill -0 "$pid" 2>/dev/null; do
            if [ $SECONDS -ge $deadline ]; then
                log "kafka did not stop in 60s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    fi
    rm -f "$KAFKA_PID"
}

kafka_status() {
    local pid
    if pid="$(kafka_pid)"; then
        local ver
        ver="$(cat "$KAFKA_DIR/formatted" 2>/dev/null || echo '?')"
        echo "kafka:    running  pid=$pid  127.0.0.1:$KAFKA_PORT (controller $KAFKA_CTRL_PORT)  $ver  log=$KAFKA_LOG"
    else
        echo "kafka:    stopped"
        return 1
    fi
}

# ---------------------------------------------------------------------- main

with_lock() {  # serialise concurrent up/down on the same state dir
    mkdir -p "$DEV"
    exec 9>"$DEV/.lock"
    flock -w 300 9 || die "another dev-services.sh up/down holds $DEV/.lock for 300s (or a leftover daemon inherited the lock fd)"
}

print_env() {
    echo "export CALHUB_TEST_DATABASE_URL=postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
    echo "export CALHUB_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"
}

cmd="${1:-}"
case "$cmd" in
    up)
        with_lock
        start=$SECONDS
        pg_up
        kafka_up
        log "all services up in $((SECONDS - start))s; use: eval \"\$($0 env)\""
        ;;
    down)
        with_lock
        rc=0
        kafka_down || rc=1
        pg_down || rc=1
        log "services stopped"
        exit $rc
        ;;
    status)
        rc=0
        pg_status || rc=3
        kafka_status || rc=3
        exit $rc
        ;;
    env)
        print_env
        ;;
    kafka-stop)  # only the broker, data kept: broker-outage tests (pytest -m broker_outage)
        with_lock
        kafka_down
        log "kafka stopped (data kept; start it again with: $0 kafka-start)"
        ;;
    kafka-start)  # only the broker, on its existing data
        with_lock
        kafka_up
        ;;
    pg-restart)  # only PostgreSQL, data kept: database-outage tests (pytest -m broker_outage)
        with_lock
        pg_down
        pg_up
        ;;
    *)
        echo "usage: $0 up|down|status|env|kafka-stop|kafka-start|pg-restart" >&2
        exit 2
        ;;
esac
