"""The rules language: located YAML, a declarative spec, the compiled model and the loader."""
