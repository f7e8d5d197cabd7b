#!/bin/bash
# Packs what the GPU machine needs from build-gpu/ (executables and shared libraries, stripped,
# plus Debian shared libraries it may lack) into build-gpu-carry/, small enough to carry.
set -e
cd "$(dirname "$0")/../.."
rm -rf build-gpu-carry && mkdir -p build-gpu-carry/extra-lib
cd build-gpu
find . -type f \( -perm -u+x -o -name '*.so*' \) ! -path './CMakeFiles/*' ! -name '*.o' \
  ! -name '*.sh' ! -name '*.cmake' | while read -r f; do
  file -b "$f" | grep -q '^ELF' || continue
  mkdir -p "../build-gpu-carry/$(dirname "$f")"
  strip --strip-unneeded -o "../build-gpu-carry/$f" "$f"
done
# Symlinks of shared libraries (libfoo.so.0 -> libfoo.so.0.1.0).
find . -type l -name '*.so*' ! -path './CMakeFiles/*' | while read -r f; do
  mkdir -p "../build-gpu-carry/$(dirname "$f")"
  cp -P "$f" "../build-gpu-carry/$f"
done
cd ../build-gpu-carry
find . -type f -perm -u+x | xargs ldd 2>/dev/null | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE 'libc\.so|libm\.so|libgcc_s|libstdc\+\+|ld-linux|libpthread|libdl\.so|librt\.so|libcuda|libflagstone' |
  while read -r lib; do cp -L "$lib" extra-lib/; done
cd .. && mkdir -p build-gpu-pack && tar -cJf build-gpu-pack/carry.tar.xz -C build-gpu-carry . && ls -la build-gpu-pack
