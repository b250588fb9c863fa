#!/usr/bin/env bash
# Fetch the course's datasets into data/ (or $SEG_DATA), or build the offline sample.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash download_data.sh [sample|voc|voc-aug|cityscapes|ade20k|--help]

  sample      (default) build the offline VOC-format sample in data/sample (no network, ~20 s)
  voc         PASCAL VOC 2012 trainval (2 GB): d2l's mirror first, the official host as fallback;
              resumes a partial download, verifies the checksum, extracts to data/VOCdevkit/VOC2012
  voc-aug     SBD (1.4 GB) -> data/VOCdevkit/VOC2012/SegmentationClassAug + train_aug.txt
              (10,582 training images); runs `voc` first if needed
  cityscapes  Cityscapes fine annotations + images (11.6 GB; needs a free account at
              cityscapes-dataset.com): csDownload asks for your login, resumes an interrupted
              download, verifies MD5; extracts to data/cityscapes/{leftImg8bit,gtFine} and
              checks 2975 train / 500 val / 1525 test frames
  ade20k      ADE20K SceneParsing, ADEChallengeData2016.zip (about 0.9 GB) from MIT: resumes a partial
              download; no checksum is published with it, so it checks that the zip is whole,
              then the layout and the 20,210 training / 2,000 validation images (each with its
              annotation) after extraction; extracts to data/ADEChallengeData2016. The instance
              annotations (annotations_instance.tar, Places Challenge 2017) are not fetched.

Running a command again when its data is complete does nothing.

Environment:
  SEG_DATA          data root (default: data/ next to this script)
  PYTHON            interpreter with seg_common installed (default: .venv/bin/python, else python3)
  VOC_URL, VOC_SHA1, VOC_FALLBACK_URL, VOC_FALLBACK_MD5, SBD_URL, SBD_MD5
                    override the mirrors and their checksums
  VOC_NEED_MB, SBD_NEED_MB, CITYSCAPES_NEED_MB   free disk space required before downloading
  CSDOWNLOAD        the csDownload command (default: on PATH, else next to $PYTHON)
  CITYSCAPES_EXPECT frames expected in train, val and test (default: "2975 500 1525")
  ADE20K_URL, ADE20K_SHA1   override the URL; a SHA1 to verify the zip against (default: none)
  ADE20K_NEED_MB, ADE20K_EXPECT   free disk space; images expected (default: "20210 2000")
  KEEP_ARCHIVES=1   keep the downloaded archives after extraction
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${SEG_DATA:-$HERE/data}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$HERE/.venv/bin/python" ]; then PYTHON="$HERE/.venv/bin/python"; else PYTHON=python3; fi
fi
DOWNLOADS="$DATA/downloads"

VOC_URL="${VOC_URL:-http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar}"
VOC_SHA1="${VOC_SHA1:-4e443f8a2eca6b1dac8a6c57641b67dd40621a49}"
VOC_FALLBACK_URL="${VOC_FALLBACK_URL:-http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar}"
VOC_FALLBACK_MD5="${VOC_FALLBACK_MD5:-6cd6e144f989b92b3379bac3b3de84fd}"
VOC_NEED_MB="${VOC_NEED_MB:-4500}"       # 2.0 GB archive + 2.0 GB extracted
SBD_URL="${SBD_URL:-http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz}"
SBD_MD5="${SBD_MD5:-82b4d87ceb2ed10f6038a1cba92111cb}"
SBD_NEED_MB="${SBD_NEED_MB:-3000}"       # 1.4 GB archive + the labels extracted
CITYSCAPES_PACKAGES="gtFine_trainvaltest.zip leftImg8bit_trainvaltest.zip"
CITYSCAPES_NEED_MB="${CITYSCAPES_NEED_MB:-24000}"   # 11.6 GB of archives + as much extracted
ADE20K_URL="${ADE20K_URL:-http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip}"
ADE20K_SHA1="${ADE20K_SHA1:-}"           # none published: the zip's integrity and the counts are checked
ADE20K_NEED_MB="${ADE20K_NEED_MB:-2500}" # the archive (about 0.9 GB) + about 1 GB extracted

die() { echo "error: $*" >&2; exit 1; }
say() { echo "[download_data] $*"; }

need_disk() {  # need_disk MB: fail early when the data folder's disk has too little room
    local need_mb=$1 free_kb
    mkdir -p "$DATA"
    free_kb=$(df -Pk "$DATA" | awk 'NR == 2 {print $4}')
    if [ "$free_kb" -lt $((need_mb * 1024)) ]; then
        die "not enough disk space in $DATA: $((free_kb / 1024)) MB free, $need_mb MB needed. Free some space or point SEG_DATA at a larger disk."
    fi
}

