"""Real Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright's sync
API (`executable_path`, so Playwright downloads no browser; .ci/run installs the package)."""
import os
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
# CI's two cores are shared: every wait is generous and ends at its event, never a sleep.
TIMEOUT_MS = 120_000

needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Chromium is not installed at /usr/bin/chromium (.ci/run installs Debian's chromium)")


@contextmanager
def chromium(timeout_ms=TIMEOUT_MS):
    """(playwright, browser, expect): a headless Chromium, closed on the way out."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        expect.set_options(timeout=timeout_ms)
        try:
            yield playwright, browser, expect
        finally:
            browser.close()


def new_page(browser, timeout_ms=TIMEOUT_MS, **context_options):
    page = browser.new_context(**context_options).new_page()
    page.set_default_timeout(timeout_ms)
    return page
