#!/usr/bin/env bash
# Builds the real components tminus is tested and demonstrated against, from Go
# modules only (no release site is needed): kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3,
# kwok from sigs.k8s.io/kwok and Prometheus from github.com/prometheus/prometheus.
#
# Each component lands in bin/<component>-<version>/ and is built once: a second run
# finds the binary and does nothing. bin/k8s-<version>/ is laid out as envtest expects
# (kube-apiserver, etcd, kubectl side by side), so KUBEBUILDER_ASSETS can point at it.
#
# Usage: hack/build-testbins.sh [all|demo|k8s|etcd|kwok|prometheus|kube-apiserver|...]...
#        hack/build-testbins.sh --print-env   # the variables the tests read
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TMINUS_BIN:-$ROOT/bin}

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}

K8S_DIR=$BIN/k8s-$K8S_VERSION
ETCD_DIR=$BIN/etcd-$ETCD_VERSION
KWOK_DIR=$BIN/kwok-$KWOK_VERSION
# Prometheus is built with the Kubernetes service discovery only (the test bed scrapes
# pods the way users do: kubernetes_sd_configs and relabelling); the suffix keys the
# cache by what is built in.
PROM_DIR=$BIN/prometheus-$PROMETHEUS_VERSION-k8ssd

log() { printf '[build-testbins] %s\n' "$*" >&2; }

# Published release files pinned by checksum (hack/testbins.sums) are fetched instead of
# built where they can be: TESTBINS_FETCH=0 never fetches; TESTBINS_SUMS names another
# pin file (tests, mirrors); TESTBINS_BUILD=0 fails instead of building (tests).
SUMS=${TESTBINS_SUMS:-$ROOT/hack/testbins.sums}
PLATFORM=$(go env GOOS)/$(go env GOARCH)

# pins COMPONENT VERSION: the pinned lines (sha256 url [member] [name]) for this platform.
pins() {
  [ -f "$SUMS" ] || return 0
  awk -v c="$1" -v v="$2" -v p="$PLATFORM" '$1 == c && $2 == v && $3 == p { print $4, $5, $6, $7 }' "$SUMS"
}

