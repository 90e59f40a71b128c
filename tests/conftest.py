import os

# Tests never contact the Hugging Face hub.
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("SEARCHTUNE_PROFILE", "smoke")
os.environ["SEARCHTUNE_BATCH"] = "1"  # no progress bars in executed notebooks
os.environ.pop("SEARCHTUNE_DATASET", None)  # nbval compares against the committed (default-dataset) outputs



def pytest_configure(config):
    import time

    config.searchtune_started = time.time()  # smoke results written after this come from this session


def pytest_collection_modifyitems(session, config, items):
    """The README's smoke-time check reads what the notebooks' nbval runs wrote: run it after them."""
    last = [item for item in items if "test_readme_smoke_rehearsal_time" in item.nodeid]
    items[:] = [item for item in items if item not in last] + last
