"""ChatAPI's streaming benchmark (issue 7): `make bench` or `python -m bench.run [--quick]`."""
