"""The hub's HTTP interface: webhook intake, health and readiness (FastAPI, served by uvicorn)."""
