#!/usr/bin/env bash
# Fetches and builds every outside dependency into the git-ignored cache.
# Each step is idempotent: a stamp file marks it done, so a second run is quick.
# Usage: tools/deps.sh STEP...   (steps: host mpy mpy-patches picosdk lwip picotool venv npm browser all)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-$ROOT/.cache}
STAMPS=$CACHE/stamps
mkdir -p "$CACHE" "$STAMPS"

# Pinned versions and the sha256 of what we fetch (checked after download).
MPY_VER=1.25.0
MPY_DEB=1.25.0+ds-1
MPY_TAR=micropython_1.25.0+ds.orig.tar.xz
MPY_SHA=7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea
MBEDTLS_DEB=3.6.6-0.1~deb13u1
MBEDTLS_TAR=mbedtls_3.6.6.orig.tar.bz2
MBEDTLS_SHA=8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a
PICOSDK_DEB=2.1.1-1
PICOSDK_TAR=pico-sdk_2.1.1.orig.tar.gz
PICOSDK_SHA=179c5531e75ac7f82d0679e70b6e8881f871738dc0ef17baf3b4ff4679291c41
TINYUSB_DEB=0.18.0+dfsg-1
TINYUSB_FILE=tinyusb-source_0.18.0+dfsg-1_all.deb
TINYUSB_SHA=01ce2c645df68f14a8a7dcfc8fb355713152543757955820479a87949a61154e
PICOTOOL_DEB=2.1.1+dfsg-1
PICOTOOL_TAR=picotool_2.1.1+dfsg.orig.tar.xz
PICOTOOL_SHA=c515d75ce6df590ca783b3a4267f6e8a963ffec753aeeb1892f8ba1771b8786d
LWIP_DEB=2.2.1+dfsg1-1+deb13u1
LWIP_TAR=lwip_2.2.1+dfsg1.orig.tar.xz
LWIP_SHA=83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1

