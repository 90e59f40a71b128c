import os

# Tests never contact the Hugging Face hub.
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("SEARCHTUNE_PROFILE", "smoke")
os.environ["SEARCHTUNE_BATCH"] = "1"  # no progress bars in executed notebooks
os.environ.pop("SEARCHTUNE_DATASET", None)  # nbval compares against the committed (default-dataset) outputs


def pytest_collection_modifyitems(config, items):
    """With `pytest -n 2 --dist loadgroup` (make test): the notebooks run in reading order on one worker,
    because each may read what an earlier one saved (01's embedder feeds 02, 02's reranker feeds 03,
    03's adapter feeds 04); every other test file is a group of its own, on the other worker."""
    import pytest

    for item in items:
        name = item.path.name
        group = "notebooks" if name.endswith(".ipynb") else name
        item.add_marker(pytest.mark.xdist_group(group))
