"""Integrations with outside billing providers (Stripe)."""
