"""Probes: does the service rewrite my prompt?

The method, apart from the step kind that runs it (``gemflow.kinds.probe``): the battery of prompts
(``battery``), reading images back (``reading``), comparing texts (``compare``), judging the
evidence (``verdict``), running it all (``method``), and the report (``report``, ``schema``,
``sheet``).
"""
