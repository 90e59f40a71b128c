"""searchtune_utils: the small shared package behind the searchtune notebooks.

It holds what is *not* the lesson: profiles and paths (``config``), data building and
validation (``data``, ``build_pydocs``), model lookup (``models``), metrics (``metrics``),
retrieval baselines (``retrieval``) and plots (``plots``). The trainers being taught
(SentenceTransformerTrainer, CrossEncoderTrainer, SFTTrainer, DPOTrainer) stay in the notebooks.
"""

__version__ = "0.1.0"
