"""Issue 22, finding 1 / point 2: no identifier or SQL text from a file, a flag or a worker is
pasted into SQL.

Every f-string of the package that reads as SQL is parsed; each interpolated value must be a
package constant (an UPPER_CASE name), a number (`int(...)`, `len(...)`), a quoting function
(`ident`, `literal`, `_q`, `_sql_str`), or an entry of REVIEWED below: the interpolations a
reviewer traced to the package's own schema, constants or checked values. A new interpolation
fails this test until someone traces it and adds it here, with where it comes from.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "matstore"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|ATTACH|DESCRIBE|PRAGMA)\b"
                 r"|\b(FROM|WHERE|JOIN|SET|VALUES)\s")
SAFE_CALLS = {"ident", "literal", "int", "float", "len", "_q", "_sql_str"}
MESSAGE_CALLS = re.compile(r"(Error|Exception|print|echo|warn|fail|add_task)$")

# where each reviewed value comes from (file::function: the expressions)
REVIEWED = {
    # name: a sql/<name>.sql file name of the package; _rendered(body): DuckDB's own rendering of
    # the package's SELECT. The text is only compared with a file's stored view text, never run
    'matstore/views.py::normalized_view_sql': ['name', '_rendered(body)'],
    # _COLS: the module's column list constant
    'matstore/al/campaigns.py::insert': ["_COLS.replace('::VARCHAR', '')"],
    # where: one of two constant strings (a ? placeholder)
    'matstore/al/campaigns.py::status': ['where'],
    # table: selection.IDS; sel: the user's --pool, checked by selection.query_sql, run only through selection (guarded, read-only, ids)
    'matstore/al/screening.py::pool_predictions': ['sel', 'table'],
    # base_set: a value of the store, quoted as a literal ('' doubled); the `on` it builds is evaluated by selection to ids only
    'matstore/al/screening.py::finish': ['base_set'],
    # LABEL_URI: package constant
    'matstore/al/loop.py::propose': ["labels.LABEL_URI.split('{')[0]"],
    # prop: checked against the three property column names first
    'matstore/al/loop.py::training_set': ['prop'],
    # table: package table names passed by callers
    'matstore/compositions/insert.py::collisions': ['table'],
    # table/cols: package constants of the module
    'matstore/compositions/insert.py::insert_new': ['cols', 'table'],
    # table/cols: package constants of the module
    'matstore/compositions/insert.py::insert_unseen': ['cols', 'table'],
    # name/body: the package's own sql/*.sql views
    'matstore/export.py::_try_view': ['body', 'name'],
    # where: constant strings with ? placeholders
    'matstore/export.py::base_tables': ['where'],
    # packed: ident()-quoted package columns; relation: the caller's quoted package table or parquet_relation
    'matstore/export.py::checksum': ['packed', 'relation'],
    # t: a package table (package_tables(), plain identifier checked); part: PARTITION_BY constant
    'matstore/export.py::export_parquet': ['part', 't'],
    # mine: constant string
    'matstore/export.py::table_comments': ['mine'],
    # t: package tables; parquet_relation: _q-quoted path matstore chose
    'matstore/export.py::write_views': ['parquet_relation(tmp, t)', 't'],
    # table: package constant
    'matstore/ingest/__init__.py::_run_paged': ['table'],
    # key/nulls: ident()-quoted columns of the UNIQUE constant
    'matstore/merge/validate.py::_check_unique': ['key', 'nulls'],
    # built from expected_schema() (our migrations) and ident()
    'matstore/merge/write.py::_merge_id_table': ["cast.get(k, '')", 'col_list', 'joins', 'on', 'select', 'table', 'theirs(k)'],
    # built from expected_schema() (our migrations) and ident()
    'matstore/merge/write.py::_merge_keyed': ['col_list', 'joins', 'on', 'select'],
    # seq: a package sequence name
    'matstore/merge/write.py::_new_ids': ['seq'],
    # target/alias: our schema's columns, ident()-quoted
    'matstore/merge/write.py::_select_remapped': ['alias', 'target'],
    # target: SRC-qualified ident() of our schema
    'matstore/merge/write.py::theirs': ['target'],
    # run.run_id: an int matstore assigned
    'matstore/demo.py::run_demo': ['run.run_id'],
    # ids_sql: package SQL strings with ? placeholders
    'matstore/quality.py::_histograms': ['ids_sql'],
    # per: a constant string
    'matstore/quality.py::_sample_histograms': ['per'],
    # gen_sql/ref_sql/set_sql: package SQL strings with ? placeholders
    'matstore/quality.py::measure': ['gen_sql', 'ref_sql', 'set_sql'],
    # table/key: the module's constant list of (table, key)
    'matstore/recovery.py::mark_interrupted': ['key', 'table'],
    # cols: COLUMNS constant; where: constant with ? placeholders
    'matstore/registry/records.py::get_record': ['cols', 'where'],
    # cols: COLUMNS constant; marks: ? placeholders
    'matstore/registry/records.py::insert_version': ['cols', 'marks'],
    # cols: COLUMNS constant; where: constant with ? placeholders
    'matstore/registry/transfer.py::export_models': ['cols', 'where'],
    # name: HIT_SCREENS constant
    'matstore/report/data.py::_hits': ['name'],
    # _run_ids_sql/both/train_sql: package SQL strings with ? placeholders
    'matstore/report/data.py::report_data': ['_run_ids_sql()', 'both', 'train_sql'],
    # name: checked against sql/screen_*.sql; where: the package view's own *_std columns, quoted
    'matstore/report/screens.py::run_screen': ['name', 'where'],
    # name: checked against sql/screen_*.sql
    'matstore/report/screens.py::std_columns': ['name'],
    # table: IDS constant
    'matstore/selection.py::by_ids': ['table'],
    # sql: a complete statement checked by condition_sql/query_sql (the user's selection, by design), run guarded and read-only, ids only
    'matstore/selection.py::ids_of': ['sql'],
    # missing_sql: matstore's own correlated condition; order: constant; table: IDS
    'matstore/selection.py::lacking': ['missing_sql', 'order', 'table'],
    # sel: the user's selection, parsed alone and as a whole before it runs
    'matstore/selection.py::query_sql': ['sel'],
    # cols: _columns() checks every name is the package's column; table: package constant
    'matstore/store.py::append': ['cols', 'table'],
    # cols/key: checked by _columns(); table: package constant
    'matstore/store.py::append_new': ['cols', 'on', 'pick', 'table'],
    # the package's own sql/*.sql views
    'matstore/store.py::create_views': ['kind', 'v.body', 'v.name'],
    # table: a constant 'TABLE ' or ''; the macro name is quoted with " doubled
    'matstore/store.py::drop_shadowing_macros': ['table'],
    # table/column: package constants passed by callers
    'matstore/store.py::next_id': ['column', 'table'],
    # table: selection.IDS
    'matstore/training/data.py::load': ['table'],
    # target: a preset's property (constant); names/rank: sources checked by _SAFE_SOURCE; sel: the provenance text (the run re-reads by ids)
    'matstore/training/data.py::selection_sql': ["', '.join((repr(s) for s in names))", "', cp.' + target + ' AS y' if target else ''", 'names[0]', 'rank', 'sel', 'target'],
    # prop: checked against the three property columns first
    'matstore/training/data.py::target_source': ['prop'],
    # source: preset constants
    'matstore/training/presets.py::_source': ['source'],
    # prop: preset constants
    'matstore/training/presets.py::_with': ['prop'],
    # base: screen_sql() of a package screen (name checked against the shipped sql/screen_*.sql);
    # c/value/model: columns of that package view (DESCRIBE) or the _VALUE_OF constant
    'matstore/report/screens.py::_check_spreads': ['base', 'c', 'model', 'value'],
    'matstore/report/screens.py::run_screen': ['base', 'where'],
    # name: checked against the package's screen names (view_definitions)
    'matstore/report/screens.py::screen_sql': ['name'],
    # pred/sql: package SQL strings with ? placeholders
    'matstore/stability/selfconsistent.py::phases': ['pred', 'sql'],
    # cols: ident()-quoted columns checked against catalogue.package_columns('structures')
    'matstore/structures/store.py::write_rows': ['cols'],
    # run_id: an int of the runs table (a printed hint, never executed)
    'matstore/report/structure_section.py::section': ['run_id'],
    # alias/key/table: the _CONDITION_TABLES constant; where: the user's condition, parsed as part of
    # the complete statement, whose shape (one SELECT from that table, nothing added) is checked
    'matstore/selection.py::condition_sql': ['alias', 'key', 'table', 'where'],
    # sql: condition_sql's checked statement, run guarded and read-only, ids only; later: constant
    'matstore/selection.py::structure_ids': ['later', 'sql'],
}


def _safe(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Name):
        return expr.id.isupper() or expr.id.lstrip("_").isupper()
    if isinstance(expr, ast.Attribute):
        return expr.attr.lstrip("_").isupper()
    if isinstance(expr, ast.Call):
        f = expr.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in SAFE_CALLS:
            return True
        if name == "join" and isinstance(f, ast.Attribute) and expr.args and \
                "'?'" in ast.unparse(expr.args[0]) or '"?"' in ast.unparse(expr):
            return True
    return False


def _interpolations():
    """(file::function::expression) of every interpolated value in an SQL-looking f-string that
    is not a message (an exception, a print)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if not SQL.search(text):
                continue
            up, func, message = parents.get(node), "<module>", False
            while up is not None:
                if isinstance(up, ast.Raise) or (isinstance(up, ast.Call) and MESSAGE_CALLS.search(
                        getattr(up.func, "id", getattr(up.func, "attr", "")) or "")):
                    message = True
                if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef)) and func == "<module>":
                    func = up.name
                up = parents.get(up)
            if message:
                continue
            for v in node.values:
                if isinstance(v, ast.FormattedValue) and not _safe(v.value):
                    yield f"{rel}::{func}::{ast.unparse(v.value)}"


def unreviewed(reviewed=REVIEWED) -> list[str]:
    out = []
    for key in _interpolations():
        file, func, expr = key.split("::", 2)
        where = f"{file}::{func}"
        if expr not in reviewed.get(where, ()):
            out.append(key)
    return sorted(set(out))


def test_every_sql_interpolation_is_a_package_constant_or_reviewed():
    assert unreviewed() == []


def test_the_check_sees_a_pasted_name():
    """The test itself: the export payload's shape (a column name pasted) is caught."""
    src = "def checksum(con, cols):\n    return f'SELECT \"{cols[0]}\" FROM t'\n"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr))
    assert not _safe(node.values[1].value)
