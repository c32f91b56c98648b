"""The webhook hub and the Redis side of the API: job queue names, pub/sub fan-out."""
