#!/usr/bin/env bash
# Prepares .devdeps/: the build dependencies the GPU machine's image lacks (it has nvcc,
# cuBLAS, CMake and PyTorch, but no Debian -dev packages and no network), copied from this
# Debian machine: Eigen's headers and CMake config, doctest, and zlib's headers and static
# library. .devdeps/ is ignored by git (.git/info/exclude) and travels with `carry`.
#   bash tools/gpu_deps.sh        # then carry [".devdeps"] and run tools/gpu_check.sh there
set -euo pipefail
cd "$(dirname "$0")/.."
d=.devdeps
rm -rf "$d" && mkdir -p "$d/include" "$d/share/eigen3" "$d/lib/cmake" "$d/lib"
cp -r /usr/include/eigen3 "$d/include/"
cp -r /usr/share/eigen3/cmake "$d/share/eigen3/"
cp -r /usr/include/doctest "$d/include/"
cp -r /usr/lib/cmake/doctest "$d/lib/cmake/"
cp /usr/include/zlib.h /usr/include/zconf.h "$d/include/"
cp /usr/lib/x86_64-linux-gnu/libz.a "$d/lib/"
# Debian's config files point at /usr/include; make them point here.
sed -i 's#/usr/include/eigen3#${CMAKE_CURRENT_LIST_DIR}/../../../include/eigen3#g' "$d/share/eigen3/cmake/"*.cmake
sed -i 's#/usr/include#${_IMPORT_PREFIX}/include#g' "$d/lib/cmake/doctest/"*.cmake 2>/dev/null || true
grep -qx '/.devdeps/' .git/info/exclude 2>/dev/null || echo '/.devdeps/' >> .git/info/exclude
du -sh "$d"
