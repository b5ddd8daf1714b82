"""One module per resource; every router uses `api.security.GuardedRoute`."""
