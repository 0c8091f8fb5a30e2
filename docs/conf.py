"""Sphinx configuration of rnnkit's documentation site.

Build it (offline: no theme, font, script or inventory is fetched) from the repository root::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

and open ``docs/_build/html/index.html``. The front page is the README, the guides are the
markdown files beside this one, the tutorial is the notebook (rendered with the outputs it has;
``tests/test_tutorial.py`` executes it), and the API and CLI references are generated from the
package at build time by ``docs/_ext/rnnkit_docs.py``. ``tests/test_docs.py`` builds the site with
warnings as errors and checks the result.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))          # this checkout's rnnkit
sys.path.insert(0, str(DOCS / "_ext"))

import rnnkit  # noqa: E402

project = "rnnkit"
author = "the rnnkit authors"
copyright = "the rnnkit authors (MIT license)"
release = version = rnnkit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",       # the docstrings' Args: / Returns: / Raises: sections
    "myst_nb",                   # markdown (MyST) pages and the notebook
    "rnnkit_docs",               # the generated API and CLI references
]

exclude_patterns = ["_build", "tutorial.md", "**/.ipynb_checkpoints", "img"]
# the notebook is docs/tutorial.ipynb (tutorial.md is its source, excluded: one page each)

# MyST: GitHub-style heading anchors, so the README's and guides' in-page links resolve
myst_heading_anchors = 4
nb_execution_mode = "off"        # tests/test_tutorial.py executes the notebook in a kernel

autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"       # a class's docstring and its __init__'s
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True         # Attributes: as fields (autodoc lists the members themselves)

# Every cross-reference must resolve (-W turns a broken one into an error). Names of other
# libraries cannot: the build fetches no inventory (offline), so they are listed here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|pathlib|os|typing|collections|collections\.abc|torch|onnx|onnxruntime"
               r"|ort|matplotlib|threading|argparse|io|json|re|contextlib|dataclasses|types"
               r"|numba|selenium|tensorboardX|safetensors|filelock|tqdm|datetime)(\..*)?"),
    # private base classes named by "Bases:" (not part of the API)
    (r"py:class", r"rnnkit\.(.*\.)?_\w+"),
    (r"py:(class|obj|data)", r"(Path|PathLike|Any|Optional|Union|Callable|Iterable|Iterator"
                             r"|Sequence|Mapping|Generator|ndarray|DTypeLike|ArrayLike|Tensor"
                             r"|NoneType|None|optional|array|array_like|float|int|str|bool"
                             r"|dict|list|tuple|bytes|object|type|callable|Self)"),
    (r"py:(class|exc)", r"(ValueError|KeyError|TypeError|RuntimeError|OSError|Exception"
                        r"|BaseException|UserWarning|FileNotFoundError|ImportError)"),
    (r"py:(meth|attr|func)", r"(bytes|str|dict|list|tuple|object)\.\w+"),
]

html_theme = "furo"
html_title = f"rnnkit {release}"
html_static_path = []
html_show_sourcelink = False
