"""download_data.sh against archives served from 127.0.0.1 (no internet needed)."""
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_common.data.sample import make_sample_voc
from seg_common.profile import SAMPLE_MARKER

SCRIPT = Path(__file__).resolve().parents[1] / "download_data.sh"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) with HTTP Range support, logging requests."""

    def do_GET(self):
        body = self.server.files.get(self.path.lstrip("/"))
        self.server.log.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged:
            start = int(ranged.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.files, srv.log = {}, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing.tar"


@pytest.fixture(scope="module")
def voc_tar(tmp_path_factory) -> bytes:
    """A small archive laid out exactly like VOCtrainval_11-May-2012.tar."""
    root = tmp_path_factory.mktemp("voc_tar")
    make_sample_voc(root, n_train=3, n_val=2, n_aug_only=0)
    (root / "VOCdevkit/VOC2012" / SAMPLE_MARKER).unlink()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(root / "VOCdevkit", arcname="VOCdevkit")
    return buffer.getvalue()


def run(command, data, **env):
    full_env = {**os.environ, "SEG_DATA": str(data), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), command], env=full_env, capture_output=True,
                          text=True, timeout=120)


def voc_env(server, tar, **extra):
    server.files["voc.tar"] = tar
    env = {"VOC_URL": f"{server.url}/voc.tar", "VOC_SHA1": hashlib.sha1(tar).hexdigest(),
           "VOC_FALLBACK_URL": closed_port_url(), "VOC_FALLBACK_MD5": "0" * 32}
    env.update(extra)
    return env


def test_download_verify_extract_then_nothing_to_do(server, voc_tar, tmp_path):
    env = voc_env(server, voc_tar)
    result = run("voc", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    assert len(list((voc / "JPEGImages").glob("*.jpg"))) == 5
    assert (voc / ".download_complete").exists()
    assert not (tmp_path / "downloads" / "VOCtrainval_11-May-2012.tar").exists()   # archive removed
    requests = len(server.log)
    again = run("voc", tmp_path, **env)
    assert again.returncode == 0 and "already" in again.stdout
    assert len(server.log) == requests                 # no second download


def test_resumes_a_partial_download(server, voc_tar, tmp_path):
    part = tmp_path / "downloads" / "VOCtrainval_11-May-2012.tar.part"
    part.parent.mkdir(parents=True)
    half = len(voc_tar) // 2
    part.write_bytes(voc_tar[:half])
    result = run("voc", tmp_path, **voc_env(server, voc_tar))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    assert server.log[0][1] == f"bytes={half}-"        # only the rest was asked for
    assert (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt").is_file()


def test_checksum_mismatch_keeps_the_file_aside_and_extracts_nothing(server, voc_tar, tmp_path):
    env = voc_env(server, voc_tar, VOC_SHA1="0" * 40,
                  VOC_FALLBACK_URL=f"{server.url}/voc.tar", VOC_FALLBACK_MD5="1" * 32)
    result = run("voc", tmp_path, **env)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and "not extracted" in result.stderr
    bad = tmp_path / "downloads" / "VOCtrainval_11-May-2012.tar.bad"
    assert bad.read_bytes() == voc_tar
    assert not (tmp_path / "VOCdevkit").exists()


def test_falls_back_to_the_second_host(server, voc_tar, tmp_path):
    env = voc_env(server, voc_tar, VOC_URL=closed_port_url(), VOC_SHA1="0" * 40,
                  VOC_FALLBACK_URL=f"{server.url}/voc.tar",
                  VOC_FALLBACK_MD5=hashlib.md5(voc_tar).hexdigest())
    result = run("voc", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "could not reach" in result.stderr and "fallback" in result.stdout
    assert (tmp_path / "VOCdevkit/VOC2012/JPEGImages").is_dir()


def test_no_network_is_a_clear_error(tmp_path):
    result = run("voc", tmp_path, VOC_URL=closed_port_url(), VOC_FALLBACK_URL=closed_port_url())
    assert result.returncode != 0
    assert "could not reach" in result.stderr and "could not be downloaded" in result.stderr


def test_too_little_disk_fails_before_downloading(server, voc_tar, tmp_path):
    result = run("voc", tmp_path, **voc_env(server, voc_tar, VOC_NEED_MB=str(10 ** 9)))
    assert result.returncode != 0 and "not enough disk space" in result.stderr
    assert server.log == []


def test_voc_aug_builds_train_aug_from_sbd(server, voc_tar, tmp_path):
    from scipy.io import savemat

    voc_ids = {split: io.TextIOWrapper(io.BytesIO(tarfile.open(fileobj=io.BytesIO(voc_tar)).extractfile(
        f"VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt").read())).read().split()
        for split in ("train", "val")}
    # SBD labels one VOC val image (must stay out of train_aug) and two images of its own.
    sbd_only = ["2008_009999", "2011_000001"]
    sbd_train, sbd_val = [sbd_only[0], voc_ids["val"][0]], [sbd_only[1]]
    buffer = io.BytesIO()
    masks = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(f"benchmark_RELEASE/dataset/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for i, image_id in enumerate(sbd_train + sbd_val):
            masks[image_id] = np.full((7, 9), i + 1, dtype=np.uint8)
            mat = io.BytesIO()
            savemat(mat, {"GTcls": {"Segmentation": masks[image_id]}})
            add(f"cls/{image_id}.mat", mat.getvalue())
        add("train.txt", "\n".join(sbd_train).encode())
        add("val.txt", "\n".join(sbd_val).encode())
    sbd = buffer.getvalue()
    server.files["benchmark.tgz"] = sbd
    env = voc_env(server, voc_tar, SBD_URL=f"{server.url}/benchmark.tgz",
                  SBD_MD5=hashlib.md5(sbd).hexdigest())
    result = run("voc-aug", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    voc = tmp_path / "VOCdevkit/VOC2012"
    train_aug = (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    assert train_aug == sorted(set(voc_ids["train"]) | set(sbd_only))
    for image_id in sbd_only:
        np.testing.assert_array_equal(np.asarray(Image.open(voc / "SegmentationClassAug" / f"{image_id}.png")), masks[image_id])
    again = run("voc-aug", tmp_path, **env)
    assert again.returncode == 0 and "already" in again.stdout


def test_help_and_unknown_command(tmp_path):
    ok = run("--help", tmp_path)
    assert ok.returncode == 0 and "voc-aug" in ok.stdout
    bad = run("imagenet", tmp_path)
    assert bad.returncode != 0 and "unknown command 'imagenet'" in bad.stderr


FAKE_CSDOWNLOAD = """#!/usr/bin/env bash
# Stands in for cityscapesscripts' csDownload: logs its arguments, "downloads" from $FAKE_CS_SRC,
# and like the real one refuses to overwrite an existing file unless given -r.
echo "$*" >> "$FAKE_CS_LOG"
dest=. resume=0 packages=()
while [ $# -gt 0 ]; do
    case $1 in -d) dest=$2; shift 2 ;; -r) resume=1; shift ;; *) packages+=("$1"); shift ;; esac
