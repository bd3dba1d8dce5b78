"""Report pages in a real browser: headless Chromium through selenium (Debian's ``chromium`` and
``chromium-driver``). The ``browser`` fixture (tests/conftest.py) starts one per test module;
:func:`open_page` loads a page and counts what its plots drew."""

from __future__ import annotations

import shutil
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ERROR_COLLECTOR = """
window.__errors = [];
window.onerror = function (message, source, line) { window.__errors.push(message + ' at ' + source + ':' + line); };
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('promise: ' + e.reason); });
"""
COUNT_POINTS = """
const gd = document.getElementById('pareto');
// _fullData: plotly.py ships numeric arrays base64-encoded; plotly.js decodes them there
return {data: (gd._fullData || []).filter(t => t.meta === 'trial').reduce((n, t) => n + t.x.length, 0),
        drawn: gd.querySelectorAll('.scatterlayer .trace .points path.point').length,
        plots: document.querySelectorAll('.js-plotly-plot').length,
        ready: Array.from(document.querySelectorAll('.js-plotly-plot')).every(d => d._fullLayout)};
"""


def open_page(driver, page) -> tuple[dict, list[str], float]:
    """Load ``page``; returns point counts, script errors and seconds until every plot was drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(COUNT_POINTS)["ready"])
    seconds = time.perf_counter() - start
    errors = driver.execute_script("return window.__errors") + [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
    ]
    return driver.execute_script(COUNT_POINTS), errors, seconds
