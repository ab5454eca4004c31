#!/usr/bin/env bash
# Build the native libraries spdl.io's extension links, from Debian's sources, pinned,
# into one prefix that setup.py (SPDL_NATIVE=bundle) and `./run wheel` build against.
#
#   bash packaging/build_native.sh                 build (or reuse) the bundle; prints its prefix
#   bash packaging/build_native.sh --print-prefix  print the prefix if it is built, else exit 1
#
# What is built (sources only from the Debian archive, via `apt-get source`):
#   zlib           static, PIC, linked into FFmpeg's libraries and libtiff (PNG, TIFF and EXR
#                  inflate)
#   libjpeg-turbo  libturbojpeg.so and libjpeg.so (the JPEG path of spdl.io; libjpeg's API
#                  decodes a crop's region only, and libtiff decodes JPEG-compressed TIFF
#                  with it)
#   libtiff        libtiff.so: TIFF, which FFmpeg 5.1 decodes wrong or not at all for many
#                  files (spdl/io/_tiff.pyx); zlib (Deflate, PixarLog), JPEG and old JPEG
#                  through the bundle's, and the built-in codecs (LZW, PackBits, CCITT, ...);
#                  no lzma, zstd, webp, jbig, lerc, libdeflate, C++ API, tools, tests, docs
#   libwebp        libwebp.so and libwebpdemux.so: an animated WebP's first frame, which
#                  FFmpeg 5.1 cannot decode (no ANIM support); no tools, no libwebpmux
#   dav1d          static, PIC, 8 and 16 bit, SIMD (nasm): the AV1 decoder inside libavif.so
#   libyuv         static, PIC, inside libavif.so: libavif's YUV to RGB, so that the wheel's
#                  AVIF pixels are those of Debian's libavif and of Pillow's (both use it;
#                  libavif's own conversion differs by up to 7 levels)
#   libavif        libavif.so, decoding AVIF with the static dav1d only (no aom, rav1e, gav1,
#                  svt, libsharpyuv; no apps, tests)
#   FFmpeg         libavutil, libavcodec, libavformat, libavfilter, libswscale: shared, PIC,
#                  LGPL, configured from --disable-everything with only the image demuxers,
#                  parsers and decoders spdl.io accepts and a small set of image filters
# The result lives in ${SPDL_NATIVE_CACHE:-/var/cache/spdl-native}/<key>, where <key> hashes
# this script (its pins and flags), the OS release and the C library; a second run, or a run
# from another clone on the same machine, finds it and returns at once.
#
# Needs: a Debian system (12 or newer) and root or sudo the first time (apt-get adds deb-src
# entries when missing and installs the build tools). SPDL_NATIVE_JOBS sets make's -j (2).
set -euo pipefail

# ---- pins ---------------------------------------------------------------------------------
# FFmpeg: Debian 12's, so that its pixels are the system build's (see packaging/README.md).
FFMPEG_PIN="ffmpeg=7:5.1.9-0+deb12u1"
# libjpeg-turbo: measured against Debian 12's 2.1.5 (packaging/README.md); the faster one.
JPEG_PIN="libjpeg-turbo=1:3.1.3-4"
# Debian 12's (the system's); +deb12u1 patches only minizip, which is not built, and its files
# are missing from the security pool this was written against.
ZLIB_PIN="zlib=1:1.2.13.dfsg-1"
# Debian 12's security release of libtiff 4.5.0 (+deb12u5 is listed by apt, but its files
# answer 404 from the debian-security pool this machine reaches; u4 is in both pools).
TIFF_PIN="tiff=4.5.0-6+deb12u4"
# Debian 12's libwebp (CVE-2023-4863 patched); 1.2.4 has no libsharpyuv.
WEBP_PIN="libwebp=1.2.4-0.2+deb12u1"
# Debian 12's dav1d.
DAV1D_PIN="dav1d=1.0.0-2+deb12u1"
# libavif: sid's 1.4.2. Debian 12's 0.11.1-1+deb12u1 is listed by apt, but its
# libavif_0.11.1.orig.tar.gz answers 404 from both pools (so does trixie's 1.2.1's); 1.4.2
# builds against dav1d 1.0.0 and keeps 0.11's decoding API (avifDecoderSetIOMemory,
# avifDecoderNextImage, avifImageYUVToRGB; avifRGBImageAllocatePixels returns avifResult).
AVIF_PIN="libavif=1.4.2-1"
# Debian 12's libyuv (version 1857; libavif wants 1755 or newer, 1813 for its filters).
YUV_PIN="libyuv=0.0~git20230123.b2528b0-1"
# The suites these pins come from; added as deb-src entries when apt does not know a pin.
SRC_SUITES="bookworm bookworm-updates sid"
SRC_SECURITY_SUITES="bookworm-security"

