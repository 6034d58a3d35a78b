"""The fuzz campaign behind `make fuzz`: every parser and the LSP document path."""
