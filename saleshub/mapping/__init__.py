"""The declarative mapping engine: mapping-file format, compiler, runtime nodes and catalog."""
