"""Benchmarks and evaluations: measurements of the runtime modules, kept apart from them.

Why a separate package: what measures the detector must not be what the detector is
built from, and nothing that runs in a pipeline needs it. Runtime modules never import
`securepipe.bench` (tests/bench/test_boundary.py checks it); the CLI reaches it only
through its lazy command registry.
"""
