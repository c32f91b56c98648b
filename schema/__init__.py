"""GraphQL vocabulary: Strawberry types, inputs, enums and scalars (no I/O here)."""
