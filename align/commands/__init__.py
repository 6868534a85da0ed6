"""The `align` tool commands that are not trainers: each module has `main(argv) -> int`."""