log() { printf '[deps] %s\n' "$*" >&2; }
done_p() { [ -f "$STAMPS/$1" ]; }
mark() { touch "$STAMPS/$1"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- host packages (bookworm, the system's own apt) ----
HOST_PKGS="build-essential pkg-config libffi-dev cmake git gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib python3-venv nodejs npm wrk mosquitto libslirp0"
step_host() {
    local missing=()
    for p in $HOST_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # nodejs/npm may come from elsewhere on the machine: only ask apt when the tools are absent
    local want=()
    for p in "${missing[@]}"; do
        case $p in
            nodejs) command -v node >/dev/null || want+=("$p") ;;
            npm) command -v npm >/dev/null || want+=("$p") ;;
            python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null || want+=("$p") ;;
            git) command -v git >/dev/null || want+=("$p") ;;
            cmake) command -v cmake >/dev/null || want+=("$p") ;;
            *) want+=("$p") ;;
        esac
    done
    [ ${#want[@]} -eq 0 ] && return 0
    log "installing host packages: ${want[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${want[@]}"
}

# ---- private apt list for Debian trixie sources (never installs trixie binaries) ----
APTDIR=$CACHE/apt
apt_trixie() {
    apt-get -o Dir::Etc::sourcelist="$APTDIR/trixie.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache" \
        -o Debug::NoLocking=1 "$@"
}
trixie_list() {
    [ -f "$APTDIR/lists/.updated" ] && return 0
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
    local uri
    # take the mirror the system already uses; never hard-code a registry host
    uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n' | grep -v security | head -n1)
    if [ -z "$uri" ]; then
        uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    fi
    [ -n "$uri" ] || { log "no Debian mirror found in the system's apt sources"; exit 1; }
    local key=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'deb [signed-by=%s] %s trixie main\ndeb-src [signed-by=%s] %s trixie main\n' \
        "$key" "$uri" "$key" "$uri" > "$APTDIR/trixie.list"
    log "apt update (trixie, private list)"
    apt_trixie update -qq
    touch "$APTDIR/lists/.updated"
}

check_sha() { # file sha
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        log "sha256 mismatch for $1: got $got, want $2"
        exit 1
    fi
}

# fetch a trixie source package's orig tarball into $CACHE/dl, check it, echo its path
fetch_orig() { # srcpkg version tarball-name sha
    local dl=$CACHE/dl
    mkdir -p "$dl"
    if [ ! -f "$dl/$3" ]; then
        trixie_list
        log "downloading source $1=$2"
        (cd "$dl" && apt_trixie source --download-only -qq "$1=$2" >/dev/null 2>&1 || true)
        [ -f "$dl/$3" ] || { log "could not fetch $3"; exit 1; }
    fi
    check_sha "$dl/$3" "$4"
    echo "$dl/$3"
}

fetch_deb() { # pkg version file sha
    local dl=$CACHE/dl
    mkdir -p "$dl"
    if [ ! -f "$dl/$3" ]; then
        trixie_list
        log "downloading package $1=$2"
        (cd "$dl" && apt_trixie download -qq "$1=$2" >/dev/null 2>&1 || true)
        [ -f "$dl/$3" ] || { log "could not fetch $3"; exit 1; }
    fi
    check_sha "$dl/$3" "$4"
    echo "$dl/$3"
}

SRC=$CACHE/src
MPY_TREE=$SRC/micropython-$MPY_VER

# ---- MicroPython source with mbedtls in lib/ ----
step_mpy() {
    done_p mpy && return 0
    mkdir -p "$SRC"
    local t
    t=$(fetch_orig micropython "$MPY_DEB" "$MPY_TAR" "$MPY_SHA")
    rm -rf "$MPY_TREE" && tar -C "$SRC" -xf "$t"
    t=$(fetch_orig mbedtls "$MBEDTLS_DEB" "$MBEDTLS_TAR" "$MBEDTLS_SHA")
    rm -rf "$SRC/mbedtls-3.6.6" && tar -C "$SRC" -xf "$t"
    rmdir "$MPY_TREE/lib/mbedtls" 2>/dev/null || rm -rf "$MPY_TREE/lib/mbedtls"
    ln -s ../../mbedtls-3.6.6 "$MPY_TREE/lib/mbedtls"
    # the make rules only check that micropython-lib has a README.md
    mkdir -p "$CACHE/mpylib-stub" && echo "placeholder: micropython-lib is not used" > "$CACHE/mpylib-stub/README.md"
    mark mpy
}

# ---- pico-sdk and TinyUSB, linked into the MicroPython tree for ports/rp2 ----
step_picosdk() {
    step_mpy
    done_p picosdk && return 0
    local t
    t=$(fetch_orig pico-sdk "$PICOSDK_DEB" "$PICOSDK_TAR" "$PICOSDK_SHA")
    rm -rf "$SRC/pico-sdk-2.1.1" && tar -C "$SRC" -xf "$t"
    t=$(fetch_deb tinyusb-source "$TINYUSB_DEB" "$TINYUSB_FILE" "$TINYUSB_SHA")
    rm -rf "$SRC/tinyusb-deb" && mkdir -p "$SRC/tinyusb-deb" && dpkg -x "$t" "$SRC/tinyusb-deb"
    rm -rf "$MPY_TREE/lib/pico-sdk" "$MPY_TREE/lib/tinyusb"
    ln -s ../../pico-sdk-2.1.1 "$MPY_TREE/lib/pico-sdk"
    ln -s ../../tinyusb-deb/usr/src/tinyusb "$MPY_TREE/lib/tinyusb"
    mark picosdk
}

# ---- lwIP in lib/lwip, for the PPP board (RELAYS_PICO_PPP); the dfsg repack drops only docs ----
step_lwip() {
    step_mpy
    done_p lwip && return 0
    local t top
    t=$(fetch_orig lwip "$LWIP_DEB" "$LWIP_TAR" "$LWIP_SHA")
    top=$(tar -tf "$t" | awk -F/ 'NR==1 {print $1}')
    rm -rf "${SRC:?}/$top" && tar -C "$SRC" -xf "$t"
    rmdir "$MPY_TREE/lib/lwip" 2>/dev/null || rm -rf "$MPY_TREE/lib/lwip"
    ln -s "../../$top" "$MPY_TREE/lib/lwip"
    mark lwip
}

# ---- the project's fixes to the MicroPython source (patches/micropython/*.patch, name order) ----
# The tree may be shared by several checkouts (and re-extracted by step_mpy), so the tree itself
# records what is in it: a copy of each applied patch in $MPY_TREE/.project-patches. A patch that
# changed or left the repo is reversed first, then the current ones are applied; under a lock.
MPY_PATCH_DIR=$ROOT/patches/micropython
step_mpy_patches() {
    step_mpy
    local applied=$MPY_TREE/.project-patches p name
    mkdir -p "$applied"
    (
        flock 9
        for p in "$applied"/*.patch; do
            [ -f "$p" ] || continue
            name=$(basename "$p")
            cmp -s "$p" "$MPY_PATCH_DIR/$name" && continue
            log "reverting MicroPython patch $name"
            patch -d "$MPY_TREE" -p1 -R -s -f < "$p" || { log "cannot revert $name in $MPY_TREE"; exit 1; }
            rm -f "$p"
        done
        for p in "$MPY_PATCH_DIR"/*.patch; do
            [ -f "$p" ] || continue
            name=$(basename "$p")
            [ -f "$applied/$name" ] && continue
            # already in (applied by hand, or the record was lost): only record it
            if ! patch -d "$MPY_TREE" -p1 -R --dry-run -s -f < "$p" >/dev/null 2>&1; then
                log "patching MicroPython: $name"
                patch -d "$MPY_TREE" -p1 -N -s -f -r - --no-backup-if-mismatch < "$p" ||
                    { log "$name does not apply to $MPY_TREE"; exit 1; }
            fi
            cp "$p" "$applied/$name"
        done
    ) 9> "$applied/.lock"
    cat "$MPY_PATCH_DIR"/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1 > "$STAMPS/mpy-patches"
}

# ---- picotool, built on the host (the SDK would otherwise try to git-clone it) ----
step_picotool() {
    step_picosdk
    done_p picotool && return 0
    local t
    t=$(fetch_orig picotool "$PICOTOOL_DEB" "$PICOTOOL_TAR" "$PICOTOOL_SHA")
    rm -rf "$SRC/picotool-2.1.1" && tar -C "$SRC" -xf "$t"
    log "building picotool"
    cmake -S "$SRC/picotool-2.1.1" -B "$CACHE/build/picotool" -DPICO_SDK_PATH="$SRC/pico-sdk-2.1.1" \
        -DPICOTOOL_NO_LIBUSB=1 -DPICOTOOL_FLAT_INSTALL=1 -DCMAKE_INSTALL_PREFIX="$CACHE/picotool" >/dev/null
    cmake --build "$CACHE/build/picotool" -j"$(nproc)" >/dev/null
    cmake --install "$CACHE/build/picotool" >/dev/null
    mark picotool
}

# ---- Python virtualenv with the host-side tools, the platform and the test drivers ----
VENV=$CACHE/venv
REQS="$ROOT/tools/requirements.txt $ROOT/reference_platform/requirements.txt $ROOT/bench/requirements.txt"
step_venv() {
    local want
    want=$(cat $REQS 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ -f "$VENV/.req" ] && [ "$(cat "$VENV/.req")" = "$want" ]; then return 0; fi
    log "creating the project virtualenv"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local r
    for r in $REQS; do
        [ -f "$r" ] && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$r"
    done
    echo "$want" > "$VENV/.req"
}

# ---- microdot (pure Python), unpacked from its PyPI wheel to be frozen ----
MICRODOT_VER=2.7.0
step_microdot() {
    [ -f "$CACHE/microdot/$MICRODOT_VER/microdot/__init__.py" ] && return 0
    step_venv
    log "fetching microdot $MICRODOT_VER"
    local tmp
    tmp=$(mktemp -d)
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$tmp" "microdot==$MICRODOT_VER"
    mkdir -p "$CACHE/microdot/$MICRODOT_VER"
    "$VENV/bin/python" -m zipfile -e "$tmp"/microdot-*.whl "$CACHE/microdot/$MICRODOT_VER"
    rm -rf "$tmp"
}

# ---- headless Chromium and its WebDriver, from Debian (the web page tests) ----
BROWSER_PKGS="chromium chromium-driver"
step_browser() {
    local missing=()
    for p in $BROWSER_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
}

# ---- npm packages (the RP2040 emulator) ----
step_npm() {
    local pkg=$ROOT/tools/package.json
    [ -f "$pkg" ] || return 0
    if [ -f "$CACHE/npm/.pkg" ] && cmp -s "$pkg" "$CACHE/npm/.pkg"; then return 0; fi
    log "installing npm packages"
    mkdir -p "$CACHE/npm"
    cp "$pkg" "$CACHE/npm/package.json"
    [ -f "$ROOT/tools/package-lock.json" ] && cp "$ROOT/tools/package-lock.json" "$CACHE/npm/"
    (cd "$CACHE/npm" && npm install --no-audit --no-fund --silent >/dev/null)
    cp "$pkg" "$CACHE/npm/.pkg"
}

[ $# -gt 0 ] || set -- all
for s in "$@"; do
    case $s in
        all) step_host; step_mpy; step_mpy_patches; step_picosdk; step_lwip; step_picotool; step_venv; step_microdot; step_npm; step_browser ;;
        host|mpy|picosdk|lwip|picotool|venv|microdot|npm|browser) "step_$s" ;;
        mpy-patches) step_mpy_patches ;;
        *) log "unknown step $s"; exit 2 ;;
    esac
done
