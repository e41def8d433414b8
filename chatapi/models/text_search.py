"""Case-insensitive substring search that folds every script on both databases: PostgreSQL's
lower() is Unicode-aware, SQLite's only folds ASCII, so SQLite gets Python's str.casefold."""
import unicodedata

from sqlalchemy import bindparam, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

SQLITE_CASEFOLD = "chatapi_casefold"


class folded(FunctionElement):
    type = String()
    inherit_cache = True


@compiles(folded)
def _folded_default(element, compiler, **kw):
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(folded, "sqlite")
def _folded_sqlite(element, compiler, **kw):
    return f"{SQLITE_CASEFOLD}({compiler.process(element.clauses, **kw)})"


def register_sqlite_casefold(dbapi_connection):
    dbapi_connection.create_function(
        SQLITE_CASEFOLD, 1, lambda text: text.casefold() if text is not None else None,
        deterministic=True)


def fold(text, dialect_name):
    """`text` folded as folded() folds a column on that database."""
    return text.casefold() if dialect_name == "sqlite" else text.lower()


# Categories no character folds into (casefold yields letters, marks, symbols and number
# letters only; tests/test_search.py checks every code point): a text made of them alone is
# found in a folded text exactly where it is in the unfolded one.
CASELESS_CATEGORIES = frozenset({"Lo", "Nd", "Zs", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"})


def caseless(text):
    return all(unicodedata.category(character) in CASELESS_CATEGORIES
               and character.casefold() == character for character in text)


def contains_folded(column, needle, dialect_name):
    return contains_bound(column, dialect_name, caseless(needle),
                          bindparam(None, needle_value(needle, dialect_name), type_=String()))


def contains_bound(column, dialect_name, needle_is_caseless, needle):
    """contains_folded() for `needle`, a bind parameter whose value is needle_value()'s (in
    a statement built once, for needles alike in `needle_is_caseless`, bound as it runs)."""
    if dialect_name == "sqlite":
        # instr(), not LIKE: SQLite's LIKE tries the pattern at each place a character at a
        # time (`x` 32,000 times then `y`, looked for as `x` 199 times then `y`: 6 million
        # steps a row, 40 s for 300 such messages, the worker's loop held); instr() compares
        # bytes. Chinese or Japanese, say: in the column itself, not a call into Python for
        # each row.
        return func.instr(column if needle_is_caseless else folded(column), needle) > 0
    return folded(column).like(needle, escape="\\")


def needle_value(needle, dialect_name):
    folded_needle = fold(needle, dialect_name)
    if dialect_name == "sqlite":
        return folded_needle
    escaped = folded_needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
