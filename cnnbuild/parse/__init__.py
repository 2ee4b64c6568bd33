"""Stage 1, YAML → Spec: located YAML nodes (source.py), `${…}` expressions (expr.py), typed
values (values.py), the data/augment/train sections (sections.py), the edits made before
parsing (overrides.py), the parser (parser.py) with its names (names.py) and blocks
(blocks.py), and the entry points (load.py). Which parser reads a file is its family's
choice (cnnbuild/families/)."""
from .load import load_spec, parse_spec, parse_tree, read_tree, resolved_tree, text_tree, with_budget  # noqa: F401
from .parser import Budget, Spec  # noqa: F401
