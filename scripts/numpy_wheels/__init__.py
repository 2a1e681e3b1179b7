"""numpy-wheels: build, repair, audit, stage and publish NumPy wheels.

The package is split by concern; the Makefile calls the ``numpy-wheels``
command (``numpy_wheels.cli``), and the scripts the design names
(``scripts/check_wheel.py``, ``scripts/openblas_support.py``,
``scripts/wheel-uploader``) are thin entry points into it.
"""
