# Sourced by the scripts that read the lake with another Delta reader:
# delta-rs' Python package (pinned) and pyarrow from PyPI in the project's
# venv under ~/.cache; exports CIP_VENV.
#   source scripts/delta-venv.sh
export CIP_VENV="${CIP_VENV:-$HOME/.cache/cip-venv}"
[ -x "$CIP_VENV/bin/python" ] || python3 -m venv "$CIP_VENV"
"$CIP_VENV/bin/python" -c "import deltalake, pyarrow" 2>/dev/null ||
  "$CIP_VENV/bin/pip" install --quiet --disable-pip-version-check "deltalake==1.6.6" pyarrow
