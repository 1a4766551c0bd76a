"""Pages for endpoints and releases: read-only pages, release actions, and the release wizard."""
