"""Read a TOML file for a loader that names file, key and problem in its errors.

The merchant profile, agent.toml, board files and settlement mappings all
load this way; each passes its own error class, built as
`error_class(path, key, message)`.
"""

import tomllib


def read_toml(path, error_class):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise error_class(path, "(file)", "cannot read: %s" % exc.strerror) from None
    except tomllib.TOMLDecodeError as exc:
        raise error_class(path, "(syntax)", "not valid TOML: %s" % exc) from None
