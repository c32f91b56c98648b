"""ARQ jobs and the worker that runs them."""
