"""The independent journal verifier (SPEC 3, 4): reads the file from the spec alone, never from agent/core."""
