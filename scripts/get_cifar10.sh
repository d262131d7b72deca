#!/usr/bin/env bash
# Gets the CIFAR-10 binary batches into a folder of this project (default: data/).
#
#   scripts/get_cifar10.sh [--from PATH] [DEST]
#
# Without --from it downloads the official archive, checks its MD5 and unpacks it. With --from (or
# the HEADNET_CIFAR10_SOURCE environment variable) it takes a local copy instead: either an archive
# (unpacked, then accepted if it is the official archive by MD5 or if each of the six files has
# its official MD5, since a repacked archive holds the same files under another checksum) or a
# folder holding the six .bin files (sizes checked, then linked). Either way
# DEST/cifar-10-batches-bin/ ends up holding data_batch_1.bin ... data_batch_5.bin and
# test_batch.bin, 30,730,000 bytes each. Running it again is a no-op.
set -euo pipefail

URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"
FILES=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)
SIZE=30730000
# MD5 of each file of the official archive.
declare -A FILE_MD5=(
  [data_batch_1.bin]=5dd7e06a14cb22eb9f671a540d1b7c25 [data_batch_2.bin]=5ea93a67294ea407fff1d09f752e9692
  [data_batch_3.bin]=942cd6a4bcdd0dd3c604fbe906cb4421 [data_batch_4.bin]=ae636b3ba5c66a11e91e8cb52e771fcb
  [data_batch_5.bin]=53f37980c15c3d472c316c40844f3f0d [test_batch.bin]=803d5f7f4d78ea53de84dbe85f74fb6d)

die() { echo "get_cifar10.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

source_path="${HEADNET_CIFAR10_SOURCE:-}"
dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) [ $# -ge 2 ] || die "--from needs a path"; source_path="$2"; shift 2 ;;
    --from=*) source_path="${1#--from=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$dest" ] || die "only one destination folder, got '$dest' and '$1'"; dest="$1"; shift ;;
  esac
done
project_root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${dest:-$project_root/data}"
target="$dest/cifar-10-batches-bin"

# Checks that a folder holds the six files with their official sizes.
check_folder() {
  local folder="$1" f size
  for f in "${FILES[@]}"; do
    [ -f "$folder/$f" ] || { echo "missing $folder/$f"; return 1; }
    size=$(stat -L -c %s "$folder/$f")
    [ "$size" = "$SIZE" ] || { echo "$folder/$f has $size bytes, expected $SIZE"; return 1; }
  done
}

if problem=$(check_folder "$target"); then
  echo "CIFAR-10 is ready in $target"
  exit 0
fi
mkdir -p "$dest"

# Unpacks into a scratch folder first, so that a bad archive leaves nothing half-written behind.
unpack_archive() {
  local archive="$1" sum f
  sum=$(md5sum "$archive" | cut -d' ' -f1)
  scratch=$(mktemp -d "$dest/.unpack.XXXXXX")
  trap 'rm -rf "${scratch:-}"' EXIT
  tar -xzf "$archive" -C "$scratch" 2>/dev/null || die "$archive is not a readable .tar.gz archive"
  [ -d "$scratch/cifar-10-batches-bin" ] || die "$archive holds no cifar-10-batches-bin/ folder"
  if [ "$sum" != "$MD5" ]; then
    echo "$archive is not byte-identical to the official archive (MD5 $sum); checking its six files instead"
    for f in "${FILES[@]}"; do
      [ -f "$scratch/cifar-10-batches-bin/$f" ] || die "$archive lacks cifar-10-batches-bin/$f"
      sum=$(md5sum "$scratch/cifar-10-batches-bin/$f" | cut -d' ' -f1)
      [ "$sum" = "${FILE_MD5[$f]}" ] || die "$archive: $f has MD5 $sum, expected ${FILE_MD5[$f]} (corrupt or not CIFAR-10)"
    done
  fi
  rm -rf "$target"
  mv "$scratch/cifar-10-batches-bin" "$target"
}

if [ -n "$source_path" ]; then
  if [ -d "$source_path" ]; then
    folder="$source_path"
    [ -d "$source_path/cifar-10-batches-bin" ] && folder="$source_path/cifar-10-batches-bin"
    problem=$(check_folder "$folder") || die "$problem"
    mkdir -p "$target"
    for f in "${FILES[@]}"; do ln -sf "$(cd "$folder" && pwd)/$f" "$target/$f"; done
  elif [ -f "$source_path" ]; then
    unpack_archive "$source_path"
  else
    die "--from $source_path: no such file or folder"
  fi
else
  archive="$dest/cifar-10-binary.tar.gz"
  echo "Downloading $URL (163 MB)"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$archive.part" "$URL" || die "download failed; pass a local copy with --from PATH"
  elif command -v wget >/dev/null; then
    wget -O "$archive.part" "$URL" || die "download failed; pass a local copy with --from PATH"
  else
    die "neither curl nor wget is installed; install one, or pass a local copy with --from PATH"
  fi
  mv "$archive.part" "$archive"
  unpack_archive "$archive"
fi

problem=$(check_folder "$target") || die "after unpacking: $problem"
echo "CIFAR-10 is ready in $target"
