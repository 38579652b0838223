#!/usr/bin/env python3
"""Prints open-webui's declared dependencies, one per line, minus the local-ML
stack, for the slim e2e install (e2e/run.sh).

torch (about 5 GB with its CUDA and triton wheels) arrives only through
`accelerate` and `sentence-transformers`. Open WebUI imports all three lazily,
for local embedding/reranking models, which the e2e test turns off
(RAG_EMBEDDING_ENGINE=openai). Run with the venv's python after
`pip install --no-deps open-webui==X`.
"""

import re
from importlib.metadata import requires

SKIP = {"torch", "accelerate", "sentence-transformers"}

for req in requires("open-webui") or []:
    if "extra ==" in req:
        continue
    name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
    if name not in SKIP:
        print(req)
