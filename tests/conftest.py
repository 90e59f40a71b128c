import os

# Tests never contact the Hugging Face hub.
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("SEARCHTUNE_PROFILE", "smoke")
