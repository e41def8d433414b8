"""Case-insensitive substring search that folds every script on both databases: PostgreSQL's
lower() is Unicode-aware, SQLite's only folds ASCII, so SQLite gets Python's str.casefold."""
import unicodedata

from sqlalchemy import func
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
    if dialect_name == "sqlite":
        # instr(), not LIKE: SQLite's LIKE tries the pattern at each place a character at a
        # time (`x` 32,000 times then `y`, looked for as `x` 199 times then `y`: 6 million
        # steps a row, 40 s for 300 such messages, the worker's loop held); instr() compares
        # bytes. Chinese or Japanese, say: in the column itself, not a call into Python for
        # each row.
        return func.instr(column if caseless(needle) else folded(column),
                          fold(needle, dialect_name)) > 0
    escaped = fold(needle, dialect_name).replace("\\", "\\\\").replace(
        "%", "\\%").replace("_", "\\_")
    return folded(column).like(f"%{escaped}%", escape="\\")
