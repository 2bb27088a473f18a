#!/usr/bin/env bash
# Builds the simulated cluster's binaries from the Go module proxy at the pinned versions in versions.env.
# Each binary is cached under $NIMOPS_CACHE/bin/<name>-<version>; a second run builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"
cache=${NIMOPS_CACHE:-$HOME/.cache/nimops}
bindir=$cache/bin
work=$cache/build
mkdir -p "$bindir" "$work"
# No DWARF: the binaries are stripped (-s -w) anyway, and not generating it saves ~7 % of a cold build's CPU.
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -gcflags=all=-dwarf=false"

# A lock per component: make test starts `all` in the background, and a later call for a component waits only while
# that component is being built (then finds it cached), not for the whole build.
locked() { # component
  (flock 8 && "${@:2}") 8>"$cache/build-$1.lock"
}

have() { [ -x "$bindir/$1-$2" ]; }
log() { printf '[build] %s\n' "$*"; }

# kube-apiserver, kube-controller-manager, kube-scheduler need a wrapper module: k8s.io/kubernetes
# requires its staging modules at v0.0.0 and resolves them with local replaces, so `go install` refuses it.
build_kube() {
  local v=$KUBERNETES_VERSION minor
  if have kube-apiserver "$v" && have kube-controller-manager "$v" && have kube-scheduler "$v"; then
    log "kubernetes $v cached"; return
  fi
  minor=${v#v1.}
  local d=$work/kube-$v
  rm -rf "$d" && mkdir -p "$d" && cd "$d"
  go mod init simcluster.local/kube >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' > tools.go
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  local m
  while read -r m; do
    go mod edit -replace="$m=$m@v0.$minor"
  done < <(sed -n 's|^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*|\1|p' "$gomod")
  go mod edit -require="k8s.io/kubernetes@$v"
  if grep -q '^godebug' "$gomod"; then go mod edit -godebug="$(sed -n 's/^godebug //p' "$gomod")"; fi
  go mod tidy
  local ldf="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*} -X $p.gitTreeState=clean"
  done
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    have "$c" "$v" && continue
    log "building $c $v"
    go build -trimpath -ldflags "$ldf" -o "$bindir/$c-$v.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$bindir/$c-$v.tmp" "$bindir/$c-$v"
  done
}

# Builds a main package through a small wrapper module that requires its module at the pinned version.
# etcd's server module carries replace directives (`go install` refuses it, the wrapper needs none of its own);
# LWS: the proxy refuses its version list, which `go install pkg@version` asks for.
build_wrapped() { # name version module package ldflags
  local name=$1 v=$2 mod=$3 pkg=$4 ldf=$5
  if have "$name" "$v"; then log "$name $v cached"; return; fi
  local d=$work/$name-$v
  rm -rf "$d" && mkdir -p "$d" && cd "$d"
  go mod init "simcluster.local/$name" >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > tools.go
  go mod edit -require="$mod@$v"
  go mod tidy
  log "building $name $v"
  go build -trimpath -ldflags "$ldf" -o "$bindir/$name-$v.tmp" "$pkg"
  mv "$bindir/$name-$v.tmp" "$bindir/$name-$v"
}

# Plain `go install` works for these (no replace directives).
install_plain() { # name version package ldflags
  local name=$1 v=$2 pkg=$3 ldf=$4
  if have "$name" "$v"; then log "$name $v cached"; return; fi
  local gobin=$work/gobin-$name-$v
  rm -rf "$gobin" && mkdir -p "$gobin"
  log "building $name $v"
  GOBIN=$gobin go install -trimpath -ldflags "$ldf" "$pkg@$v"
  mv "$gobin"/* "$bindir/$name-$v"
  rmdir "$gobin"
}

# helm's Makefile stamps the Kubernetes version it assumes for `helm template`/lint (client-go v0.X -> 1.X);
# without it `helm template` assumes v1.20 and charts with a kubeVersion constraint refuse to render.
helm_ldflags() {
  local gomod cg major minor ldf="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" p
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  cg=$(sed -n 's|^\s*k8s.io/client-go v\([0-9]*\)\.\([0-9]*\)\..*|\1 \2|p' "$gomod" | head -1)
  major=$(( ${cg% *} + 1 )); minor=${cg#* }
  for p in pkg/lint/rules pkg/chartutil; do
    ldf="$ldf -X helm.sh/helm/v3/$p.k8sVersionMajor=$major -X helm.sh/helm/v3/$p.k8sVersionMinor=$minor"
  done
  printf '%s' "$ldf"
}

# The OCI chart tests' registry: go-containerregistry's registry behind basic auth (oci-registry/main.go); the cache
# key carries the source's hash, so an edit rebuilds it.
build_oci_registry() {
  local v sum d
  sum=$(sha256sum "$here/oci-registry/main.go" | cut -c1-12)
  v=$OCI_REGISTRY_VERSION-$sum
  if have oci-registry "$v"; then log "oci-registry $v cached"; return; fi
  d=$work/oci-registry-$v
  rm -rf "$d" && mkdir -p "$d" && cp "$here/oci-registry/main.go" "$d/" && cd "$d"
  go mod init simcluster.local/oci-registry >/dev/null 2>&1
  go mod edit -require="github.com/google/go-containerregistry@$OCI_REGISTRY_VERSION"
  go mod tidy
  log "building oci-registry $v"
  go build -trimpath -ldflags "-s -w" -o "$bindir/oci-registry-$v.tmp" .
  mv "$bindir/oci-registry-$v.tmp" "$bindir/oci-registry-$v"
}

# The small registry first: a bare-host test needs it early, while the cluster's suites need everything anyway.
want=${*:-all}
[ "$want" = all ] && want="oci-registry kube etcd kwok lws helm"
for c in $want; do
  case $c in
    kube) locked kube build_kube ;;
    etcd) locked etcd build_wrapped etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "-s -w" ;;
    kwok) locked kwok install_plain kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "-s -w" ;;
    lws) locked lws build_wrapped lws-manager "$LWS_VERSION" sigs.k8s.io/lws sigs.k8s.io/lws/cmd "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" ;;
    helm) locked helm install_plain helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$(helm_ldflags)" ;;
    oci-registry) locked oci-registry build_oci_registry ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
done