# ---- what FFmpeg contains ---------------------------------------------------------------
# The image demuxers of spdl.io's IMAGE_DEMUXERS (spdl/io/_demux.pyx) that FFmpeg 5.1 can
# decode without external libraries (jpegxl_pipe needs libjxl: left out).
DEMUXERS="apng gif ico image_bmp_pipe image_cri_pipe image_dds_pipe image_dpx_pipe
  image_exr_pipe image_gem_pipe image_gif_pipe image_j2k_pipe image_jpeg_pipe
  image_jpegls_pipe image_pam_pipe image_pbm_pipe image_pcx_pipe image_pfm_pipe
  image_pgm_pipe image_pgmyuv_pipe image_pgx_pipe image_phm_pipe image_photocd_pipe
  image_pictor_pipe image_png_pipe image_ppm_pipe image_psd_pipe image_qdraw_pipe
  image_qoi_pipe image_sgi_pipe image_sunrast_pipe image_tiff_pipe image_vbn_pipe
  image_webp_pipe image_xbm_pipe image_xpm_pipe image_xwd_pipe"
# The parsers those demuxers use.
PARSERS="bmp cri dpx gif jpeg2000 mjpeg png pnm qoi webp xbm"
# One decoder for each format above (webp pulls vp8, tiff and jpegls pull mjpeg).
# targa: TGA has no signature and no image pipe demuxer; spdl.io sniffs it and decodes the
# packet with FFmpeg's targa decoder.
DECODERS="apng bmp cri dds dpx exr gem gif jpeg2000 jpegls mjpeg pam pbm pcx pfm pgm
  pgmyuv pgx phm photocd pictor png ppm psd qdraw qoi sgi sunrast targa tiff vbn webp xbm
  xpm xwd"
# get_video_filter_desc's filters (scale, pad, crop, format) and LGPL image filters for a
# caller's filter_desc. GPL ones (eq, boxblur) are not in an LGPL build. The graph ends
# (buffer, buffersink) are always built.
FILTERS="format null copy scale pad crop hflip vflip transpose rotate
  setsar setdar negate lut lutrgb lutyuv gblur avgblur unsharp hue colorchannelmixer
  convolution edgedetect drawbox colorspace"

APT_TOOLS="build-essential dpkg-dev nasm cmake pkg-config xz-utils ca-certificates meson
  ninja-build"
# Debian's cmake, meson and ninja (newer ones on PATH, pip's, refuse older CMakeLists or
# behave differently).
CMAKE=/usr/bin/cmake
MESON=/usr/bin/meson
NINJA=/usr/bin/ninja

say() { printf '[build_native] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
CACHE="${SPDL_NATIVE_CACHE:-/var/cache/spdl-native}"
JOBS="${SPDL_NATIVE_JOBS:-2}"

cache_key() {
    # The system's release stands for its compiler (which may not be installed yet: the
    # key must be the same before and after this script installs the build tools).
    {
        cat "$SCRIPT"
        uname -m
        (. /etc/os-release && echo "$ID $VERSION_ID")
        (ldd --version 2>/dev/null || echo no-ldd) | sed -n 1p
    } | sha256sum | cut -c1-16
}
KEY="$(cache_key)"
PREFIX="$CACHE/$KEY"

if [ "${1:-}" = "--print-prefix" ]; then
    [ -f "$PREFIX/.complete" ] || exit 1
    echo "$PREFIX"
    exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--print-prefix]"

if [ -f "$PREFIX/.complete" ]; then
    say "cached: $PREFIX"
    echo "$PREFIX"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_get() {  # apt_get ARGS...: apt-get, its output kept in $CACHE/apt.log and shown when it fails
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@" \
            >"$CACHE/apt.log" 2>&1; then
        tail -20 "$CACHE/apt.log" >&2
        die "apt-get $1 failed (log: $CACHE/apt.log)"
    fi
}

