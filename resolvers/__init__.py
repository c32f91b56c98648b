"""Request handlers: GraphQL resolvers and the REST ingest endpoint."""
