#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker and controller in one JVM) on 127.0.0.1, for local
# runs and tests. The jars come from Maven Central through pom.xml beside this script.
#
#   kafka.sh start [-d DATADIR] [-p PORT]             start; prints the bootstrap address on stdout
#   kafka.sh start [-d DATADIR] [-p PORT] -- CMD ...  start, run CMD with ORCH_TEST_KAFKA_BOOTSTRAP
#                                                     set, then stop and remove DATADIR
#   kafka.sh stop [-d DATADIR] [--remove]             stop the broker started in DATADIR
#
# PORT (default 19092) is the client listener; PORT+1 is the controller's. DATADIR defaults to a
# fresh temporary directory for start. Only the broker's own PID is ever signalled.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
libs="$here/target/libs"
port="${ORCH_KAFKA_PORT:-19092}"
datadir=""
remove=0

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

command="${1:-}"
[[ -n "$command" ]] && shift
run_after=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -d) datadir="${2:?-d needs a directory}"; shift 2 ;;
    -p) port="${2:?-p needs a port}"; shift 2 ;;
    --remove) remove=1; shift ;;
    --) shift; run_after=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0" >&2; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

fetch_jars() {
  if [[ -f "$libs/.complete" ]]; then
    return
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: maven) to fetch the broker"
  say "fetching the Kafka broker jars with Maven (once; cached in $libs)"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies >&2 || die "Maven could not fetch the jars"
  touch "$libs/.complete"
}

pid_of() { [[ -f "$datadir/kafka.pid" ]] && cat "$datadir/kafka.pid"; }

stop_broker() {
  local pid
  pid="$(pid_of || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "broker $pid did not stop in 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$datadir/kafka.pid"
  if [[ "$remove" == 1 ]]; then
    rm -rf "$datadir"
  fi
}

write_config() {
  local controller=$((port + 1))
  cat > "$datadir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${datadir}/logs
num.partitions=6
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
log.retention.hours=24
PROPS
  cat > "$datadir/log4j2.properties" <<LOG
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${datadir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
LOG
}

java_run() {
  java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$datadir/log4j2.properties" \
    -cp "$libs/*" "$@"
}

answers() {
  # The client port accepts connections and the broker logged that it finished starting.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
  grep -q "Kafka Server started" "$datadir/server.log" 2>/dev/null
}

start_broker() {
  command -v java >/dev/null || die "java not found: install a JDK 17+ (Debian: openjdk-17-jdk-headless)"
  fetch_jars
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (another broker? pass -p PORT)"
  fi
  mkdir -p "$datadir/logs"
  write_config
  # A data directory that was formatted before keeps its cluster id and its topics: starting
  # again after a stop must not try to format it as a new cluster (Kafka refuses that).
  if [ ! -f "$datadir/logs/meta.properties" ]; then
    local cluster
    cluster="$(java_run kafka.tools.StorageTool random-uuid 2>>"$datadir/server.log" | tail -n 1)"
    java_run kafka.tools.StorageTool format -t "$cluster" -c "$datadir/server.properties" \
      >>"$datadir/server.log" 2>&1 || { tail -n 40 "$datadir/server.log" >&2; die "formatting storage failed"; }
  fi
  # Its own session, so a terminal's Ctrl-C or the caller's process group never reaches it;
  # it is stopped by its PID only.
  setsid java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$datadir/log4j2.properties" -cp "$libs/*" \
    kafka.Kafka "$datadir/server.properties" >>"$datadir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$datadir/kafka.pid"
  for _ in $(seq 1 120); do
    if answers; then
      say "broker $(pid_of) up on 127.0.0.1:$port (data: $datadir)"
      echo "127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$(pid_of)" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  say "the broker did not come up; last lines of $datadir/server.log:"
  tail -n 40 "$datadir/server.log" >&2 || true
  tail -n 20 "$datadir/stdout.log" >&2 || true
  stop_broker
  exit 1
}

case "$command" in
  start)
    if [[ -z "$datadir" ]]; then
      datadir="$(mktemp -d /tmp/orch-kafka.XXXXXX)"
      remove=1  # ours alone: a failed start must not leave it behind
    fi
    mkdir -p "$datadir"
    datadir="$(cd "$datadir" && pwd)"
    bootstrap="$(start_broker)" || { [[ "$remove" == 1 ]] && rm -rf "$datadir"; exit 1; }
    if [[ ${#run_after[@]} -gt 0 ]]; then
      remove=1
      trap stop_broker EXIT
      set +e
      ORCH_TEST_KAFKA_BOOTSTRAP="$bootstrap" "${run_after[@]}"
      status=$?
      set -e
      exit "$status"
    fi
    echo "$bootstrap"
    ;;
  stop)
    [[ -n "$datadir" ]] || die "stop needs -d DATADIR (the one start used)"
    stop_broker
    ;;
  *) die "usage: kafka.sh start|stop [options] (see --help)" ;;
esac
