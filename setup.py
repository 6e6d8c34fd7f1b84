"""Build script: the metadata lives in setup.cfg; this file only adds the optional compiled build.

By default the package is pure Python (a ``py3-none-any`` wheel). With ``DRACHTIO_SRF_COMPILE=1``
in the environment, ``pip install .`` (or ``pip wheel .``) also compiles the sans-I/O
modules listed in ``COMPILED`` with mypyc into C extensions (a platform wheel; needs a C
compiler and the Python headers). The ``.py`` files are installed alongside and the extensions
take precedence on import. See docs/compiled.md.
"""
from __future__ import annotations

import os

from setuptools import setup

# the modules compiled by DRACHTIO_SRF_COMPILE=1: the sans-I/O layer, SIP and control protocol
# (sip/attrdict.py stays interpreted: mypyc cannot compile a dict subclass with __getattr__)
COMPILED = [
    "drachtio_srf/sip/errors.py",
    "drachtio_srf/sip/numbers.py",
    "drachtio_srf/sip/uri.py",
    "drachtio_srf/sip/headers.py",
    "drachtio_srf/sip/parser.py",
    "drachtio_srf/wire.py",
]
# type-checked with them but left interpreted
CHECKED_ONLY = "drachtio_srf/sip/attrdict.py"
# the mypy (which contains mypyc) a build asks for when none is installed, and attrs, whose own
# type information mypy needs to compile wire.py's attrs classes (a fresh build environment has
# neither: without attrs the build fails with "Cannot find ... module named 'attrs'")
MYPYC_REQUIREMENTS = ["mypy>=1.14", "attrs>=22.2"]  # (group_name; attrs' own type information)


def _compile_requested() -> bool:
    return os.environ.get("DRACHTIO_SRF_COMPILE", "").strip().lower() in ("1", "true", "yes", "on")


if not _compile_requested():
    setup()
else:
    try:
        import attrs  # noqa: F401  (only needed for type-checking wire.py)
        from mypyc.build import mypycify
    except ImportError:
        # pip's isolated build environment has no mypy yet: setuptools' PEP 517 backend reports
        # setup_requires as extra build requirements, so pip installs them and runs this again
        setup(setup_requires=MYPYC_REQUIREMENTS)
    else:
        # only the listed modules are type-checked for the build: the package's other modules
        # (imported by drachtio_srf/__init__.py) are not followed, so of the package's run-time
        # dependencies the build needs only attrs (for wire.py's types)
        # (attrdict.py is type-checked with them, for its types, but not compiled)
        setup(ext_modules=mypycify(["--follow-imports=skip", *COMPILED, CHECKED_ONLY],
                                   only_compile_paths=COMPILED, opt_level="3",
                                   group_name="drachtio_srf_sans_io"))
