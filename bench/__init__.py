"""notes-qa benchmarks (`python -m bench --help`): one module per measurement. Not a test."""
