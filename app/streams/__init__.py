"""The Faust wiring: topics, the agent, the customer table and wake-ups.

Nothing here decides anything; every decision comes from :mod:`app.engine`.
"""
