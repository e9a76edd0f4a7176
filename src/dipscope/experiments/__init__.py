"""One module per claim of the study; each has a Config, ``run(config, out)`` and a summary.

* :mod:`.bias` — claim 1, low frequencies are learned first;
* :mod:`.trajectory` — claim 2, two runs converge twice.
"""
