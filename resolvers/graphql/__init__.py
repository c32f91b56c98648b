"""The GraphQL endpoint: schema assembly, request context and resolvers."""
