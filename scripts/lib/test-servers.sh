# Test servers on 127.0.0.1 for the cluster-profile tests: RabbitMQ, MariaDB and a MongoDB-wire
# server (SecantusDB), each on free ports with its data in a fresh temporary folder, started
# with setsid and stopped by pid. Source this file, then:
#
#   start_test_servers   # exports MP3C_TEST_AMQP_URL (no vhost), MP3C_TEST_RABBITMQ_API,
#                        # MP3C_TEST_RABBITMQ_PROMETHEUS (host:port of its rabbitmq_prometheus
#                        # plugin), MP3C_TEST_MYSQL_URL, MP3C_TEST_MONGODB_URL
#   stop_test_servers    # (also registered on EXIT)
#
# The server binaries come from scripts/install-deps --test.

TEST_SERVERS_DIR=""
TEST_SERVER_PIDS=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "test servers: $what did not come up within ${seconds}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

port_open() {
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1"
}

# True when RabbitMQ's management API on PORT answers (python3 rather than curl, which a fresh
# machine may lack).
management_api_answers() {
  python3 - "$1" <<'PY'
import base64, sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/overview")
request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
urllib.request.urlopen(request, timeout=2)
PY
}

rabbitmq_env() {
  local dir=$TEST_SERVERS_DIR/rabbitmq
  echo "HOME=$dir" \
    "RABBITMQ_NODENAME=rabbit@localhost" \
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
    "RABBITMQ_NODE_PORT=$RABBITMQ_PORT" \
    "RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT" \
    "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
    "RABBITMQ_LOG_BASE=$dir/log" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
    "RABBITMQ_PID_FILE=$dir/rabbitmq.pid" \
    "ERL_EPMD_ADDRESS=127.0.0.1" \
    "ERL_EPMD_PORT=$EPMD_PORT"
}

start_rabbitmq() {
  local dir=$TEST_SERVERS_DIR/rabbitmq
  mkdir -p "$dir/mnesia" "$dir/log"
  EPMD_PORT=$(free_port) RABBITMQ_PORT=$(free_port) RABBITMQ_DIST_PORT=$(free_port)
  local management_port prometheus_port
  management_port=$(free_port) prometheus_port=$(free_port)
  cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$RABBITMQ_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $management_port
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $prometheus_port
CONF
  echo '[rabbitmq_management,rabbitmq_prometheus].' >"$dir/enabled_plugins"
  local erl_args='-kernel inet_dist_use_interface {127,0,0,1}'
  setsid env ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT" epmd -address 127.0.0.1 -port "$EPMD_PORT" \
    >"$dir/epmd.log" 2>&1 &
  TEST_SERVER_PIDS+=($!)
  # shellcheck disable=SC2046
  setsid env $(rabbitmq_env) RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$erl_args" RABBITMQ_CTL_ERL_ARGS="$erl_args" \
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.log" 2>&1 &
  RABBITMQ_SHELL_PID=$!
  wait_until 60 "RabbitMQ's AMQP port" port_open "$RABBITMQ_PORT"
  # shellcheck disable=SC2046
  wait_until 60 "RabbitMQ" env $(rabbitmq_env) RABBITMQ_CTL_ERL_ARGS="$erl_args" \
    /usr/lib/rabbitmq/bin/rabbitmq-diagnostics -q check_running
  TEST_SERVER_PIDS+=("$(cat "$dir/rabbitmq.pid")" "$RABBITMQ_SHELL_PID")
  export MP3C_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT"
  export MP3C_TEST_RABBITMQ_API="http://guest:guest@127.0.0.1:$management_port/api"
  export MP3C_TEST_RABBITMQ_PROMETHEUS="127.0.0.1:$prometheus_port"
  wait_until 60 "RabbitMQ's management API" management_api_answers "$management_port"
}

start_mariadb() {
  local dir=$TEST_SERVERS_DIR/mariadb port
  port=$(free_port)
  mkdir -p "$dir/data"
  mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$dir/install.log" 2>&1
  setsid mariadbd --no-defaults --user=root --datadir="$dir/data" --bind-address=127.0.0.1 --port="$port" \
    --socket="$dir/socket" --pid-file="$dir/mariadb.pid" --skip-name-resolve --innodb-buffer-pool-size=64M \
    >"$dir/server.log" 2>&1 &
  TEST_SERVER_PIDS+=($!)
  wait_until 30 "MariaDB" mariadb-admin --no-defaults --socket="$dir/socket" -uroot ping
  mariadb --no-defaults --socket="$dir/socket" -uroot -e \
    "CREATE DATABASE mp3c; CREATE USER 'u'@'127.0.0.1' IDENTIFIED BY 'test-password'; GRANT ALL ON *.* TO 'u'@'127.0.0.1';"
  export MP3C_TEST_MYSQL_URL="mysql://u:test-password@127.0.0.1:$port/mp3c"
}

start_secantus() {
  local dir=$TEST_SERVERS_DIR/secantus port
  port=$(free_port)
  mkdir -p "$dir/data"
  setsid .tools/venv/bin/secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$dir/data" \
    --cache-size 256M --log-level WARNING >"$dir/server.log" 2>&1 &
  TEST_SERVER_PIDS+=($!)
  wait_until 60 "SecantusDB" port_open "$port"
  export MP3C_TEST_MONGODB_URL="mongodb://127.0.0.1:$port/?directConnection=true"
}

start_test_servers() {
  TEST_SERVERS_DIR=$(mktemp -d /tmp/mp3c-test-servers.XXXXXX)
  trap stop_test_servers EXIT
  start_mariadb
  start_secantus
  start_rabbitmq
  echo "test servers up in $TEST_SERVERS_DIR" >&2
}

# Stops every server by its pid (newest first), waits for them, and removes their data.
stop_test_servers() {
  local pid
  for ((i = ${#TEST_SERVER_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${TEST_SERVER_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${TEST_SERVER_PIDS[@]}"; do
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  TEST_SERVER_PIDS=()
  if [[ -n "$TEST_SERVERS_DIR" ]]; then
    rm -rf "$TEST_SERVERS_DIR"
    TEST_SERVERS_DIR=""
  fi
}
