"""HTTP API (FastAPI, under /api/v1) and the duty-officer console. Build it with
`api.main.create_app`; tokens with `api.security.create_token`."""