checksum() {  # checksum FILE ALGO -> hex digest (python, so it works the same on Linux and macOS)
    "$PYTHON" - "$1" "$2" <<'PY'
import hashlib, sys
h = hashlib.new(sys.argv[2])
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
PY
}

verified() {  # verified FILE ALGO SUM: FILE has checksum SUM or, when SUM is empty, is a whole zip
    if [ -n "$3" ]; then [ "$(checksum "$1" "$2")" = "$3" ]; else zip_complete "$1"; fi
}

# fetch URL ALGO SUM DEST: download (resuming DEST.part), verify, rename to DEST. An empty SUM
# (no checksum published) verifies that the file is a whole zip archive instead.
# A file that fails the check is moved to DEST.bad and never extracted. Returns 1 on failure.
fetch() {
    local url=$1 algo=$2 sum=$3 dest=$4 part="$4.part" rc=0 got
    mkdir -p "$(dirname "$dest")"
    if [ -f "$dest" ] && verified "$dest" "$algo" "$sum"; then
        say "$(basename "$dest") already downloaded and verified"
        return 0
    fi
    say "downloading $url"
    [ -s "$part" ] && say "resuming a partial download ($(du -k "$part" | cut -f1) KB so far)"
    curl -fL --retry 2 --connect-timeout 20 -C - -o "$part" "$url" || rc=$?
    if [ "$rc" -eq 33 ]; then          # the server cannot resume: start again from zero
        say "the server does not support resuming; downloading from the start"
        rm -f "$part"; rc=0
        curl -fL --retry 2 --connect-timeout 20 -o "$part" "$url" || rc=$?
    fi
    if [ "$rc" -ne 0 ] && [ ! -s "$part" ]; then
        case "$rc" in
            6|7|28) echo "error: could not reach $url (curl exit $rc: no network, or the host is down)" >&2 ;;
            22) echo "error: $url answered with an HTTP error (curl exit 22)" >&2 ;;
            *) echo "error: downloading $url failed (curl exit $rc)" >&2 ;;
        esac
        return 1
    fi
    if [ "$rc" -ne 0 ]; then
        # A complete .part makes the server refuse the range; a short one is kept for next time.
        say "curl exit $rc; checking what was downloaded"
    fi
    if ! verified "$part" "$algo" "$sum"; then
        if [ "$rc" -ne 0 ]; then
            echo "error: download of $url stopped early (curl exit $rc); run again to resume from $part" >&2
            return 1
        fi
        mv -f "$part" "$dest.bad"
        if [ -n "$sum" ]; then
            got=$(checksum "$dest.bad" "$algo")
            echo "error: checksum mismatch for $url: expected $algo $sum, got $got. The file is kept at $dest.bad for inspection and was not extracted; delete it and run again." >&2
        else
            echo "error: $url did not give a complete zip archive. The file is kept at $dest.bad for inspection and was not extracted; delete it and run again." >&2
        fi
        return 1
    fi
    mv -f "$part" "$dest"
    if [ -n "$sum" ]; then say "verified $(basename "$dest") ($algo $sum)"; else say "$(basename "$dest") is a complete zip archive"; fi
}

# extract ARCHIVE TMPDIR [tar member patterns...]: unpack into a temporary folder inside $DATA.
extract() {
    local archive=$1 tmp=$2
    shift 2
    rm -rf "$tmp"; mkdir -p "$tmp"
    say "extracting $(basename "$archive")"
    tar -xf "$archive" -C "$tmp" "$@" || die "could not extract $archive (damaged archive or disk full); delete it and run again"
}

cmd_sample() {
    say "building the offline VOC-format sample in $DATA/sample"
    SEG_DATA="$DATA" "$PYTHON" -m seg_common.data.sample --root "$DATA/sample"
}