mkdir -p "$CACHE" 2>/dev/null || { $SUDO mkdir -p "$CACHE" && $SUDO chown "$(id -u):$(id -g)" "$CACHE"; }
# One build of a key at a time (CI and a developer's run on the same machine).
exec 9>"$CACHE/$KEY.lock"
flock 9
if [ -f "$PREFIX/.complete" ]; then
    say "cached (built by another run): $PREFIX"
    echo "$PREFIX"
    exit 0
fi
START=$SECONDS

# ---- tools and sources --------------------------------------------------------------------
missing_tools=()
for p in $APT_TOOLS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing_tools+=("$p")
done
if [ ${#missing_tools[@]} -gt 0 ]; then
    say "installing build tools: ${missing_tools[*]}"
    apt_get update
    apt_get install -y --no-install-recommends "${missing_tools[@]}"
fi

pin_known() {  # pin_known name=version: apt has this source version
    local name="${1%%=*}" version="${1#*=}"
    local versions
    versions="$(apt-cache showsrc --only-source "$name" 2>/dev/null || true)"
    grep -qxF "Version: $version" <<<"$versions"
}
missing_pins=()
ALL_PINS="$FFMPEG_PIN $JPEG_PIN $ZLIB_PIN $TIFF_PIN $WEBP_PIN $DAV1D_PIN $YUV_PIN $AVIF_PIN"
for pin in $ALL_PINS; do
    pin_known "$pin" || missing_pins+=("$pin")
done
if [ ${#missing_pins[@]} -gt 0 ]; then
    list=/etc/apt/sources.list.d/spdl-native-src.sources
    say "apt knows no source for ${missing_pins[*]}: adding deb-src entries ($list)"
    printf '%s\n' \
        "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: $SRC_SUITES" \
        "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
        "Types: deb-src" "URIs: http://deb.debian.org/debian-security" \
        "Suites: $SRC_SECURITY_SUITES" "Components: main" \
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
        | $SUDO tee "$list" >/dev/null
    apt_get update
    for pin in "${missing_pins[@]}"; do
        pin_known "$pin" || die "the Debian archive has no source $pin (the pin may have left it: update the pin in $SCRIPT)"
    done
fi

# fetch name=version: unpack Debian's source (with Debian's patches) under $CACHE/src; prints
# the unpacked directory. Downloads once per version, whatever the key.
fetch() {
    local name="${1%%=*}" version="${1#*=}"
    local dir="$CACHE/src/$name/${version#*:}"
    if [ ! -f "$dir/.unpacked" ]; then
        say "apt-get source $1"
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$dir" && apt-get source -qq --only-source "$1" >/dev/null 2>"$dir/apt.log") \
            || { cat "$dir/apt.log" >&2; die "apt-get source $1 failed"; }
        touch "$dir/.unpacked"
    fi
    find "$dir" -mindepth 1 -maxdepth 1 -type d | sed -n 1p
}
FFMPEG_SRC="$(fetch "$FFMPEG_PIN")"
JPEG_SRC="$(fetch "$JPEG_PIN")"
ZLIB_SRC="$(fetch "$ZLIB_PIN")"
TIFF_SRC="$(fetch "$TIFF_PIN")"
WEBP_SRC="$(fetch "$WEBP_PIN")"
DAV1D_SRC="$(fetch "$DAV1D_PIN")"
YUV_SRC="$(fetch "$YUV_PIN")"
AVIF_SRC="$(fetch "$AVIF_PIN")"

BUILD="$CACHE/$KEY.build"
rm -rf "$BUILD" "$PREFIX"
mkdir -p "$BUILD" "$PREFIX/licenses"
LOG="$BUILD/log"
run_logged() {  # run_logged stage cmd...: quiet unless it fails
    if ! "${@:2}" >>"$LOG.$1" 2>&1; then
        tail -40 "$LOG.$1" >&2
        die "$1 failed (full log: $LOG.$1)"
    fi
}

# ---- zlib ---------------------------------------------------------------------------------
say "zlib: $(basename "$ZLIB_SRC") (static, PIC)"
cp -a "$ZLIB_SRC" "$BUILD/zlib"
(cd "$BUILD/zlib" && run_logged zlib env CFLAGS="-O3 -fPIC" ./configure --static --prefix="$BUILD/zlib-prefix" \
    && run_logged zlib make -j"$JOBS" libz.a && run_logged zlib make install)

# ---- libjpeg-turbo ------------------------------------------------------------------------
say "libjpeg-turbo: $(basename "$JPEG_SRC") (shared)"
mkdir -p "$BUILD/jpeg"
(cd "$BUILD/jpeg" && run_logged jpeg "$CMAKE" "$JPEG_SRC" -G"Unix Makefiles" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
    -DENABLE_STATIC=OFF -DENABLE_SHARED=ON -DWITH_TURBOJPEG=ON -DWITH_JAVA=OFF \
    -DREQUIRE_SIMD=ON \
    && run_logged jpeg make -j"$JOBS" && run_logged jpeg make install)

# The libraries below find their dependencies only in the bundle: pkg-config sees only its
# .pc files, and CMake's find modules are told where each one is (the system has -dev
# packages of libraries they would otherwise pick up: liblzma, libzstd, libdeflate, ...).
# They decode untrusted input: hardened like FFmpeg's --toolchain=hardened (Debian's flags).
BUNDLE_PC="$PREFIX/lib/pkgconfig"
HARDEN_CFLAGS="-fstack-protector-strong -D_FORTIFY_SOURCE=2 -fstack-clash-protection"
HARDEN_LDFLAGS="-Wl,-z,relro -Wl,-z,now"
cmake_build() {  # cmake_build stage source args...: configure, build and install into $PREFIX
    # (PC_LIBDIR=DIR cmake_build ...: pkg-config sees DIR instead of the bundle's;
    # EXTRA_LDFLAGS=... cmake_build ...: more linker flags)
    local stage="$1" src="$2"; shift 2
    mkdir -p "$BUILD/$stage"
    (cd "$BUILD/$stage" && run_logged "$stage" env PKG_CONFIG_LIBDIR="${PC_LIBDIR:-$BUNDLE_PC}" PKG_CONFIG_PATH= \
        CFLAGS="$HARDEN_CFLAGS" LDFLAGS="$HARDEN_LDFLAGS ${EXTRA_LDFLAGS:-}" \
        "$CMAKE" "$src" -G"Unix Makefiles" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=ON "$@" \
        && run_logged "$stage" make -j"$JOBS" && run_logged "$stage" make install)
}
# pc_drop_private FILE: a shared library's .pc without Requires.private/Libs.private (its
# static dependencies are inside it), so `pkg-config --libs` needs nothing else.
pc_drop_private() { sed -i '/^Requires\.private:/d; /^Libs\.private:/d' "$1"; }

# ---- libtiff ------------------------------------------------------------------------------
say "libtiff: $(basename "$TIFF_SRC") (shared; zlib, JPEG and the built-in codecs)"
EXTRA_LDFLAGS="-Wl,--exclude-libs,libz.a" cmake_build tiff "$TIFF_SRC" \
    -Dtiff-tools=OFF -Dtiff-tests=OFF -Dtiff-contrib=OFF -Dtiff-docs=OFF -Dtiff-deprecated=OFF \
    -Dcxx=OFF -Dsphinx=OFF -Dtiff-opengl=OFF \
    -Dzlib=ON -Dpixarlog=ON -Djpeg=ON -Dold-jpeg=ON -Djpeg12=OFF \
    -Dlzma=OFF -Dzstd=OFF -Dwebp=OFF -Djbig=OFF -Dlerc=OFF -Dlibdeflate=OFF \
    -DZLIB_INCLUDE_DIR="$BUILD/zlib-prefix/include" \
    -DZLIB_LIBRARY="$BUILD/zlib-prefix/lib/libz.a" -DZLIB_LIBRARY_RELEASE="$BUILD/zlib-prefix/lib/libz.a" \
    -DJPEG_INCLUDE_DIR="$PREFIX/include" \
    -DJPEG_LIBRARY="$PREFIX/lib/libjpeg.so" -DJPEG_LIBRARY_RELEASE="$PREFIX/lib/libjpeg.so"
# configure's summary (tif_config.h, tiffconf.h): the codecs asked for are on, the rest off.
tiff_has() { cat "$BUILD/tiff/libtiff/tif_config.h" "$BUILD/tiff/libtiff/tiffconf.h" \
    | grep -qE "^#define $1( 1)?\$"; }
for want in ZIP PIXARLOG JPEG OJPEG LZW PACKBITS CCITT THUNDER NEXT LOGLUV MDI; do
    tiff_has "${want}_SUPPORT" || die "libtiff's configure left out $want"
done
for unwanted in LZMA ZSTD WEBP JBIG LERC LIBDEFLATE CXX; do
    if tiff_has "${unwanted}_SUPPORT"; then die "libtiff was configured with $unwanted"; fi
done
pc_drop_private "$BUNDLE_PC/libtiff-4.pc"

# ---- libwebp ------------------------------------------------------------------------------
say "libwebp: $(basename "$WEBP_SRC") (shared: libwebp, libwebpdemux)"
cmake_build webp "$WEBP_SRC" \
    -DWEBP_BUILD_ANIM_UTILS=OFF -DWEBP_BUILD_CWEBP=OFF -DWEBP_BUILD_DWEBP=OFF \
    -DWEBP_BUILD_GIF2WEBP=OFF -DWEBP_BUILD_IMG2WEBP=OFF -DWEBP_BUILD_VWEBP=OFF \
    -DWEBP_BUILD_WEBPINFO=OFF -DWEBP_BUILD_LIBWEBPMUX=OFF -DWEBP_BUILD_WEBPMUX=OFF \
    -DWEBP_BUILD_EXTRAS=OFF -DWEBP_ENABLE_SIMD=ON \
    -DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON -DCMAKE_DISABLE_FIND_PACKAGE_JPEG=ON \
    -DCMAKE_DISABLE_FIND_PACKAGE_TIFF=ON -DCMAKE_DISABLE_FIND_PACKAGE_GIF=ON \
    -DCMAKE_DISABLE_FIND_PACKAGE_OpenGL=ON
# libwebpdecoder (the decode-only copy of libwebp) is not linked by anything.
rm -f "$PREFIX"/lib/libwebpdecoder.* "$BUNDLE_PC/libwebpdecoder.pc"

# ---- dav1d --------------------------------------------------------------------------------
say "dav1d: $(basename "$DAV1D_SRC") (static, PIC, 8/16 bit)"
run_logged dav1d env PKG_CONFIG_LIBDIR="$BUNDLE_PC" PKG_CONFIG_PATH= \
    CFLAGS="$HARDEN_CFLAGS" LDFLAGS="$HARDEN_LDFLAGS" \
    "$MESON" setup "$BUILD/dav1d" "$DAV1D_SRC" --prefix="$BUILD/dav1d-prefix" --libdir=lib \
    --buildtype=release --default-library=static -Db_staticpic=true -Dbitdepths=8,16 \
    -Denable_asm=true -Denable_tools=false -Denable_tests=false -Denable_examples=false \
    -Denable_docs=false -Dxxhash_muxer=disabled
grep -qx "#define HAVE_ASM 1" "$BUILD/dav1d/config.h" || [ "$(uname -m)" != x86_64 ] \
    || die "dav1d was configured without its assembly (nasm)"
run_logged dav1d "$NINJA" -C "$BUILD/dav1d" -j"$JOBS"
run_logged dav1d "$NINJA" -C "$BUILD/dav1d" install

# ---- libyuv -------------------------------------------------------------------------------
say "libyuv: $(basename "$YUV_SRC") (static, PIC)"
# Only the static library (its CMakeLists also builds a shared one and tools); no JPEG.
mkdir -p "$BUILD/yuv"
(cd "$BUILD/yuv" && run_logged yuv env CFLAGS="$HARDEN_CFLAGS" CXXFLAGS="$HARDEN_CFLAGS" \
    "$CMAKE" "$YUV_SRC" -G"Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DTEST=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_DISABLE_FIND_PACKAGE_JPEG=ON \
    && run_logged yuv make -j"$JOBS" yuv)

# ---- libavif ------------------------------------------------------------------------------
say "libavif: $(basename "$AVIF_SRC") (shared, dav1d and libyuv inside)"
# The static dav1d and libyuv go into libavif.so and stay hidden there (--exclude-libs);
# --as-needed: libyuv needs nothing of libstdc++.
PC_LIBDIR="$BUILD/dav1d-prefix/lib/pkgconfig" \
    EXTRA_LDFLAGS="-Wl,--exclude-libs,ALL -Wl,--as-needed" \
    cmake_build avif "$AVIF_SRC" \
    -DAVIF_CODEC_DAV1D=SYSTEM -DAVIF_CODEC_AOM=OFF -DAVIF_CODEC_RAV1E=OFF \
    -DAVIF_CODEC_LIBGAV1=OFF -DAVIF_CODEC_SVT=OFF -DAVIF_CODEC_AVM=OFF \
    -DAVIF_LIBYUV=SYSTEM -DLIBYUV_INCLUDE_DIR="$YUV_SRC/include" \
    -DLIBYUV_LIBRARY="$BUILD/yuv/libyuv.a" -DAVIF_LIBSHARPYUV=OFF -DAVIF_LIBXML2=OFF -DAVIF_ZLIBPNG=OFF \
    -DAVIF_JPEG=OFF -DAVIF_GTEST=OFF -DAVIF_FUZZTEST=OFF -DAVIF_BUILD_APPS=OFF \
    -DAVIF_BUILD_TESTS=OFF -DAVIF_BUILD_EXAMPLES=OFF -DAVIF_BUILD_MAN_PAGES=OFF \
    -DDAV1D_INCLUDE_DIR="$BUILD/dav1d-prefix/include" \
    -DDAV1D_LIBRARY="$BUILD/dav1d-prefix/lib/libdav1d.a"
grep -q "libavif: Codec enabled: dav1d (decode)" "$LOG.avif" \
    || die "libavif was configured without dav1d (log: $LOG.avif)"
grep -q "libyuv-based fast paths enabled" "$LOG.avif" \
    || die "libavif was configured without libyuv (log: $LOG.avif)"
pc_drop_private "$BUNDLE_PC/libavif.pc"

# setup.py's pkg-config query, against the bundle only.
PKG_CONFIG_LIBDIR="$BUNDLE_PC" PKG_CONFIG_PATH= pkg-config --print-errors --libs --cflags \
    libtiff-4 libwebpdemux libwebp libavif >/dev/null \
    || die "pkg-config cannot use the bundle's libtiff-4, libwebpdemux, libwebp, libavif"

# ---- FFmpeg -------------------------------------------------------------------------------
say "FFmpeg: $(basename "$FFMPEG_SRC") (minimal, shared, LGPL)"
enable_list() { local kind="$1"; shift; for n in $*; do printf -- '--enable-%s=%s ' "$kind" "$n"; done; }
mkdir -p "$BUILD/ffmpeg"
# shellcheck disable=SC2046
(cd "$BUILD/ffmpeg" && run_logged ffmpeg "$FFMPEG_SRC/configure" \
    --prefix="$PREFIX" --libdir="$PREFIX/lib" \
    --extra-version="spdl-$KEY" --toolchain=hardened \
    --enable-shared --disable-static --enable-pic \
    --disable-autodetect --disable-everything \
    --disable-programs --disable-doc --disable-network --disable-debug \
    --disable-avdevice --disable-swresample --disable-postproc \
    --enable-avcodec --enable-avformat --enable-avfilter --enable-swscale \
    --enable-zlib \
    --extra-cflags="-I$BUILD/zlib-prefix/include" --extra-ldflags="-L$BUILD/zlib-prefix/lib" \
    $(enable_list demuxer "$DEMUXERS") $(enable_list parser "$PARSERS") \
    $(enable_list decoder "$DECODERS") $(enable_list filter "$FILTERS"))

# configure drops what it cannot build (a missing dependency, a GPL filter) without
# failing: every component asked for must be in the configuration.
check_enabled() {
    local kind="$1" upper; shift
    for n in $*; do
        upper="$(echo "${n}_$kind" | tr '[:lower:]' '[:upper:]')"
        grep -qx "#define CONFIG_$upper 1" "$BUILD/ffmpeg/config_components.h" \
            || die "FFmpeg's configure left out the $kind $n"
    done
}
check_enabled demuxer "$DEMUXERS"
check_enabled parser "$PARSERS"
check_enabled decoder "$DECODERS"
check_enabled filter "$FILTERS"
grep -qx "#define CONFIG_ZLIB 1" "$BUILD/ffmpeg/config.h" || die "FFmpeg's configure left out zlib"
grep -qx "#define HAVE_X86ASM 1" "$BUILD/ffmpeg/config.h" || [ "$(uname -m)" != x86_64 ] \
    || die "FFmpeg's configure found no nasm: its SIMD code would be left out"
grep -q "^#define CONFIG_GPL 1" "$BUILD/ffmpeg/config.h" && die "FFmpeg configured as GPL"
(cd "$BUILD/ffmpeg" && run_logged ffmpeg make -j"$JOBS" && run_logged ffmpeg make install)

# What ships is stripped (auditwheel copies these; strip before it patches them).
for so in "$PREFIX"/lib/*.so.*; do
    [ -L "$so" ] || strip --strip-unneeded "$so"
done

# Nothing outside the prefix and glibc: the libraries must not have picked up a system one.
for so in "$PREFIX"/lib/*.so.*; do
    [ -L "$so" ] && continue
    outside="$(LD_LIBRARY_PATH="$PREFIX/lib" ldd "$so" | awk '$3 ~ /^\// {print $3}' \
        | grep -v "^$PREFIX/" | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64)\.so' || true)"
    [ -z "$outside" ] || die "$(basename "$so") links outside the bundle: $outside"
done

# ---- licenses (in the wheel: pixelbatch.libs' licenses) ---------------------------------
mkdir -p "$PREFIX/licenses/ffmpeg" "$PREFIX/licenses/libjpeg-turbo" "$PREFIX/licenses/zlib"
cp "$FFMPEG_SRC/COPYING.LGPLv2.1" "$FFMPEG_SRC/LICENSE.md" "$PREFIX/licenses/ffmpeg/"
cp "$FFMPEG_SRC/debian/copyright" "$PREFIX/licenses/ffmpeg/debian-copyright"
cp "$JPEG_SRC/LICENSE.md" "$JPEG_SRC/README.ijg" "$PREFIX/licenses/libjpeg-turbo/"
cp "$JPEG_SRC/debian/copyright" "$PREFIX/licenses/libjpeg-turbo/debian-copyright"
cp "$ZLIB_SRC/debian/copyright" "$PREFIX/licenses/zlib/debian-copyright"
cp "$ZLIB_SRC/LICENSE" "$PREFIX/licenses/zlib/"
license() {  # license NAME SOURCE FILE...: FILEs and Debian's copyright into licenses/NAME
    local name="$1" src="$2"; shift 2
    mkdir -p "$PREFIX/licenses/$name"
    for f in "$@"; do cp "$src/$f" "$PREFIX/licenses/$name/"; done
    cp "$src/debian/copyright" "$PREFIX/licenses/$name/debian-copyright"
}
license libtiff "$TIFF_SRC" LICENSE.md
license libwebp "$WEBP_SRC" COPYING PATENTS
license dav1d "$DAV1D_SRC" COPYING
license libyuv "$YUV_SRC" LICENSE PATENTS
license libavif "$AVIF_SRC" LICENSE

{
    echo "key: $KEY"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m)"
    echo "compiler: $(cc --version | sed -n 1p)"
    echo "sources: $ALL_PINS (Debian archive, apt-get source)"
    echo "libtiff codecs: zlib pixarlog jpeg old-jpeg lzw packbits ccitt thunder next logluv mdi"
    echo "libavif codecs: dav1d (decode; static, 8/16 bit); YUV to RGB: libyuv (static)"
    echo "ffmpeg demuxers: $(echo $DEMUXERS)"
    echo "ffmpeg parsers: $(echo $PARSERS)"
    echo "ffmpeg decoders: $(echo $DECODERS)"
    echo "ffmpeg filters: $(echo $FILTERS)"
} >"$PREFIX/BUILDINFO"
touch "$PREFIX/.complete"
rm -rf "$BUILD"
say "built in $((SECONDS - START)) s: $PREFIX"
echo "$PREFIX"
