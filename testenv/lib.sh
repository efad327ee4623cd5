# Shared by testenv/cluster and testenv/chaos: where things live and how a node's kubelet runs.
# shellcheck shell=bash
TESTENV=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(dirname "$TESTENV")
STATE=${HAOPERATOR_TESTENV_STATE:-$TOP/.testenv}
CLUSTER=haoperator
NODES=(kwok-node-a kwok-node-b kwok-node-c)
ZONES=(a b c)
KUBECONFIG_FILE=$STATE/kubeconfig
export KWOK_WORKDIR=$STATE/kwok
# shellcheck source=/dev/null
. "$TESTENV/versions.env"
export KWOK_KUBE_VERSION=$K8S_VERSION

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }

bin_dir() {
  if [[ -z "${BIN:-}" ]]; then BIN=$("$TESTENV/build"); fi
  echo "$BIN"
}

kc() { "$(bin_dir)/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

node_index() {
  local i
  for i in "${!NODES[@]}"; do [[ "${NODES[$i]}" == "$1" ]] && { echo "$i"; return 0; }; done
  die "unknown node '$1' (nodes: ${NODES[*]})"
}

# Node i lives at 127.0.10.(i+1): its kwok serves the kubelet port there, so the addresses
# stay on loopback. Pod IPs come from the node's podCIDR and are only ever data.
node_ip() { echo "127.0.10.$(( $(node_index "$1") + 1 ))"; }

kubelet_pid_file() { echo "$STATE/run/kwok-$1.pid"; }

kubelet_running() {
  local pid_file; pid_file=$(kubelet_pid_file "$1")
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# The node's kubelet: one kwok process that manages only this node and its pods, renewing the
# node's Lease every few seconds. Killing it is what a dead node looks like to the cluster.
start_kubelet() {
  local node=$1 ip; ip=$(node_ip "$node")
  kubelet_running "$node" && return 0
  mkdir -p "$STATE/run" "$STATE/logs"
  setsid "$(bin_dir)/kwok" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --config "$STATE/stages.yaml" \
    --manage-single-node "$node" \
    --node-name "$node" --node-ip "$ip" --node-port 10250 \
    --server-address "$ip:10250" \
    --node-lease-duration-seconds 10 \
    >>"$STATE/logs/kwok-$node.log" 2>&1 </dev/null &
  echo $! >"$(kubelet_pid_file "$node")"
}

stop_kubelet() {
  local pid_file; pid_file=$(kubelet_pid_file "$1")
  if [[ -f "$pid_file" ]]; then
    kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
}
