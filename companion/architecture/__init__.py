"""Architecture understanding: config.json -> ArchSpec -> params, diff, nearest; tokenizers."""
