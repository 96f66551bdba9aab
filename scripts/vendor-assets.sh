#!/usr/bin/env bash
# Fetches the browser assets of the GraphiQL page (GET /graphql) from the npm
# registry, at pinned versions, into assets/vendor/ (gitignored). The server
# embeds them with include_bytes!, so it needs no internet at run time.
# Idempotent and quiet: does nothing when assets/vendor/VERSIONS already lists
# the pinned versions and every file is there. Called by scripts/env.sh.
#
# To upgrade: change a version below, run this script, and copy the integrity
# it reports into the pin (npm pack --json reports it; so does
# `npm view <pkg>@<version> dist.integrity`). graphiql 4.1.2 is the newest 4.x
# and still ships the (deprecated) UMD build graphiql.min.js; 5.x does not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# package@version and the sha512 integrity the npm registry publishes for it.
PINS=(
  "react@18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ=="
  "react-dom@18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw=="
  "graphiql@4.1.2 sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg=="
)

# Per package: "path in the tarball (under package/)=file under assets/vendor/".
files_of() {
  case "$1" in
    react) echo "umd/react.production.min.js=react.production.min.js LICENSE=licenses/react.txt" ;;
    react-dom) echo "umd/react-dom.production.min.js=react-dom.production.min.js LICENSE=licenses/react-dom.txt" ;;
    graphiql) echo "graphiql.min.js=graphiql.min.js graphiql.min.css=graphiql.min.css LICENSE=licenses/graphiql.txt" ;;
    *) echo "vendor-assets.sh: no file list for $1" >&2; return 1 ;;
  esac
}

OUT=assets/vendor

up_to_date() {
  [[ -f $OUT/VERSIONS ]] || return 1
  local pin id integrity map
  for pin in "${PINS[@]}"; do
    read -r id integrity <<<"$pin"
    grep -qxF "$id $integrity" "$OUT/VERSIONS" || return 1
    for map in $(files_of "${id%@*}"); do
      [[ -s $OUT/${map#*=} ]] || return 1
    done
  done
}

up_to_date && exit 0

if ! command -v npm >/dev/null 2>&1; then
  echo "scripts/vendor-assets.sh: npm not found; it is needed to fetch GraphiQL and React from the npm registry." >&2
  echo "  On Debian/Ubuntu: sudo apt-get install npm" >&2
  exit 1
fi

mkdir -p "$OUT/licenses"
tmp=$(mktemp -d "$OUT/.vendor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

versions=""
for pin in "${PINS[@]}"; do
  read -r id want <<<"$pin"
  name=${id%@*}
  if ! json=$(npm pack "$id" --json --pack-destination "$tmp" --loglevel=error --no-update-notifier 2>"$tmp/npm.err"); then
    echo "scripts/vendor-assets.sh: npm pack $id failed:" >&2
    cat "$tmp/npm.err" >&2
    exit 1
  fi
  read -r tgz got < <(node -e 'const [p] = JSON.parse(process.argv[1]); console.log(p.filename, p.integrity)' "$json") ||
    { echo "scripts/vendor-assets.sh: unexpected output from npm pack $id: $json" >&2; exit 1; }
  if [[ $got != "$want" ]]; then
    echo "scripts/vendor-assets.sh: $id has integrity $got, the script pins $want" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  members=()
  for map in $(files_of "$name"); do members+=("package/${map%%=*}"); done
  tar -xzmf "$tmp/$tgz" -C "$tmp/$name" "${members[@]}"
  versions+="$id $got"$'\n'
done

# Replace file by file (rename is atomic), VERSIONS last: a concurrent build
# never sees a missing or half-written file.
for pin in "${PINS[@]}"; do
  read -r id _ <<<"$pin"
  name=${id%@*}
  for map in $(files_of "$name"); do
    mv -f "$tmp/$name/package/${map%%=*}" "$OUT/${map#*=}"
  done
done
printf '%s' "$versions" >"$tmp/VERSIONS"
mv -f "$tmp/VERSIONS" "$OUT/VERSIONS"
rm -rf "$tmp"

echo "vendored $(cut -d' ' -f1 "$OUT/VERSIONS" | tr '\n' ' ')into $OUT ($(du -sh "$OUT" | cut -f1))"
