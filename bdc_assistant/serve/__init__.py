"""``bdc serve``: the customized local solver behind an OpenAI-compatible HTTP API.

Nothing here is imported by ``bdc --help``; starlette, sse-starlette and uvicorn load inside the functions
that build and run the app.
"""
