"""The engine: the DAG, content keys, decisions, the scheduler and runner, and the events it emits."""
