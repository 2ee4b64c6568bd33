"""MkDocs hook: the reference pages, generated from the code at every build
(cnnbuild/views/reference.py), so they cannot fall behind a new kind, field or option.
Nothing is written into docs/: the pages exist only in the build."""
from mkdocs.structure.files import File


def on_files(files, config):
    from cnnbuild.cli import parser_for
    from cnnbuild.families import spec_schema
    from cnnbuild.views.reference import pages
    for path, text in pages(spec_schema(), parser_for([])).items():
        files.append(File.generated(config, path, content=text))
    return files
