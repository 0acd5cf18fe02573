#!/usr/bin/env bash
# Set up autoopt-lab: a virtual environment in .venv (created when missing), the package with
# its test extras, a registered Jupyter kernel, and the offline data sets this machine can get.
# Idempotent: a second call only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
EXTRAS=${AUTOOPT_EXTRAS:-test,browser,peers}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi

stamp="$VENV/.autoopt-installed"
want="$(cat pyproject.toml | sha1sum | cut -c1-12)-$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[bootstrap] installing autoopt-lab[$EXTRAS] into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (autoopt-lab)" >/dev/null
    echo "$want" > "$stamp"
fi

# Offline Fashion-MNIST (Debian's dataset-fashion-mnist). Only where we may use apt.
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[bootstrap] installing Debian package dataset-fashion-mnist"
        (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }) \
            || echo "[bootstrap] could not install dataset-fashion-mnist; torchvision will download where a network exists"
    fi
fi

# Debian's chromium for the real-browser workbench test (AUTOOPT_BROWSER=1; root only).
if [ "${AUTOOPT_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[bootstrap] installing Debian package chromium (browser test)"
        (apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null; }) \
            || echo "[bootstrap] could not install chromium; the browser test will skip"
    fi
fi
