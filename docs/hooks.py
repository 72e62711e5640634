"""MkDocs hook: docs/reference.md is written at build time from the schemas (colorize/reference.py),
the source `--help` prints from, so the two cannot drift."""

from mkdocs.structure.files import File, Files


def on_files(files: Files, config) -> Files:  # noqa: ANN001
    from colorize import reference

    files.append(File.generated(config, "reference.md", content=reference.markdown()))
    return files
