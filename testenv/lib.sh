# Shared by testenv/cluster, testenv/chaos and testenv/node: where things live and how a fake
# node's kubelet (kwok) runs.
# shellcheck shell=bash
TESTENV=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(dirname "$TESTENV")
STATE=${HAOPERATOR_TESTENV_STATE:-$TOP/.testenv}
CLUSTER=haoperator
NODES=(kwok-node-a kwok-node-b kwok-node-c)
ZONES=(a b c)
KUBECONFIG_FILE=$STATE/kubeconfig
# The real node (testenv/node): a kubelet running containers beside the fake nodes. Its taint
# REAL_NODE_LABEL=true:NoSchedule keeps off every pod that does not tolerate it; tests that
# need real containers tolerate it and select the label REAL_NODE_LABEL=true.
# HAOPERATOR_REAL_NODE=0 leaves it out of `testenv/cluster up`.
REAL_NODE=real-node
# shellcheck disable=SC2034  # used by testenv/node
REAL_NODE_LABEL=haoperator.dev/real-node
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
  [[ "$1" == "$REAL_NODE" ]] && die "$1 is the real node, not a kwok node: testenv/node down|up stops or starts it"
  die "unknown node '$1' (kwok nodes: ${NODES[*]})"
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

# need_debs PKG...: install the Debian packages that are missing, saying which, once per machine.
# A package that cannot be installed is named and stops the caller.
need_debs() {
  local missing=() pkg
  for pkg in "$@"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] || missing+=("$pkg")
  done
  (( ${#missing[@]} )) || return 0
  command -v apt-get >/dev/null || die "needs the Debian packages ${missing[*]} (no apt-get here: install them)"
  [[ $EUID -eq 0 ]] || die "needs the Debian packages ${missing[*]}: install them as root"
  mkdir -p "$STATE/logs"
  log "installing Debian packages: ${missing[*]}"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q)
  if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >>"$STATE/logs/apt.log" 2>&1; then
    # Stale package lists are the usual cause: refresh them once and try again.
    "${apt[@]}" update >>"$STATE/logs/apt.log" 2>&1 || true
    "${apt[@]}" install --no-install-recommends "${missing[@]}" >>"$STATE/logs/apt.log" 2>&1 || true
  fi
  for pkg in "${missing[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] \
      || die "could not install the Debian package $pkg (see $STATE/logs/apt.log)"
  done
}
