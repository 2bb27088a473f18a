#!/usr/bin/env bash
# Generate the tiny test model once (inside the test image, which has transformers/tokenizers/torch) and print
# the model cache directory that the simulated hosts mount. Cached by the generator's hash and the image tag.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${NIMOPS_CACHE:-$HOME/.cache/nimops}"
image="$("$here/build-image.sh" --print-image)"
store="$("$here/build-image.sh" --print-store)"
key="$(cat "$here/make_tiny_model.py" <(echo "$image") | sha256sum | cut -c1-12)"
out="$cache/simhosts/model-cache-$key"
if [[ -f "$out/tiny-llama/nimops-tiny-model.json" ]]; then echo "$out"; exit 0; fi
"$here/build-image.sh" >&2
# One generation at a time; a run that waited finds the model made.
mkdir -p "$cache/simhosts"
exec 7>"$cache/simhosts/model.lock"
flock 7
if [[ -f "$out/tiny-llama/nimops-tiny-model.json" ]]; then echo "$out"; exit 0; fi
gen="$cache/simhosts/modelgen"
runroot=/run/nimops-modelgen   # podman refuses run roots longer than 50 characters
mkdir -p "$gen/root" "$runroot" "$gen/tmp" "$out"
cat >"$gen/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$gen/root"
runroot = "$runroot"
[storage.options]
additionalimagestores = ["$store"]
CONF
cat >"$gen/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$gen/events.log"
tmp_dir = "$gen/tmp"
lock_type = "file"
CONF
CONTAINERS_STORAGE_CONF="$gen/storage.conf" CONTAINERS_CONF="$gen/containers.conf" \
    podman run --rm --network none -v "$here:/src:ro" -v "$out:/out" "$image" \
    python /src/make_tiny_model.py /out/tiny-llama.tmp >&2
rm -rf "$out/tiny-llama"
mv "$out/tiny-llama.tmp" "$out/tiny-llama"
echo "$out"
