"""Option types and checks shared by several command groups."""
