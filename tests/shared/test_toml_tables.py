"""daozhang.toml_tables: one TOML reader and table checker, one error class.

Invariant: every configuration file daozhang reads (agent.toml, the merchant
profile, a board, a settlement mapping, backend.toml) refuses an unreadable
file, bad TOML, an unknown table, a table that is not one and an unknown key
with a ConfigFileError whose message names the file, then the key, then why.
"""

import pytest

from daozhang.agent.config import ConfigError, load_agent_config
from daozhang.profile import ProfileError, load_profile
from daozhang.backend.config import load_backend_config
from daozhang.boards.load import BoardError, load_board
from daozhang.settlement_files import MappingError, load_mapping
from daozhang.toml_tables import ConfigFileError, check_keys, check_tables, read_toml

# Each loader, and a first line that passes its table check.
LOADERS = {
    "agent.toml": (load_agent_config, '[device]\nid = "dev-1"\n'),
    "merchant.toml": (load_profile, 'merchant_id = "310290058120001"\n'),
    "board.toml": (load_board, 'name = "x"\n'),
    "mapping.toml": (load_mapping, '[amounts]\nscale = 100\n'),
    "backend.toml": (load_backend_config, '[backend]\nkey = "b.key"\n'),
}
# A table each file allows, and one of its keys.
KNOWN = {"agent.toml": ("journal", "path"), "merchant.toml": ("settlement", "mode"),
         "board.toml": ("journal", "size"), "mapping.toml": ("times", "format"),
         "backend.toml": ("broker", "host")}


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_old_names_are_the_one_class():
    assert ConfigError is ProfileError is BoardError is MappingError is ConfigFileError


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_an_unknown_key_names_the_file_and_the_table_and_key(tmp_path, name):
    load, first = LOADERS[name]
    table, _ = KNOWN[name]
    path = _write(tmp_path, name, first + "[%s]\nno_such_key = 1\n" % table)
    with pytest.raises(ConfigFileError) as info:
        load(path)
    assert str(info.value).startswith("%s: %s.no_such_key: unknown key (allowed: " % (path, table))
    assert info.value.path == path and info.value.key == table + ".no_such_key"


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_an_unknown_table_names_the_file_and_the_table(tmp_path, name):
    load, first = LOADERS[name]
    path = _write(tmp_path, name, first + "[no_such_table]\nx = 1\n")
    with pytest.raises(ConfigFileError) as info:
        load(path)
    assert str(info.value).startswith("%s: no_such_table: unknown " % path)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_value_where_a_table_belongs_is_refused(tmp_path, name):
    load, first = LOADERS[name]
    table, _ = KNOWN[name]
    path = _write(tmp_path, name, "%s = 3\n" % table + first)
    with pytest.raises(ConfigFileError) as info:
        load(path)
    assert str(info.value) == "%s: %s: expected a table [%s]" % (path, table, table)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_bad_toml_and_a_missing_file_name_the_file(tmp_path, name):
    load, _ = LOADERS[name]
    path = _write(tmp_path, name, "[journal\n")
    with pytest.raises(ConfigFileError, match=r"^%s: \(syntax\): not valid TOML" % path):
        load(path)
    missing = str(tmp_path / "missing" / name)
    with pytest.raises(ConfigFileError, match=r"^%s: \(file\): cannot read" % missing):
        load(missing)


def test_the_checker_alone(tmp_path):
    path = _write(tmp_path, "x.toml", 'name = "a"\n[t]\nk = 1\n[free]\nanything = 2\n')
    data = read_toml(path)
    check_tables(path, data, {"t": {"k"}, "free": None}, top_keys=("name",))
    with pytest.raises(ConfigFileError, match=r"x.toml: name: unknown key \(allowed: free, t\)"):
        check_tables(path, data, {"t": {"k"}, "free": None})
    with pytest.raises(ConfigFileError, match=r"x.toml: t.k: unknown key \(allowed: j\)"):
        check_tables(path, data, {"t": {"j"}, "free": None}, top_keys=("name",))
    with pytest.raises(ConfigFileError, match=r"x.toml: fees.debit.x: unknown key"):
        check_keys(path, "fees.debit.", {"x": 1}, {"bp", "cap"})
    with pytest.raises(ConfigFileError, match=r"\(top\): expected a TOML document"):
        check_tables(path, [], {})
