"""API: the FastAPI app factory, lifespan, auth, problem+json mapping and the /v1 routers.

No domain logic lives here: routes validate input, call the packages, and shape the answers.
"""
