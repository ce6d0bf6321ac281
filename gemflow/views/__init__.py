"""Read-only views of a workflow and what it made: its graph (``dag``) and where an output came
from (``provenance``). Nothing here runs a step, sends a request or writes a file."""