done
for p in "${packages[@]}"; do
    if [ -e "$dest/$p" ] && [ $resume = 0 ]; then echo "Destination file exists" >&2; exit 1; fi
    cp "$FAKE_CS_SRC/$p" "$dest/$p"
done
"""


@pytest.fixture(scope="module")
def cityscapes_zips(tmp_path_factory) -> Path:
    """gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip laid out like the real ones
    (3 train / 2 val frames), and a fake csDownload that serves them."""
    from seg_common.data.sample_cityscapes import make_sample_cityscapes

    folder = tmp_path_factory.mktemp("cs_zips")
    root = make_sample_cityscapes(folder / "cityscapes", frames_per_city=1)
    for part in ("gtFine", "leftImg8bit"):
        with zipfile.ZipFile(folder / f"{part}_trainvaltest.zip", "w") as archive:
            for path in sorted((root / part).rglob("*")):
                archive.write(path, path.relative_to(root))
    fake = folder / "csDownload"
    fake.write_text(FAKE_CSDOWNLOAD)
    fake.chmod(0o755)
    return folder


def cityscapes_env(zips: Path, log: Path, **extra) -> dict:
    return {"CSDOWNLOAD": str(zips / "csDownload"), "FAKE_CS_SRC": str(zips),
            "FAKE_CS_LOG": str(log), "CITYSCAPES_EXPECT": "3 2 0", **extra}


def test_cityscapes_without_csdownload_says_how_to_install(tmp_path):
    result = run("cityscapes", tmp_path, CSDOWNLOAD=str(tmp_path / "nothing"))
    assert result.returncode != 0
    assert "pip install cityscapesscripts" in result.stderr
    assert not (tmp_path / "cityscapes" / "leftImg8bit").exists()


def test_cityscapes_resumes_extracts_checks_then_nothing_to_do(cityscapes_zips, tmp_path):
    log = tmp_path / "csdownload.log"
    partial = tmp_path / "cityscapes" / "leftImg8bit_trainvaltest.zip"
    partial.parent.mkdir()
    partial.write_bytes((cityscapes_zips / partial.name).read_bytes()[:1000])
    result = run("cityscapes", tmp_path, **cityscapes_env(cityscapes_zips, log))
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["-r", "-d", str(partial.parent),
                                       "gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"]
    assert "user name and password" in result.stdout and "train:     3 frames" in result.stdout
    cs = tmp_path / "cityscapes"
    assert len(list(cs.glob("leftImg8bit/*/*/*_leftImg8bit.png"))) == 5
    assert len(list(cs.glob("gtFine/*/*/*_gtFine_labelIds.png"))) == 5
    assert (cs / ".download_complete").exists() and not list(cs.glob("*.zip"))   # archives removed
    again = run("cityscapes", tmp_path, **cityscapes_env(cityscapes_zips, log))
    assert again.returncode == 0 and "already" in again.stdout
    assert len(log.read_text().splitlines()) == 1                                  # not called again


def test_cityscapes_incomplete_layout_is_an_error(cityscapes_zips, tmp_path):
    log = tmp_path / "csdownload.log"
    result = run("cityscapes", tmp_path, **cityscapes_env(cityscapes_zips, log, CITYSCAPES_EXPECT="2975 500 1525"))
    assert result.returncode != 0
    assert "expected 2975" in result.stderr and "incomplete after extraction" in result.stderr
    assert not (tmp_path / "cityscapes" / ".download_complete").exists()


@pytest.fixture(scope="module")
def ade_zip(tmp_path_factory) -> bytes:
    """A small zip laid out exactly like ADEChallengeData2016.zip (12 training / 9 validation)."""
    from seg_common.data.sample_ade20k import make_sample_ade20k

    root = make_sample_ade20k(tmp_path_factory.mktemp("ade_zip"), n_train=12, n_val=9)
    ade = root / "ADEChallengeData2016"
    (ade / SAMPLE_MARKER).unlink()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(ade.rglob("*")):
            if "annotations_instance" not in path.parts:       # not in the SceneParsing zip
                archive.write(path, path.relative_to(root))
    return buffer.getvalue()


def ade_env(server, data: bytes, **extra) -> dict:
    server.files["ade.zip"] = data
    return {"ADE20K_URL": f"{server.url}/ade.zip", "ADE20K_EXPECT": "12 9", **extra}


def test_ade20k_resumes_checks_counts_then_nothing_to_do(server, ade_zip, tmp_path):
    part = tmp_path / "downloads" / "ADEChallengeData2016.zip.part"
    part.parent.mkdir(parents=True)
    half = len(ade_zip) // 2
    part.write_bytes(ade_zip[:half])                                            # an interrupted download
    result = run("ade20k", tmp_path, **ade_env(server, ade_zip))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and server.log[0][1] == f"bytes={half}-"
    assert "complete zip archive" in result.stdout and "training  :    12 images" in result.stdout
    ade = tmp_path / "ADEChallengeData2016"
    assert len(list((ade / "images/training").glob("*.jpg"))) == 12
    assert len(list((ade / "annotations/validation").glob("*.png"))) == 9
    assert (ade / "objectInfo150.txt").is_file() and (ade / ".download_complete").exists()
    assert not (tmp_path / "downloads/ADEChallengeData2016.zip").exists()      # archive removed
    assert not (tmp_path / ".extract-ade20k").exists()
    requests = len(server.log)
    again = run("ade20k", tmp_path, **ade_env(server, ade_zip))
    assert again.returncode == 0 and "already" in again.stdout
    assert len(server.log) == requests                                           # no second download


def test_ade20k_without_checksum_rejects_a_broken_zip(server, ade_zip, tmp_path):
    broken = ade_zip[: len(ade_zip) - 100]                   # the central directory is cut off
    result = run("ade20k", tmp_path, **ade_env(server, broken))
    assert result.returncode != 0
    assert "not give a complete zip archive" in result.stderr and "not extracted" in result.stderr
    assert (tmp_path / "downloads/ADEChallengeData2016.zip.bad").read_bytes() == broken
    assert not (tmp_path / "ADEChallengeData2016").exists()


def test_ade20k_with_a_checksum_verifies_it(server, ade_zip, tmp_path):
    bad = run("ade20k", tmp_path, **ade_env(server, ade_zip, ADE20K_SHA1="0" * 40))
    assert bad.returncode != 0 and "checksum mismatch" in bad.stderr
    good = run("ade20k", tmp_path / "ok", **ade_env(server, ade_zip, ADE20K_SHA1=hashlib.sha1(ade_zip).hexdigest()))
    assert good.returncode == 0, good.stderr
    assert "verified ADEChallengeData2016.zip (sha1" in good.stdout


def test_ade20k_wrong_image_counts_are_an_error(server, ade_zip, tmp_path):
    result = run("ade20k", tmp_path, **ade_env(server, ade_zip, ADE20K_EXPECT="20210 2000"))
    assert result.returncode != 0
    assert "expected 20210" in result.stderr and "incomplete after extraction" in result.stderr
    assert not (tmp_path / "ADEChallengeData2016").exists()


def test_ade20k_disk_check_and_refusing_the_sample(server, ade_zip, tmp_path):
    result = run("ade20k", tmp_path, **ade_env(server, ade_zip, ADE20K_NEED_MB=str(10 ** 9)))
    assert result.returncode != 0 and "not enough disk space" in result.stderr
    assert server.log == []
    (tmp_path / "ADEChallengeData2016").mkdir()
    (tmp_path / "ADEChallengeData2016" / SAMPLE_MARKER).write_text("{}")
    result = run("ade20k", tmp_path, **ade_env(server, ade_zip))
    assert result.returncode != 0 and "generated ADE20K sample" in result.stderr
    assert run("--help", tmp_path).stdout.count("ade20k") >= 2
