import os

# Tests never contact the Hugging Face hub.
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("SEARCHTUNE_PROFILE", "smoke")
os.environ["SEARCHTUNE_BATCH"] = "1"  # no progress bars in executed notebooks
os.environ.pop("SEARCHTUNE_DATASET", None)  # nbval compares against the committed (default-dataset) outputs
