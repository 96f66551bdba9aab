#!/usr/bin/env bash
# A real S3-compatible server on loopback for the tests: moto's standalone
# server from PyPI (pinned), in a venv under ~/.cache. Sourced by
# scripts/test.sh; exports AWS_* for it and CIP_TEST_S3_BUCKET, and stops the
# server when the sourcing shell exits.
#   source scripts/s3-server.sh
MOTO_VERSION=5.2.5
CIP_VENV="${CIP_VENV:-$HOME/.cache/cip-venv}"
if [ ! -x "$CIP_VENV/bin/moto_server" ] || ! "$CIP_VENV/bin/pip" show moto 2>/dev/null | grep -q "^Version: $MOTO_VERSION$"; then
  python3 -m venv "$CIP_VENV"
  "$CIP_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
S3_PORT=$("$CIP_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CIP_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "${TMPDIR:-/tmp}/cip-moto-$S3_PORT.log" 2>&1 &
CIP_S3_PID=$!
trap 'kill $CIP_S3_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$CIP_VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$S3_PORT/')" 2>/dev/null && break
  sleep 0.1
done
export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=cip-test AWS_SECRET_ACCESS_KEY=cip-test
export CIP_TEST_S3_BUCKET=cip-test
# The bucket the tests write under (one prefix per test).
"$CIP_VENV/bin/python" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$AWS_ENDPOINT/$CIP_TEST_S3_BUCKET', method='PUT'))"
