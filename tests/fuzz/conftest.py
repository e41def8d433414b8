def pytest_terminal_summary(terminalreporter):
    """How many cases each operation ran, by status code: the note on a run says what was
    fuzzed."""
    from .test_openapi_fuzz import cases_run
    if not cases_run:
        return
    terminalreporter.write_sep("-", "fuzz cases run (schemathesis)")
    for label, statuses in sorted(cases_run.items()):
        by_status = " ".join(f"{status}x{count}" for status, count in sorted(statuses.items()))
        terminalreporter.write_line(f"{sum(statuses.values()):6d}  {label}  ({by_status})")
    total = sum(sum(statuses.values()) for statuses in cases_run.values())
    terminalreporter.write_line(f"{total:6d}  in all, over {len(cases_run)} operations")
