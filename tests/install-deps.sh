#!/bin/sh
# Installs what the test suite needs: the package with its test extras, and a real S3
# server (Ceph radosgw from Debian, unless a `minio` server binary is on PATH), and rclone
# and the aws cli, whose uploads the suite reads back, Chromium with its driver for the
# console's browser tests, and strace (crash injection). Safe to re-run.
set -eu
cd "$(dirname "$0")/.."
if ! command -v minio >/dev/null 2>&1 && ! command -v radosgw >/dev/null 2>&1 \
   || ! command -v rclone >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
   || ! command -v chromedriver >/dev/null 2>&1 || ! command -v strace >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        radosgw ceph-mon ceph-osd rclone chromium chromium-driver strace >/dev/null
fi
python3 -m pip install -q -e '.[test]'
command -v aws >/dev/null 2>&1 || python3 -m pip install -q awscli