cmd_voc() {
    local voc="$DATA/VOCdevkit/VOC2012" archive="$DOWNLOADS/VOCtrainval_11-May-2012.tar"
    if [ -f "$voc/.download_complete" ]; then
        say "VOC 2012 is already in $voc"; return 0
    fi
    if [ -d "$voc/JPEGImages" ] && [ ! -f "$voc/.seg_common_sample" ]; then
        say "found an existing VOC 2012 in $voc (not downloaded by this script); leaving it as it is"
        touch "$voc/.download_complete"; return 0
    fi
    [ -f "$archive" ] || need_disk "$VOC_NEED_MB"
    fetch "$VOC_URL" sha1 "$VOC_SHA1" "$archive" \
        || { say "trying the fallback host"; fetch "$VOC_FALLBACK_URL" md5 "$VOC_FALLBACK_MD5" "$archive"; } \
        || die "VOC 2012 could not be downloaded from $VOC_URL nor $VOC_FALLBACK_URL (see above). Download VOCtrainval_11-May-2012.tar by hand into $DOWNLOADS and run this again."
    extract "$archive" "$DATA/.extract-voc"
    [ -d "$DATA/.extract-voc/VOCdevkit/VOC2012/JPEGImages" ] \
        || die "$archive does not contain VOCdevkit/VOC2012/JPEGImages; is it the VOC 2012 trainval tar?"
    mkdir -p "$DATA/VOCdevkit"
    rm -rf "$voc"
    mv "$DATA/.extract-voc/VOCdevkit/VOC2012" "$voc"
    rm -rf "$DATA/.extract-voc"
    touch "$voc/.download_complete"
    [ "${KEEP_ARCHIVES:-0}" = 1 ] || rm -f "$archive"
    say "VOC 2012 ready in $voc ($(wc -l < "$voc/ImageSets/Segmentation/train.txt") train / $(wc -l < "$voc/ImageSets/Segmentation/val.txt") val)"
}

cmd_voc_aug() {
    local voc="$DATA/VOCdevkit/VOC2012" archive="$DOWNLOADS/benchmark.tgz" sbd="$DATA/.extract-sbd"
    cmd_voc
    if [ -f "$voc/.aug_complete" ]; then
        say "the augmented set is already in $voc (train_aug.txt)"; return 0
    fi
    [ -f "$archive" ] || need_disk "$SBD_NEED_MB"
    fetch "$SBD_URL" md5 "$SBD_MD5" "$archive" \
        || die "SBD could not be downloaded from $SBD_URL (see above). Download benchmark.tgz by hand into $DOWNLOADS and run this again."
    extract "$archive" "$sbd" --wildcards '*/dataset/cls/*' '*/dataset/train.txt' '*/dataset/val.txt'
    "$PYTHON" -m seg_common.data.sbd --sbd "$sbd/benchmark_RELEASE/dataset" --voc "$voc"
    rm -rf "$sbd"
    touch "$voc/.aug_complete"
    [ "${KEEP_ARCHIVES:-0}" = 1 ] || rm -f "$archive"
}

# csdownload_path: the csDownload command (CSDOWNLOAD, else on PATH, else next to $PYTHON).
csdownload_path() {
    if [ -n "${CSDOWNLOAD:-}" ]; then
        [ -x "$CSDOWNLOAD" ] && echo "$CSDOWNLOAD"
    elif command -v csDownload; then
        :
    elif [ -x "$(dirname "$PYTHON")/csDownload" ]; then
        echo "$(dirname "$PYTHON")/csDownload"
    else
        return 1
    fi
}

zip_complete() {  # zip_complete FILE: true when FILE is a whole zip (its central directory reads)
    [ -f "$1" ] && "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).close()' "$1" 2>/dev/null
}

cityscapes_check() {  # counts the frames per split; fails when some are missing
    # shellcheck disable=SC2086  # CITYSCAPES_EXPECT holds three numbers
    "$PYTHON" -m seg_common.data.cityscapes --check "$1" ${CITYSCAPES_EXPECT:+--expect $CITYSCAPES_EXPECT}
}

cmd_cityscapes() {
    local cs="$DATA/cityscapes" pkg cs_download resume="" missing=()
    if [ -f "$cs/.download_complete" ]; then
        say "Cityscapes is already in $cs"; return 0
    fi
    [ -f "$cs/.seg_common_sample" ] \
        && die "$cs holds the generated Cityscapes sample; move it away (the sample belongs in $DATA/sample/cityscapes) and run this again"
    if [ -d "$cs/leftImg8bit" ] && cityscapes_check "$cs" >/dev/null 2>&1; then
        say "found a complete Cityscapes in $cs (not downloaded by this script); leaving it as it is"
        touch "$cs/.download_complete"; return 0
    fi
    for pkg in $CITYSCAPES_PACKAGES; do
        if ! zip_complete "$cs/$pkg"; then
            missing+=("$pkg")
            if [ -f "$cs/$pkg" ]; then resume="-r"; fi     # a partial download: csDownload -r resumes it
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        cs_download=$(csdownload_path) \
            || die "csDownload (from cityscapesscripts) was not found. Install it with: pip install cityscapesscripts   (or: \"$PYTHON\" -m pip install cityscapesscripts), then run this again."
        [ -n "$resume" ] || need_disk "$CITYSCAPES_NEED_MB"
        mkdir -p "$cs"
        say "Cityscapes needs a free account: register at https://www.cityscapes-dataset.com/register/ first."
        say "csDownload asks for your user name and password (and offers to store them)."
        say "downloading ${missing[*]} into $cs (241 MB + 11 GB)${resume:+, resuming the partial files}"
        "$cs_download" ${resume:+"$resume"} -d "$cs" "${missing[@]}" \
            || die "csDownload failed (see above). Run this again to resume. After 'MD5 sum of downloaded file does not match', delete that file in $cs first; after 'Bad credentials', check your login at https://www.cityscapes-dataset.com/login/."
        for pkg in "${missing[@]}"; do
            zip_complete "$cs/$pkg" || die "$cs/$pkg is not a complete zip archive; run this again to resume the download"
        done
    fi
    for pkg in $CITYSCAPES_PACKAGES; do
        say "extracting $pkg"
        if command -v unzip >/dev/null; then
            unzip -q -o "$cs/$pkg" -d "$cs" || die "could not extract $cs/$pkg (damaged archive or disk full); delete it and run again"
        else
            "$PYTHON" -m zipfile -e "$cs/$pkg" "$cs" || die "could not extract $cs/$pkg (damaged archive or disk full); delete it and run again"
        fi
    done
    cityscapes_check "$cs" || die "Cityscapes in $cs is incomplete after extraction (see above); delete the zip files in $cs and run this again"
    touch "$cs/.download_complete"
    if [ "${KEEP_ARCHIVES:-0}" != 1 ]; then
        for pkg in $CITYSCAPES_PACKAGES; do rm -f "$cs/$pkg"; done
    fi
    say "Cityscapes ready in $cs (the loader maps labelIds to trainIds itself: no csCreateTrainIdLabelImgs needed)"
}

