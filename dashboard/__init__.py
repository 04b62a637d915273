"""Dash app of the campus twin: network overview, floor plans, rooms.

Build it with :func:`dashboard.app.create_app` and run it with :func:`dashboard.serve.serve`.
"""
