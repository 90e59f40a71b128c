"""searchtune_utils: the small shared package behind the searchtune notebooks.

It holds what is *not* the lesson: profiles and paths (``config``), data building and
validation (``data``, ``build_pydocs``), model lookup (``models``), metrics (``metrics``),
retrieval baselines (``retrieval``) and plots (``plots``). The trainers being taught
(SentenceTransformerTrainer, CrossEncoderTrainer, SFTTrainer, DPOTrainer) stay in the notebooks:
the steps a later notebook reuses are the teaching notebook's own ``#@save`` cells, which
``lessons`` reads from the notebook file (one definition, on screen where it is taught).
"""

__version__ = "0.1.0"
