"""tonecore: the TONE3000 client core shared by the pedal firmware and the host tool.

Pure Python, no I/O (the sans-IO style of h11): the core builds requests, consumes
responses and says what to do next.  The same modules run unchanged on CPython >= 3.10
and MicroPython >= 1.22.

Modules:
    errors    the exception tree (drawn in its docstring)
    urls      percent-encoding, query strings, URL splitting and joining
    http      Request / Response value objects shared by every adapter
    auth      sign-in flows (OTP-only api_key flow; the seam for OAuth/PKCE)
    session   tokens and the refresh policy
    ratelimit client-side request pacing
    redirect  the redirect policy (hop limit, Authorization stripping, no downgrade)
    records   parsers for User, Tone, Model, PaginatedResponse and the enums
    formats   streaming format sanity checks for model files
    download  the resumable, verified download plan
    client    call generators that tie it together, and `run` to drive them
"""

# The one version string of tonebridge: the host package (pyproject.toml reads it
# here), the CLI's --version and the pedal firmware all report this.
__version__ = "0.1.0"
