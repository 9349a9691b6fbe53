#!/usr/bin/env bash
# Idempotent setup of everything the default run and the tests need:
#   1. Debian packages from tools/debian-packages.txt (apt-get when root; otherwise print the
#      missing ones and stop),
#   2. .venv with the pinned Python stack from requirements.txt and this package (editable).
# A stamp holding the hash of the inputs makes a second call instant when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
deb_list=tools/debian-packages.txt

want_debs=$(grep -v '^\s*#' "$deb_list" | grep -v '^\s*$' | tr '\n' ' ')
missing=()
for p in $want_debs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp_hash=$(cat requirements.txt pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.task2sim-setup-$stamp_hash"
if [ -f "$stamp" ]; then
  exit 0
fi
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian's own python3 ships venv/ensurepip separately.
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: $PY cannot create virtual environments; install python3-venv as root" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch and torchvision first, alone: both come from local wheels; installing them together with
# the rest lets another package's loose requirement pick a different torch.
"${pip[@]}" $(grep -E '^(torch|torchvision)==' requirements.txt)
"${pip[@]}" -r requirements.txt
"${pip[@]}" --no-deps -e .
rm -f "$VENV"/.task2sim-setup-*
touch "$stamp"
echo "setup: .venv ready ($("$VENV/bin/python" -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)'))"
