from ..plugins import import_submodules

import_submodules(__name__, __path__)  # registers the probes (eval.probes)
