"""Dash pages, one module each; imported by Dash itself (``use_pages``) when the app is created."""
