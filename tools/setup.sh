#!/usr/bin/env bash
# Installs what erlmr needs from Debian 12's packages (only what is missing). Run as root.
set -euo pipefail
pkgs=(cmake g++ make libeigen3-dev libxsimd-dev doctest-dev libbenchmark-dev zlib1g-dev
      libcli11-dev nlohmann-json3-dev clang libclang-rt-14-dev llvm
      espeak-ng libespeak-ng-dev dataset-fashion-mnist python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
