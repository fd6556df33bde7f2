"""The declarative mapping engine: mapping-file format, compiler, runtime nodes and catalog.

How a mapping file becomes running code: ``spec`` (the file format, pydantic, with the JSON Schema
of ``schema``) → ``compiler`` (checks against the canonical model, builds the nodes of ``nodes``)
→ ``codegen`` (one generated Python function per mapping) → ``engine`` (applies it, validates the
canonical order). ``catalog`` loads a directory, ``revision`` a deployed revision's files, and
``registry`` holds the revision a running hub maps with.

The meaning of the nodes is written once, in ``nodes``' docstring, and checked twice: the generated
code must agree with the plain interpreter of the nodes (``tracing``, which also records how each
field got its value for ``saleshub orders explain``), run against generated mappings and documents
by ``tests/property/test_generated_code_matches_reference.py``,
and paths must mean what JMESPath and XPath mean (``tests/unit/test_codegen.py``).

Adding a node kind or a value type — checklist:

1. ``spec``: the file syntax (a model with a discriminating key, ``extra="forbid"``, descriptions),
   or the new name in ``ValueType``; run ``saleshub mappings schema --output
   contracts/mapping-file.schema.json``.
2. ``compiler``: what is checked at load (with file:line issues) and the compiled form; a value
   type also needs its canonical field types in ``_TYPE_FOR`` and a conversion in ``coercions``
   (raising ``CoercionError`` with a steward-readable message).
3. ``nodes``: a new node dataclass, and its meaning in the module docstring.
4. ``codegen``: ``_Writer.node`` dispatches to the code for it (only this module's templates
   become source; mapping-file values enter as ``repr`` literals or namespace references).
5. ``tracing``: the same meaning, plainly, with its steps recorded; extend the strategies of
   ``tests/property/test_generated_code_matches_reference.py`` so Hypothesis writes the new node.
6. ``saleshub.stewards.explain`` (how ``mappings explain`` describes it) and
   ``saleshub.stewards.revision_diff._WORDS`` (its key in steward words).
7. ``mappings/README.md``: the stewards' guide, with an example; a format change bumps the file
   ``version`` and gets a migration note there.
"""
