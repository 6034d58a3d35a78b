"""The workspace engine: finding model artifacts under the workspace folders."""
