# Sourced by the load benches (guard_load.sh, streaming.sh), after $CIP and
# $WORK are set: an aiohttp venv under $WORK, and `start_server LAKE` which
# starts `cip serve` with its production settings on a free loopback port,
# waits until it is ready and stops it when the script exits; it sets PORT,
# SERVER (the pid) and READY_MS (start to ready) and logs to $WORK/serve.log.
mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet aiohttp
fi

start_server() {
  PORT=$("$WORK/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env -u CIP_JWT_SECRET -u CIP_RATE_PER_SEC -u CIP_RATE_BURST "$CIP" serve --lake "$1" --addr "127.0.0.1:$PORT" \
    > "$WORK/serve.log" 2>&1 &
  SERVER=$!
  local started
  started=$(date +%s%N)
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for i in $(seq 1 400); do
    if curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then
      READY_MS=$((($(date +%s%N) - started) / 1000000))
      return 0
    fi
    [ "$i" = 400 ] && { echo "the server never became ready: see $WORK/serve.log" >&2; exit 1; }
    sleep 0.05
  done
}
