"""Validation of predicted frames against reference frames and pw.x eigenvalues: block errors, band errors,
the verdict against thresholds, and plots.

Runs on the compute node as ``slem validate`` (``slem/cli/validate.py``); the AiiDA side
(``calcjobs/validate.py``) only moves files and numbers. ``kpoints.py`` is the one module the daemon
imports: it chooses the k-points, so that the pw.x bands run samples the same ones.
"""
