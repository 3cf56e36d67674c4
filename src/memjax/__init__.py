"""memjax: memory networks for question answering in JAX."""

__version__ = "0.1.0"
