"""seg_common: the helper package of the semantic-segmentation course companion.

Modules, in the direction data flows: ``profile`` -> ``data`` -> ``metrics`` -> ``viz`` ->
``widgets``. Later notebooks add ``models``, ``losses`` and ``engine``.
"""
__version__ = "0.1.0"