# fetch_one SHA URL MEMBER OUT: download URL (a few seconds to connect), check its
# SHA-256, and write the binary (the file itself, or MEMBER of the .tar.gz) to OUT.
# Every step's failure is returned: callers run it in a || list, where set -e is off.
fetch_one() {
  local sha=$1 url=$2 member=$3 out=$4 tmp
  tmp=$(mktemp -d)
  if ! curl -fsSL --connect-timeout 3 --max-time 600 -o "$tmp/download" "$url" 2>"$tmp/err"; then
    log "could not fetch $url: $(tr '\n' ' ' <"$tmp/err")"
    rm -rf "$tmp"; return 1
  fi
  local got
  got=$(sha256sum "$tmp/download" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    log "REFUSED $url: its sha256 is $got, the pin says $sha"
    rm -rf "$tmp"; return 1
  fi
  if [ -n "$member" ]; then
    if ! tar -xzf "$tmp/download" -C "$tmp" "$member" 2>"$tmp/err"; then
      log "$url holds no $member: $(tr '\n' ' ' <"$tmp/err")"
      rm -rf "$tmp"; return 1
    fi
    mv "$tmp/$member" "$out.tmp" || { rm -rf "$tmp"; return 1; }
  else
    mv "$tmp/download" "$out.tmp" || { rm -rf "$tmp"; return 1; }
  fi
  rm -rf "$tmp"
  if ! { chmod +x "$out.tmp" && mv "$out.tmp" "$out"; }; then
    rm -f "$out.tmp"; return 1
  fi
}

# fetch COMPONENT VERSION DIR [BINARY...]: fetch every pinned file of the component into
# DIR; succeeds only when each BINARY wanted (default: every pinned one) is there.
fetch() {
  local comp=$1 version=$2 dir=$3; shift 3
  [ "${TESTBINS_FETCH:-1}" = 0 ] && return 1
  local lines
  lines=$(pins "$comp" "$version")
  if [ -z "$lines" ]; then
    log "$comp $version: no pinned release file for $PLATFORM in $(basename "$SUMS"); building it"
    return 1
  fi
  mkdir -p "$dir"
  local sha url member name start=$SECONDS
  while read -r sha url member name; do
    # "-" is no member: the file itself is the binary (a name may follow it).
    [ "$member" = - ] && member=
    [ -n "$name" ] || name=$(basename "${member:-$url}")
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
    [ -x "$dir/$name" ] && continue
    fetch_one "$sha" "$url" "$member" "$dir/$name" || { log "$comp $version: building it instead"; return 1; }
  done <<<"$lines"
  for name in "$@"; do [ -x "$dir/$name" ] || { log "$comp $version: no pin for $name; building it"; return 1; }; done
  log "fetched $comp $version in $((SECONDS - start))s (sha256 checked)"
}

# may_build WHAT: where TESTBINS_BUILD=0, say so and fail instead of building.
may_build() {
  [ "${TESTBINS_BUILD:-1}" != 0 ] && return 0
  log "TESTBINS_BUILD=0: not building $1"
  return 1
}

# scratch_module DIR: a throwaway module whose go.mod the caller fills in.
scratch_module() {
  rm -rf "$1" && mkdir -p "$1"
  printf 'module tminus.dev/testbins/scratch\n\ngo 1.26\n' >"$1/go.mod"
}

# What is still to build once fetching is done is planned first (plan PKG OUT) and
# built by build_planned in one module and one go build: the components import much of
# the same code (kwok, Prometheus and etcd take client-go, apimachinery, gRPC, protobuf
# and OpenTelemetry as Kubernetes does), and in one module each shared package is
# compiled once, at the one version the module settles on, instead of once per
# component. The module always requires every component, whatever is built: a later
# build of one (kubectl for make test after make demo) then settles on the same
# versions and finds the shared packages compiled. go build keeps both cores busy
# across the components' packages and links.
PLAN_PKGS=() PLAN_OUTS=() PLAN_LD="" PLAN_KWOK_STAGES=0
# Prometheus is built with static targets and the Kubernetes service discovery only
# (leaving out every other plugin, cloud SDKs, Consul..., roughly halves it); the tags
# mean nothing to the other components and are set for every build, so every build
# compiles the shared packages alike.
PLAN_TAGS=remove_all_sd,enable_kubernetes_sd

plan() { PLAN_PKGS+=("$1"); PLAN_OUTS+=("$2"); }

# binary_name PKG: the name go build -o DIR/ gives PKG's binary (its last element, or the
# one before a major version suffix: go.etcd.io/etcd/server/v3 is "server").
binary_name() {
  local last=${1##*/} rest=${1%/*}
  if [[ $last =~ ^v[0-9]+$ ]]; then echo "${rest##*/}"; else echo "$last"; fi
}

build_planned() {
  [ ${#PLAN_PKGS[@]} -eq 0 ] && return 0
  local work=$BIN/.work/build start=$SECONDS tmp i
  scratch_module "$work"
  printf '\nrequire (\n\tk8s.io/kubernetes %s\n\tgo.etcd.io/etcd/server/v3 %s\n\tsigs.k8s.io/kwok %s\n\tgithub.com/prometheus/prometheus %s\n)\n' \
    "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$PROMETHEUS_VERSION" >>"$work/go.mod"
  # k8s.io/kubernetes points each k8s.io/<staging> module at ./staging; outside its
  # repository those must come from the module proxy at the matching v0.x.y, for every
  # component built beside it.
  local staging_version=v0.${K8S_VERSION#v1.} gomod
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    printf '\nreplace (\n'
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    printf ')\n'
  } >>"$work/go.mod"
  local names=()
  for i in "${!PLAN_PKGS[@]}"; do names+=("$(basename "${PLAN_OUTS[$i]}")"); done
  log "building ${names[*]} in one module"
  tmp=$BIN/.work/out
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags "$PLAN_TAGS" \
    -ldflags "-s -w $PLAN_LD" -o "$tmp/" "${PLAN_PKGS[@]}")
  # Moved into place only once all are built: an interrupted build never looks finished.
  for i in "${!PLAN_PKGS[@]}"; do
    mkdir -p "$(dirname "${PLAN_OUTS[$i]}")"
    mv "$tmp/$(binary_name "${PLAN_PKGS[$i]}")" "${PLAN_OUTS[$i]}"
  done
  log "built ${names[*]} in $((SECONDS - start))s"
  [ "$PLAN_KWOK_STAGES" = 1 ] && kwok_stages
  PLAN_PKGS=() PLAN_OUTS=() PLAN_LD="" PLAN_KWOK_STAGES=0
}

# build_k8s [BINARY...]: the named Kubernetes binaries (default: all four).
build_k8s() {
  local want=("$@")
  [ ${#want[@]} -eq 0 ] && want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=()
  for b in "${want[@]}"; do [ -x "$K8S_DIR/$b" ] || missing+=("$b"); done
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  fetch k8s "$K8S_VERSION" "$K8S_DIR" "${missing[@]}" && return
  # A fetch that stopped half way leaves some binaries: build only the others.
  local still=()
  for b in "${missing[@]}"; do [ -x "$K8S_DIR/$b" ] || still+=("$b"); done
  may_build "${still[*]}" || return 1
  local minor=${K8S_VERSION#v1.} p; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    PLAN_LD+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    PLAN_LD+=" -X $p.gitTreeState=clean -X $p.gitCommit=module-$K8S_VERSION -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for b in "${still[@]}"; do plan "k8s.io/kubernetes/cmd/$b" "$K8S_DIR/$b"; done
}

build_etcd() {
  [ -x "$ETCD_DIR/etcd" ] && return
  fetch etcd "$ETCD_VERSION" "$ETCD_DIR" etcd && return
  may_build etcd || return 1
  PLAN_LD+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION"
  plan go.etcd.io/etcd/server/v3 "$ETCD_DIR/etcd"
}

build_kwok() {
  [ -x "$KWOK_DIR/kwok" ] && [ -d "$KWOK_DIR/stage" ] && return
  if [ -x "$KWOK_DIR/kwok" ] || fetch kwok "$KWOK_VERSION" "$KWOK_DIR" kwok; then
    kwok_stages
    return
  fi
  may_build kwok || return 1
  PLAN_LD+=" -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  PLAN_KWOK_STAGES=1
  plan sigs.k8s.io/kwok/cmd/kwok "$KWOK_DIR/kwok"
}

# kwok does nothing without stages; keep the stage files the module carries beside it
# (YAML only: Go files under bin/ would join this module's ./...).
kwok_stages() {
  local src f work=$BIN/.work/kwok-stages
  scratch_module "$work"
  src=$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$src/kustomize/stage" ] || { log "kwok $KWOK_VERSION: no stage files in $src"; return 1; }
  rm -rf "$KWOK_DIR/stage"
  (cd "$src/kustomize/stage" && find . -name '*.yaml' -not -path '*/testdata/*') | while read -r f; do
    mkdir -p "$KWOK_DIR/stage/$(dirname "$f")"
    cp "$src/kustomize/stage/$f" "$KWOK_DIR/stage/$f"
  done
  chmod -R u+w "$KWOK_DIR/stage"
}

build_prometheus() {
  [ -x "$PROM_DIR/prometheus" ] && return
  fetch prometheus "$PROMETHEUS_VERSION" "$PROM_DIR" prometheus && return
  may_build prometheus || return 1
  PLAN_LD+=" -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}"
  plan github.com/prometheus/prometheus/cmd/prometheus "$PROM_DIR/prometheus"
}

link_envtest() {
  # envtest wants etcd beside kube-apiserver.
  [ -x "$ETCD_DIR/etcd" ] && [ -d "$K8S_DIR" ] && ln -sfn "../etcd-$ETCD_VERSION/etcd" "$K8S_DIR/etcd"
  return 0
}

print_env() {
  echo "KUBEBUILDER_ASSETS=$K8S_DIR"
  echo "TMINUS_KUBE_CONTROLLER_MANAGER=$K8S_DIR/kube-controller-manager"
  echo "TMINUS_KUBE_SCHEDULER=$K8S_DIR/kube-scheduler"
  echo "TMINUS_KWOK=$KWOK_DIR/kwok"
  echo "TMINUS_KWOK_STAGES=$KWOK_DIR/stage"
  echo "TMINUS_PROMETHEUS=$PROM_DIR/prometheus"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(all)
for t in "${targets[@]}"; do
  case $t in
    all|demo)
      # The demo needs no kubectl: `demo` leaves it out (it is the largest of the four
      # on its own).
      start=$SECONDS
      k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler)
      [ "$t" = all ] && k8s_bins+=(kubectl)
      build_k8s "${k8s_bins[@]}"
      build_etcd
      build_kwok
      build_prometheus
      build_planned
      log "$t: test bed binaries ready in $((SECONDS - start))s"
      ;;
    k8s) build_k8s ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) build_k8s "$t" ;;
    etcd) build_etcd ;;
    kwok) build_kwok ;;
    prometheus) build_prometheus ;;
    --print-env) print_env; exit 0 ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
build_planned
link_envtest
rm -rf "$BIN/.work"
