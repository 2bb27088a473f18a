#!/usr/bin/env bash
# Build the NIM stand-in test image (base test image + nim-standin/nim-serve-ray) into the shared image store.
# Cached by the script's content and the base image's tag. Prints the image name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/build-image.sh" >&2
base="$("$here/build-image.sh" --print-image)"
store="$("$here/build-image.sh" --print-store)"
key="$(cat "$here/nim-standin/nim-serve-ray" "$here/nim-standin/Containerfile" <(echo "$base") | sha256sum | cut -c1-12)"
image="localhost/nimops-simhost-nim-standin:$key"
if [[ "${1:-}" == "--print-image" ]]; then echo "$image"; exit 0; fi
stamp="$(dirname "$store")/nim-standin-$key.built"
if [[ ! -f "$stamp" ]]; then
    exec 9>"$(dirname "$store").lock"
    flock 9
    runroot="/run/nimops-img-$(basename "$(dirname "$store")" | sed 's/^image-//')"   # as build-image.sh
    podman --root "$store" --runroot "$runroot" --storage-driver overlay build -q \
        --build-arg "BASE=$base" -t "$image" -f "$here/nim-standin/Containerfile" "$here/nim-standin" >&2
    touch "$stamp"
fi
echo "$image"
