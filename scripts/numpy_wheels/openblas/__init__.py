"""Fetch, verify and prepare OpenBLAS for a NumPy wheel build.

Two sources, one result: a directory with ``lib/`` (the shared library as the
wheel ships it), ``include/`` and ``lib/pkgconfig/*.pc`` whose paths point at
that directory.  Its absolute path is the one line printed on stdout, so a
build does ``basedir=$(python scripts/openblas_support.py)`` and puts
``$basedir/lib/pkgconfig`` on ``PKG_CONFIG_PATH``.

- ``wheel`` (NumPy >= 2.0): the ``scipy-openblas64`` (ILP64) or
  ``scipy-openblas32`` (LP64) wheel for the *target* platform, found on the
  package index, verified against the index's sha256; the ``.pc`` file has the
  content of the package's ``get_pkg_config()``.
- ``legacy`` (NumPy 1.x): ``{BASE}/{VER}/download/openblas{""|64_}-{VER}-{PLATTAG}``
  tarballs/zips, verified against the sha256 table in ``openblas_libs.json``.

Everything is cached (``NW_OPENBLAS_CACHE``, default ~/.cache/numpy-wheels/openblas):
a warm run reads the cached index answer and prepared tree and makes no
network request.  Pins, platform suffixes and hashes live in
``numpy_wheels/data/openblas_libs.json``.

Modules: ``tables`` (that file), ``targets`` (platform and options),
``select`` (the index and the best wheel for a target), ``cache`` (verified
downloads, atomic trees), ``prepare`` (the wheel source and the result),
``legacy`` (the tarball source), ``checks`` (``--check-version``, ``--test``)
and ``cli``.  ``--check-version`` and ``--print-version`` of a pinned version
import only the standard library: they run in NumPy's test environment, where
the toolkit is not installed.
"""
