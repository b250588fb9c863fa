"""Datasets, offline sample generators and transform presets."""
from __future__ import annotations

from pathlib import Path

from ..profile import Profile
from .voc import DOWNLOAD_HINT


def prepare_voc(profile: Profile) -> Path:
    """Make sure the profile's VOC 2012 is on disk and return the root to pass to
    :class:`~seg_common.data.voc.VOCSegmentation`.

    Sample profile: builds the offline sample (a no-op once built). Full profile: checks that
    ``download_data.sh voc`` has run and says how to run it if not.
    """
    if profile.is_sample:
        from .sample import make_sample_voc

        make_sample_voc(profile.data_root)
    elif not (profile.data_root / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir():
        raise FileNotFoundError(
            f"The full profile needs the real VOC 2012 in {profile.data_root / 'VOCdevkit/VOC2012'}. "
            f"Fetch it with: {DOWNLOAD_HINT}, or set SEG_PROFILE=sample."
        )
    return profile.data_root


def prepare_cityscapes(profile: Profile) -> Path:
    """Make sure the profile's Cityscapes is on disk and return the root to pass to
    :class:`~seg_common.data.cityscapes.CityscapesSegmentation`.

    Sample profile: builds the offline sample in ``<data root>/cityscapes`` (a no-op once built).
    Full profile: checks that ``download_data.sh cityscapes`` has run and says how to run it if not.
    """
    root = profile.data_root / "cityscapes"
    if profile.is_sample:
        from .sample_cityscapes import make_sample_cityscapes

        make_sample_cityscapes(root)
    elif not (root / "leftImg8bit").is_dir():
        raise FileNotFoundError(
            f"The full profile needs the real Cityscapes in {root}. Fetch it with "
            "`bash download_data.sh cityscapes` (a free account is needed), or set SEG_PROFILE=sample."
        )
    return root


def prepare_ade20k(profile: Profile) -> Path:
    """Make sure the profile's ADE20K is on disk and return the root to pass to
    :class:`~seg_common.data.ade20k.ADE20KSegmentation` (the folder holding ``ADEChallengeData2016``).

    Sample profile: builds the offline sample in ``<data root>/ade20k`` (a no-op once built).
    Full profile: checks that ``download_data.sh ade20k`` has run and says how to run it if not.
    """
    if profile.is_sample:
        from .sample_ade20k import make_sample_ade20k

        return make_sample_ade20k(profile.data_root / "ade20k")
    if not (profile.data_root / "ADEChallengeData2016" / "images").is_dir():
        raise FileNotFoundError(
            f"The full profile needs the real ADE20K in {profile.data_root / 'ADEChallengeData2016'}. "
            "Fetch it with `bash download_data.sh ade20k` (923 MB), or set SEG_PROFILE=sample."
        )
    return profile.data_root


def prepare_cornell(profile: Profile) -> Path:
    """Make sure the profile's Cornell grasping data is on disk and return the root to pass to
    :class:`~seg_common.data.cornell.CornellGrasping` (the folder holding ``01`` .. ``10``).

    Sample profile: builds the offline sample in ``<data root>/cornell`` (a no-op once built).
    Full profile: checks ``<data root>/cornell`` for the scenes and their depth images and says
    how to get them if not.
    """
    root = profile.data_root / "cornell"
    if profile.is_sample:
        from .sample_cornell import make_sample_cornell

        return make_sample_cornell(root)
    positives = sorted(root.glob("*/pcd*cpos.txt"))
    if not positives:
        raise FileNotFoundError(
            f"The full profile needs the Cornell grasping dataset in {root} (folders 01 .. 10). It has "
            "no official mirror we can verify: see the README for where to get it, or set SEG_PROFILE=sample."
        )
    if not positives[0].with_name(positives[0].name.replace("cpos.txt", "d.tiff")).is_file():
        raise FileNotFoundError(
            f"{root} holds the Cornell scenes but not their depth images (pcdNNNNd.tiff). Write them "
            "with GG-CNN's `python -m utils.dataset_processing.generate_cornell_depth "
            f"{root}` (github.com/dougsm/ggcnn)."
        )
    return root