ade20k_check() {  # counts the images per split and their annotations; fails when some are missing
    # shellcheck disable=SC2086  # ADE20K_EXPECT holds two numbers
    "$PYTHON" -m seg_common.data.ade20k --check "$1" --expect ${ADE20K_EXPECT:-20210 2000}
}

cmd_ade20k() {
    local ade="$DATA/ADEChallengeData2016" archive="$DOWNLOADS/ADEChallengeData2016.zip" tmp="$DATA/.extract-ade20k"
    if [ -f "$ade/.download_complete" ]; then
        say "ADE20K is already in $ade"; return 0
    fi
    [ -f "$ade/.seg_common_sample" ] \
        && die "$ade holds the generated ADE20K sample; move it away (the sample belongs in $DATA/sample/ade20k) and run this again"
    if [ -d "$ade" ]; then
        if ade20k_check "$ade" >/dev/null 2>&1; then
            say "found a complete ADE20K in $ade (not downloaded by this script); leaving it as it is"
            touch "$ade/.download_complete"; return 0
        fi
        die "$ade exists but is incomplete (see: \"$PYTHON\" -m seg_common.data.ade20k --check $ade); move it away and run this again"
    fi
    [ -f "$archive" ] || need_disk "$ADE20K_NEED_MB"
    fetch "$ADE20K_URL" sha1 "$ADE20K_SHA1" "$archive" \
        || die "ADE20K could not be downloaded from $ADE20K_URL (see above). Download ADEChallengeData2016.zip by hand into $DOWNLOADS and run this again."
    rm -rf "$tmp"; mkdir -p "$tmp"
    say "extracting $(basename "$archive")"
    if command -v unzip >/dev/null; then
        unzip -q "$archive" -d "$tmp" || die "could not extract $archive (damaged archive or disk full); delete it and run again"
    else
        "$PYTHON" -m zipfile -e "$archive" "$tmp" || die "could not extract $archive (damaged archive or disk full); delete it and run again"
    fi
    [ -d "$tmp/ADEChallengeData2016/images/training" ] && [ -d "$tmp/ADEChallengeData2016/annotations/training" ] \
        || die "$archive does not hold ADEChallengeData2016/images/training and annotations/training; is it the SceneParsing zip?"
    ade20k_check "$tmp/ADEChallengeData2016" \
        || die "ADE20K is incomplete after extraction (see above); delete $archive and run this again"
    mv "$tmp/ADEChallengeData2016" "$ade"
    rm -rf "$tmp"
    touch "$ade/.download_complete"
    [ "${KEEP_ARCHIVES:-0}" = 1 ] || rm -f "$archive"
    say "ADE20K ready in $ade (150 classes, objectInfo150.txt). For the 100 thing classes, put the Places Challenge 2017 annotations_instance/ and instanceInfo100_train.txt beside images/ (see seg_common.data.ade20k)."
}

case "${1:-sample}" in
    -h|--help|help) usage ;;
    sample) cmd_sample ;;
    voc) cmd_voc ;;
    voc-aug) cmd_voc_aug ;;
    cityscapes) cmd_cityscapes ;;
    ade20k) cmd_ade20k ;;
    *) usage >&2; die "unknown command '${1}'" ;;
esac
