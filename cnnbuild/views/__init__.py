"""Views of a spec for people and editors: the drawing and the JSON Schema."""
