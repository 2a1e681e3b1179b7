"""The build side: settings, source, the steps through the shell library, the report.

Imports only the standard library here: ``numpy_tools`` runs in build and test
interpreters that have nothing else (``python -m numpy_wheels.build.numpy_tools``).
"""
