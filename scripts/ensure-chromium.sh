#!/bin/sh
# Make sure Debian's headless-capable `chromium` is installed (used by the report's
# browser test and CI). Idempotent: does nothing when the binary is already there.
set -eu

if command -v chromium >/dev/null 2>&1; then
    command -v chromium
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 3
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# fonts: without any font the screenshot renders boxes instead of text
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
