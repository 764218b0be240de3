"""The `qlax` command and rendering episodes to GIFs."""
