"""Log messages are constant templates: no f-string, `%` or `.format()` message in shared/ or services/.

The redaction filter (shared/logs.py) masks every unsafe `%`-arg and `extra` value, but a name baked into the
message itself cannot be recognised by pattern. So values go through args or `extra`, never into the message.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal"}


def _built_message(node: ast.expr) -> bool:
    """True if the expression builds a string at run time instead of being a constant template."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return isinstance(node.left, ast.Constant | ast.JoinedStr | ast.BinOp) and not (
            isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, ast.Constant)
    return False


def _message_arg(call: ast.Call) -> ast.expr | None:
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in LOG_METHODS and call.args:
        return call.args[0]
    if func.attr == "log" and len(call.args) >= 2:  # log.log(level, msg, ...)
        return call.args[1]
    return None


def offending_log_calls(source: str, filename: str = "<string>") -> list[int]:
    """Line numbers of log calls whose message is built at run time."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Call):
            message = _message_arg(node)
            if message is not None and _built_message(message):
                lines.append(node.lineno)
    return lines


def test_no_log_message_is_built_at_run_time_in_shared_or_services() -> None:
    offenders = {}
    for folder in (ROOT / "shared", ROOT / "services"):
        for path in sorted(folder.rglob("*.py")):
            found = offending_log_calls(path.read_text(), str(path))
            if found:
                offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}, "log messages must be constant templates; pass values as args or extra"


def test_the_scan_catches_each_way_of_building_a_message() -> None:
    source = "\n".join([
        'log.info(f"member {name}")',
        'logger.warning("member %s" % name)',
        'self.log.error("member {}".format(name))',
        'log.log(logging.INFO, f"member {name}")',
        'log.debug("member " + name)',
        'log.info("member %s", name)',           # fine: a template and an arg
        'log.info("constant " "parts")',          # fine
        'log.info(f"no placeholders")',           # fine: nothing interpolated
        'log.info("member", extra={"member_id": member_id})',  # fine
        'warnings.warn(f"deprecated {thing}")',   # flagged too: warnings can be routed to logging
    ])
    assert offending_log_calls(source) == [1, 2, 3, 4, 5, 10]
