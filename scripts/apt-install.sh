#!/usr/bin/env bash
# Installs the named Debian packages that are missing, as root, waiting up
# to 5 minutes for another apt-get or dpkg (unattended upgrades, a second
# test run) to release its lock instead of failing at once.
#
#   scripts/apt-install.sh openssh-server sudo
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
lock=(-o DPkg::Lock::Timeout=300)
echo "==> installing ${missing[*]}" >&2
apt-get "${lock[@]}" update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
